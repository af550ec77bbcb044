"""The roles SageMaker runs a stack's training jobs and batch transform jobs with.

`mlstack train --on sagemaker` and `mlstack score --on sagemaker` start the jobs; the stack only
declares who they run as, so a job can do what the cluster's training or scoring does and
nothing more: the same buckets, key and model package groups, and the one image each runs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.registry_arns import model_package_group_arns
from infra.components.service_role import account_service_role
from infra.documents.iam import (
    TRAINING_JOB_LOGS,
    TRANSFORM_JOB_LOGS,
    job_log_group_arn,
    sagemaker_scoring_policy,
    sagemaker_training_policy,
)


@dataclass(frozen=True, kw_only=True)
class SageMakerJobsArgs:
    environment: str
    models: Sequence[str]
    data_bucket_arn: pulumi.Input[str]
    models_bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    training_repository_arn: pulumi.Input[str]
    serving_repository_arn: pulumi.Input[str]
    permissions_boundary: pulumi.Input[str] | None = None
    """The stack's role permissions boundary, which every role it declares then carries (set
    when CI roles exist: the deploy role may only write roles that carry it)."""
    mlflow_tracking_server_arn: pulumi.Input[str] | None = None
    """With one, training jobs record their runs there, as the cluster's training does."""


class SageMakerJobs(pulumi.ComponentResource):
    """`training_role` runs training jobs; `scoring_role` is the execution role of the models
    batch transform jobs score with."""

    training_role: aws.iam.Role
    scoring_role: aws.iam.Role

    def __init__(
        self, name: str, args: SageMakerJobsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:sagemaker:Jobs", name, None, opts)
        self._boundary = args.permissions_boundary
        invoke = pulumi.InvokeOutputOptions(parent=self)
        partition = aws.get_partition_output(opts=invoke).partition
        region = aws.get_region_output(opts=invoke).region
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        where = pulumi.Output.all(partition, region, account_id)

        def log_group(group: str) -> pulumi.Output[str]:
            return where.apply(
                lambda values: job_log_group_arn(
                    partition=values[0], region=values[1], account_id=values[2], group=group
                )
            )

        group_arns = model_package_group_arns(self, args.environment, args.models)
        training = pulumi.Output.all(
            data_bucket_arn=args.data_bucket_arn,
            models_bucket_arn=args.models_bucket_arn,
            kms_key_arn=args.kms_key_arn,
            model_package_group_arns=group_arns,
            repository_arn=args.training_repository_arn,
            log_group_arn=log_group(TRAINING_JOB_LOGS),
            mlflow_tracking_server_arn=args.mlflow_tracking_server_arn,
        ).apply(lambda arns: sagemaker_training_policy(**arns))
        scoring = pulumi.Output.all(
            data_bucket_arn=args.data_bucket_arn,
            models_bucket_arn=args.models_bucket_arn,
            kms_key_arn=args.kms_key_arn,
            repository_arn=args.serving_repository_arn,
            log_group_arn=log_group(TRANSFORM_JOB_LOGS),
        ).apply(lambda arns: sagemaker_scoring_policy(**arns))
        self.training_role = self._role(
            f"{name}-training", f"SageMaker training jobs of {args.environment}", training
        )
        self.scoring_role = self._role(
            f"{name}-scoring", f"SageMaker batch transform jobs of {args.environment}", scoring
        )
        self.register_outputs(
            {"training_role": self.training_role.arn, "scoring_role": self.scoring_role.arn}
        )

    def _role(
        self, name: str, description: str, policy: pulumi.Output[dict[str, Any]]
    ) -> aws.iam.Role:
        child = pulumi.ResourceOptions(parent=self)
        role = account_service_role(
            name,
            parent=self,
            service="sagemaker.amazonaws.com",
            permissions_boundary=self._boundary,
            description=description,
        )
        aws.iam.RolePolicy(
            f"{name}-permissions",
            role=role.id,
            policy=policy.apply(lambda document: json.dumps(document, sort_keys=True)),
            opts=child,
        )
        return role
