"""ECR rules, with the ids of the FSBP controls they mirror."""

from __future__ import annotations

from mlstack_policy.documents import as_list
from mlstack_policy.rules import ResourceLike, StackIndex, resource_rule, stack_rule

REPOSITORY = "aws:ecr/repository:Repository"
LIFECYCLE_POLICY = "aws:ecr/lifecyclePolicy:LifecyclePolicy"


@resource_rule("ECR.1", "ECR repositories scan images on push", REPOSITORY)
def scans_on_push(repository: ResourceLike) -> str | None:
    scanning = repository.props.get("imageScanningConfiguration") or {}
    return None if scanning.get("scanOnPush") is True else "images are not scanned on push"


@resource_rule("ECR.2", "ECR repositories have immutable tags", REPOSITORY)
def immutable_tags(repository: ResourceLike) -> str | None:
    mutability = repository.props.get("imageTagMutability", "MUTABLE")
    if str(mutability).startswith("IMMUTABLE"):
        return None
    return f"image tags are {mutability}: a pushed tag could be replaced under a deployment"


@stack_rule("ECR.3", "ECR repositories have a lifecycle policy", REPOSITORY)
def has_lifecycle_policy(repository: ResourceLike, stack: StackIndex) -> str | None:
    if stack.attached(LIFECYCLE_POLICY, prop="repository", value=repository.props.get("name")):
        return None
    return "no lifecycle policy, so old images accumulate"


@resource_rule(
    "ECR.5", "ECR repositories are encrypted with a customer-managed KMS key", REPOSITORY
)
def encrypted_with_kms(repository: ResourceLike) -> str | None:
    for config in as_list(repository.props.get("encryptionConfigurations")):
        if config.get("encryptionType") == "KMS" and config.get("kmsKey"):
            return None
    return "not encrypted with a customer-managed KMS key"
