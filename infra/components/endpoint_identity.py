"""What a model's SageMaker endpoint runs as and logs to, declared before any version is pinned.

The execution role and the log group belong to the model, not to a version: a new pin, a
rollback (SageMaker's own, or an emergency one) and the deploy role's work never change them, so
they live in the platform layer, and the workloads layer only hands the role to SageMaker."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.service_role import account_service_role
from infra.documents.iam import endpoint_execution_policy
from infra.documents.monitoring import rollback_alarm_names
from infra.project import naming


@dataclass(frozen=True, kw_only=True)
class EndpointIdentityArgs:
    environment: str
    model: str
    models_bucket: pulumi.Input[str]
    capture_bucket: pulumi.Input[str]
    repository_arn: pulumi.Input[str]
    """The serving image's repository."""
    kms_key_arn: pulumi.Input[str]
    log_retention_days: int
    permissions_boundary: pulumi.Input[str] | None = None
    """The stack's role permissions boundary, which every role it declares then carries (set
    when CI roles exist: the deploy roles may only write roles that carry it)."""


class EndpointIdentity(pulumi.ComponentResource):
    role: aws.iam.Role
    """The execution role SageMaker runs every version of the model with (the workloads deploy
    role passes it to SageMaker)."""
    log_group: aws.cloudwatch.LogGroup

    def __init__(
        self, name: str, args: EndpointIdentityArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:sagemaker:EndpointIdentity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        partition = aws.get_partition_output(opts=invoke).partition
        region = aws.get_region_output(opts=invoke).region
        account_id = aws.get_caller_identity_output(opts=invoke).account_id
        endpoint = naming.endpoint_name(args.model, args.environment)
        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=naming.endpoint_log_group(endpoint),
            retention_in_days=args.log_retention_days,
            kms_key_id=args.kms_key_arn,
            opts=child,
        )
        self.role = account_service_role(
            f"{name}-execution",
            parent=self,
            service="sagemaker.amazonaws.com",
            permissions_boundary=args.permissions_boundary,
            description=f"SageMaker endpoint {endpoint}",
        )
        aws.iam.RolePolicy(
            f"{name}-execution",
            role=self.role.id,
            policy=pulumi.Output.all(
                partition=partition,
                region=region,
                account_id=account_id,
                models_bucket=args.models_bucket,
                capture_bucket=args.capture_bucket,
                kms_key_arn=args.kms_key_arn,
                repository_arn=args.repository_arn,
                log_group_arn=self.log_group.arn,
            ).apply(
                lambda v: json.dumps(
                    endpoint_execution_policy(
                        partition=v["partition"],
                        model_prefix=naming.model_artifacts_uri(v["models_bucket"], args.model),
                        capture_prefix=(
                            f"s3://{v['capture_bucket']}/{naming.ENDPOINT_CAPTURE_PREFIX}/"
                            f"{endpoint}/"
                        ),
                        kms_key_arn=v["kms_key_arn"],
                        repository_arn=v["repository_arn"],
                        log_group_arn=v["log_group_arn"],
                        rollback_alarm_arns=[
                            f"arn:{v['partition']}:cloudwatch:{v['region']}:{v['account_id']}:"
                            f"alarm:{alarm}"
                            for alarm in rollback_alarm_names(endpoint)
                        ],
                    ),
                    sort_keys=True,
                )
            ),
            opts=child,
        )
        self.register_outputs({"role": self.role.arn, "logGroup": self.log_group.name})
