"""S3 rules, with the ids of the FSBP controls they mirror."""

from __future__ import annotations

from mlstack_policy.documents import as_list, is_everyone, statements
from mlstack_policy.rules import ResourceLike, StackIndex, stack_rule

BUCKET = "aws:s3/bucket:Bucket"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
VERSIONING = "aws:s3/bucketVersioning:BucketVersioning"
ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
)
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"

PUBLIC_ACCESS_FLAGS = (
    "blockPublicAcls",
    "blockPublicPolicy",
    "ignorePublicAcls",
    "restrictPublicBuckets",
)
KMS_ALGORITHMS = ("aws:kms", "aws:kms:dsse")


def _attached(bucket: ResourceLike, stack: StackIndex, resource_type: str) -> list[ResourceLike]:
    return stack.attached(resource_type, prop="bucket", value=bucket.props.get("bucket"))


@stack_rule("S3.5", "S3 buckets require requests to use TLS", BUCKET)
def requires_tls(bucket: ResourceLike, stack: StackIndex) -> str | None:
    for policy in _attached(bucket, stack, BUCKET_POLICY):
        for statement in statements(policy.props.get("policy")):
            condition = statement.get("Condition", {}).get("Bool", {})
            if (
                statement.get("Effect") == "Deny"
                and is_everyone(statement.get("Principal"))
                and "s3:*" in as_list(statement.get("Action"))
                and str(condition.get("aws:SecureTransport")).lower() == "false"
            ):
                return None
    return "no bucket policy denies s3:* when aws:SecureTransport is false"


@stack_rule("S3.8", "S3 buckets block all public access", BUCKET)
def blocks_public_access(bucket: ResourceLike, stack: StackIndex) -> str | None:
    blocks = _attached(bucket, stack, PUBLIC_ACCESS_BLOCK)
    if not blocks:
        return "no public access block"
    missing = [flag for flag in PUBLIC_ACCESS_FLAGS if blocks[0].props.get(flag) is not True]
    return f"public access block leaves {', '.join(missing)} off" if missing else None


@stack_rule("S3.12", "S3 buckets do not use ACLs (ownership enforced)", BUCKET)
def enforces_ownership(bucket: ResourceLike, stack: StackIndex) -> str | None:
    for controls in _attached(bucket, stack, OWNERSHIP):
        if (controls.props.get("rule") or {}).get("objectOwnership") == "BucketOwnerEnforced":
            return None
    return "object ownership is not BucketOwnerEnforced, so ACLs still grant access"


@stack_rule("S3.13", "S3 buckets have lifecycle configurations", BUCKET)
def has_lifecycle(bucket: ResourceLike, stack: StackIndex) -> str | None:
    for lifecycle in _attached(bucket, stack, LIFECYCLE):
        if any(r.get("status") == "Enabled" for r in as_list(lifecycle.props.get("rules"))):
            return None
    return "no enabled lifecycle rule"


@stack_rule("S3.14", "S3 buckets have versioning enabled", BUCKET)
def has_versioning(bucket: ResourceLike, stack: StackIndex) -> str | None:
    for versioning in _attached(bucket, stack, VERSIONING):
        if (versioning.props.get("versioningConfiguration") or {}).get("status") == "Enabled":
            return None
    return "versioning is not Enabled"


@stack_rule("S3.17", "S3 buckets are encrypted at rest with KMS keys", BUCKET)
def encrypted_with_kms(bucket: ResourceLike, stack: StackIndex) -> str | None:
    for encryption in _attached(bucket, stack, ENCRYPTION):
        for entry in as_list(encryption.props.get("rules")):
            default = entry.get("applyServerSideEncryptionByDefault") or {}
            if default.get("sseAlgorithm") in KMS_ALGORITHMS and default.get("kmsMasterKeyId"):
                return None
    return "default encryption is not SSE-KMS with a customer-managed key"
