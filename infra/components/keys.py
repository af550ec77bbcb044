"""The environment's KMS key: one customer-managed key that encrypts everything the stack stores."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.adoption import kept_resource
from infra.documents.kms import (
    AUTOSCALING_ROLE_NAME,
    AUTOSCALING_ROLE_PATH,
    AUTOSCALING_SERVICE,
    environment_key_policy,
)
from infra.project import naming


@dataclass(frozen=True, kw_only=True)
class EnvironmentKeyArgs:
    """Settings of the environment key."""

    environment: str
    """Environment name; the key's alias is derived from it."""
    deletion_window_days: int
    """Days AWS waits before deleting a key scheduled for deletion (7-30)."""
    protect: bool
    """Refuse to delete the key from `pulumi destroy` or a replacing update."""
    node_volumes: bool
    """Let EC2 Auto Scaling encrypt node disks with the key (when the stack has node groups)."""

    def __post_init__(self) -> None:
        if not 7 <= self.deletion_window_days <= 30:
            raise ValueError(
                f"deletion_window_days = {self.deletion_window_days}: allowed: 7 to 30"
            )


class EnvironmentKey(pulumi.ComponentResource):
    """A symmetric KMS key with yearly rotation, a policy scoped to this account, and an alias."""

    key: aws.kms.Key
    alias: aws.kms.Alias
    autoscaling_role: aws.iam.ServiceLinkedRole | None
    """The account's Auto Scaling service-linked role, created or adopted, with `node_volumes`."""
    arn: pulumi.Output[str]
    """ARN of the key, for encryption settings and IAM policies."""

    def __init__(
        self, name: str, args: EnvironmentKeyArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:keys:EnvironmentKey", name, None, opts)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        identity = aws.get_caller_identity_output(opts=invoke)
        partition = aws.get_partition_output(opts=invoke)
        region = aws.get_region_output(opts=invoke)
        policy = pulumi.Output.all(identity.account_id, partition.partition, region.region).apply(
            lambda values: json.dumps(
                environment_key_policy(
                    account_id=values[0],
                    partition=values[1],
                    region=values[2],
                    node_volumes=args.node_volumes,
                ),
                sort_keys=True,
            )
        )
        self.autoscaling_role = self._autoscaling_role(name) if args.node_volumes else None
        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"mlstack {args.environment}: data, models, capture, logs and secrets",
            key_usage="ENCRYPT_DECRYPT",
            customer_master_key_spec="SYMMETRIC_DEFAULT",
            enable_key_rotation=True,
            rotation_period_in_days=365,
            deletion_window_in_days=args.deletion_window_days,
            policy=policy,
            opts=pulumi.ResourceOptions(
                parent=self,
                protect=args.protect,
                # KMS refuses a policy that names a role which does not exist yet.
                depends_on=[self.autoscaling_role] if self.autoscaling_role else None,
            ),
        )
        self.alias = aws.kms.Alias(
            f"{name}-alias",
            name=naming.kms_alias(args.environment),
            target_key_id=self.key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = self.key.arn
        self.register_outputs({"arn": self.arn, "alias": self.alias.name})

    def _autoscaling_role(self, name: str) -> aws.iam.ServiceLinkedRole:
        """The Auto Scaling service-linked role the key policy names.

        AWS creates it with an account's first Auto Scaling group, so a fresh account has none
        and KMS would refuse the key policy. It is looked up (a list that answers empty rather
        than failing), created when absent and adopted when present; it belongs to the account,
        so destroying the stack keeps it."""
        found = aws.iam.get_roles(
            path_prefix=AUTOSCALING_ROLE_PATH,
            name_regex=f"^{AUTOSCALING_ROLE_NAME}$",
            opts=pulumi.InvokeOptions(parent=self),
        )
        existing = found.arns[0] if found.arns else None
        return aws.iam.ServiceLinkedRole(
            f"{name}-autoscaling-role",
            aws_service_name=AUTOSCALING_SERVICE,
            opts=kept_resource(self, existing, ignore_changes=("description", "tags", "tagsAll")),
        )
