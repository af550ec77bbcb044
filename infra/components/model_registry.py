"""SageMaker model package groups: where training registers model versions and deploys find them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.adoption import kept_resource
from infra.documents.iam import model_registry_policy
from infra.project import naming

MODEL_PACKAGE_GROUP_TYPE = "sagemaker:model-package-group"
AUDIT_RETENTION_DAYS = 3653
"""Ten years, CloudWatch Logs' longest bounded retention: who approved, promoted and rolled
back a model is asked about long after the servers' own logs are gone."""


@dataclass(frozen=True, kw_only=True)
class ModelRegistryArgs:
    """Which models get a group, and who may write and read them."""

    environment: str
    models: Sequence[str]
    writer_arns: Sequence[pulumi.Input[str]]
    """Principals that register versions (the training role)."""
    reader_arns: Sequence[pulumi.Input[str]]
    """Principals that look versions up (deploy pipelines); empty means this account."""
    kms_key_arn: pulumi.Input[str]
    """The environment's key, which encrypts the audit log."""
    access_policy: bool = True
    """Give each group a resource policy naming the writers and readers. Off leaves access to
    IAM alone (the AWS emulator cannot hold these policies)."""

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("models: allowed: at least one model name")
        if self.access_policy and not self.writer_arns:
            raise ValueError("writer_arns: allowed: at least one principal")


class ModelRegistry(pulumi.ComponentResource):
    """One model package group per model, kept when the stack is destroyed and adopted when the
    stack is deployed again.

    The versions in a group are the model's history; deleting the stack must not delete them,
    so each group is `retain_on_delete`, and a group an earlier deployment kept is found by its
    tag and imported rather than created again.
    """

    groups: dict[str, aws.sagemaker.ModelPackageGroup]
    audit_log: aws.cloudwatch.LogGroup
    """Where `mlstack promote` and `mlstack rollback` append who changed what is served, when
    and why (`infra.operations.audit`)."""
    group_names: dict[str, pulumi.Output[str]]
    group_arns: list[pulumi.Output[str]]

    def __init__(
        self, name: str, args: ModelRegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:registry:ModelRegistry", name, None, opts)
        self.groups = {}
        names = {
            model: naming.model_package_group(model, args.environment) for model in args.models
        }
        kept = self._kept_groups(list(names.values()))
        for model, group_name in names.items():
            group = aws.sagemaker.ModelPackageGroup(
                f"{name}-{model}",
                model_package_group_name=group_name,
                model_package_group_description=f"Versions of {model} ({args.environment})",
                tags={naming.MODEL_PACKAGE_GROUP_TAG: group_name},
                opts=kept_resource(self, group_name if group_name in kept else None),
            )
            self.groups[model] = group
        if args.access_policy:
            readers = self._readers(args.reader_arns)
            for model, group in self.groups.items():
                self._access_policy(f"{name}-{model}", group, args.writer_arns, readers)
        self.audit_log = aws.cloudwatch.LogGroup(
            f"{name}-audit",
            name=naming.audit_log_group(args.environment),
            retention_in_days=AUDIT_RETENTION_DAYS,
            kms_key_id=args.kms_key_arn,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.group_names = {m: g.model_package_group_name for m, g in self.groups.items()}
        self.group_arns = [group.arn for group in self.groups.values()]
        self.register_outputs({"groups": self.group_names})

    def _readers(self, reader_arns: Sequence[pulumi.Input[str]]) -> pulumi.Output[list[str]]:
        """Who may look versions up: the given principals, else this account."""
        if reader_arns:
            return pulumi.Output.all(*reader_arns)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        return pulumi.Output.all(
            aws.get_partition_output(opts=invoke).partition,
            aws.get_caller_identity_output(opts=invoke).account_id,
        ).apply(lambda values: [f"arn:{values[0]}:iam::{values[1]}:root"])

    def _access_policy(
        self,
        name: str,
        group: aws.sagemaker.ModelPackageGroup,
        writer_arns: Sequence[pulumi.Input[str]],
        readers: pulumi.Output[list[str]],
    ) -> None:
        aws.sagemaker.ModelPackageGroupPolicy(
            name,
            model_package_group_name=group.model_package_group_name,
            resource_policy=pulumi.Output.all(
                group.arn, pulumi.Output.all(*writer_arns), readers
            ).apply(
                lambda values: json.dumps(
                    model_registry_policy(
                        group_arn=values[0], writer_arns=values[1], reader_arns=values[2]
                    ),
                    sort_keys=True,
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _kept_groups(self, group_names: list[str]) -> set[str]:
        """Which of these groups already exist, kept by an earlier `pulumi destroy`."""
        found = aws.resourcegroupstaggingapi.get_resources(
            resource_type_filters=[MODEL_PACKAGE_GROUP_TYPE],
            tag_filters=[{"key": naming.MODEL_PACKAGE_GROUP_TAG, "values": group_names}],
            opts=pulumi.InvokeOptions(parent=self),
        )
        tagged = {
            mapping.tags.get(naming.MODEL_PACKAGE_GROUP_TAG)
            for mapping in found.resource_tag_mapping_lists
        }
        return {group for group in group_names if group in tagged}
