"""SageMaker model package groups: where training registers model versions and deploys find them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import naming
from infra.documents.iam import model_registry_policy


@dataclass(frozen=True, kw_only=True)
class ModelRegistryArgs:
    """Which models get a group, and who may write and read them."""

    environment: str
    models: Sequence[str]
    writer_arns: Sequence[pulumi.Input[str]]
    """Principals that register versions (the training role)."""
    reader_arns: Sequence[pulumi.Input[str]]
    """Principals that look versions up (deploy pipelines); empty means this account."""

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("models: allowed: at least one model name")
        if not self.writer_arns:
            raise ValueError("writer_arns: allowed: at least one principal")


class ModelRegistry(pulumi.ComponentResource):
    """One model package group per model, kept when the stack is destroyed.

    The versions in a group are the model's history; deleting the stack must not delete them,
    so each group is `retain_on_delete`.
    """

    groups: dict[str, aws.sagemaker.ModelPackageGroup]
    group_names: dict[str, pulumi.Output[str]]
    group_arns: list[pulumi.Output[str]]

    def __init__(
        self, name: str, args: ModelRegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:registry:ModelRegistry", name, None, opts)
        self.groups = {}
        readers: pulumi.Output[list[str]] = pulumi.Output.all(*args.reader_arns)
        if not args.reader_arns:
            invoke = pulumi.InvokeOutputOptions(parent=self)
            readers = pulumi.Output.all(
                aws.get_partition_output(opts=invoke).partition,
                aws.get_caller_identity_output(opts=invoke).account_id,
            ).apply(lambda values: [f"arn:{values[0]}:iam::{values[1]}:root"])
        for model in args.models:
            group = aws.sagemaker.ModelPackageGroup(
                f"{name}-{model}",
                model_package_group_name=naming.model_package_group(model, args.environment),
                model_package_group_description=f"Versions of {model} ({args.environment})",
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
            aws.sagemaker.ModelPackageGroupPolicy(
                f"{name}-{model}",
                model_package_group_name=group.model_package_group_name,
                resource_policy=pulumi.Output.all(
                    group.arn,
                    pulumi.Output.all(*args.writer_arns),
                    readers,
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
            self.groups[model] = group
        self.group_names = {m: g.model_package_group_name for m, g in self.groups.items()}
        self.group_arns = [group.arn for group in self.groups.values()]
        self.register_outputs({"groups": self.group_names})
