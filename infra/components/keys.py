"""The environment's KMS key: one customer-managed key that encrypts everything the stack stores."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import naming
from infra.documents.kms import environment_key_policy


@dataclass(frozen=True, kw_only=True)
class EnvironmentKeyArgs:
    """Settings of the environment key."""

    environment: str
    """Environment name; the key's alias is derived from it."""
    deletion_window_days: int
    """Days AWS waits before deleting a key scheduled for deletion (7-30)."""
    protect: bool
    """Refuse to delete the key from `pulumi destroy` or a replacing update."""

    def __post_init__(self) -> None:
        if not 7 <= self.deletion_window_days <= 30:
            raise ValueError(
                f"deletion_window_days = {self.deletion_window_days}: allowed: 7 to 30"
            )


class EnvironmentKey(pulumi.ComponentResource):
    """A symmetric KMS key with yearly rotation, a policy scoped to this account, and an alias."""

    key: aws.kms.Key
    alias: aws.kms.Alias
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
                environment_key_policy(account_id=values[0], partition=values[1], region=values[2]),
                sort_keys=True,
            )
        )
        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"mlstack {args.environment}: data, models, capture, logs and secrets",
            key_usage="ENCRYPT_DECRYPT",
            customer_master_key_spec="SYMMETRIC_DEFAULT",
            enable_key_rotation=True,
            rotation_period_in_days=365,
            deletion_window_in_days=args.deletion_window_days,
            policy=policy,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        self.alias = aws.kms.Alias(
            f"{name}-alias",
            name=naming.kms_alias(args.environment),
            target_key_id=self.key.key_id,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.arn = self.key.arn
        self.register_outputs({"arn": self.arn, "alias": self.alias.name})
