"""KMS key policy documents."""

from __future__ import annotations

from typing import Any

# What CloudWatch Logs needs to encrypt log groups (flow logs, control-plane logs) with the key.
LOGS_KEY_ACTIONS = (
    "kms:Encrypt*",
    "kms:Decrypt*",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:Describe*",
)


# What EC2 Auto Scaling needs to launch nodes whose volumes are encrypted with the key.
VOLUME_KEY_ACTIONS = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncrypt*",
    "kms:GenerateDataKey*",
    "kms:DescribeKey",
)


ALARM_PUBLISHERS = ("cloudwatch.amazonaws.com", "budgets.amazonaws.com")
"""Services that publish to the environment's alarm topic."""

AUTOSCALING_SERVICE = "autoscaling.amazonaws.com"
AUTOSCALING_ROLE_PATH = f"/aws-service-role/{AUTOSCALING_SERVICE}/"
AUTOSCALING_ROLE_NAME = "AWSServiceRoleForAutoScaling"


def autoscaling_role_arn(*, account_id: str, partition: str) -> str:
    """The ARN of the account's EC2 Auto Scaling service-linked role; fixed by AWS."""
    return f"arn:{partition}:iam::{account_id}:role{AUTOSCALING_ROLE_PATH}{AUTOSCALING_ROLE_NAME}"


def environment_key_policy(
    *, account_id: str, partition: str, region: str, node_volumes: bool
) -> dict[str, Any]:
    """The key policy of an environment's key.

    Administration stays with the account itself (so IAM policies scoped to concrete roles grant
    use of the key), never with `*`. Services no IAM policy of ours can reach get use of it by
    name: CloudWatch Logs of this account and region (flow logs and control-plane logs are stored
    encrypted), CloudWatch alarms and Budgets of this account (they publish to the encrypted
    alarm topic) and, with `node_volumes`, the Auto Scaling service-linked role, which launches the
    EKS nodes whose disks the key encrypts and may create grants only for AWS resources. KMS
    refuses a policy naming a role that does not exist, so whoever declares this policy with
    `node_volumes` must make sure that role exists first (`EnvironmentKey` does).
    """
    statements: list[dict[str, Any]] = [
        {
            "Sid": "AccountAdministersKeyThroughIam",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "CloudWatchLogsOfThisAccountEncrypt",
            "Effect": "Allow",
            "Principal": {"Service": f"logs.{region}.amazonaws.com"},
            "Action": list(LOGS_KEY_ACTIONS),
            "Resource": "*",
            "Condition": {
                "ArnLike": {
                    "kms:EncryptionContext:aws:logs:arn": (
                        f"arn:{partition}:logs:{region}:{account_id}:log-group:*"
                    )
                }
            },
        },
        {
            # The alarm topic is encrypted with this key: whoever publishes to it must be able
            # to make a data key. CloudWatch alarms and Budgets of this account only.
            "Sid": "AlarmsOfThisAccountPublishEncrypted",
            "Effect": "Allow",
            "Principal": {"Service": list(ALARM_PUBLISHERS)},
            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
        },
    ]
    if node_volumes:
        autoscaling = autoscaling_role_arn(account_id=account_id, partition=partition)
        statements += [
            {
                "Sid": "AutoScalingEncryptsNodeVolumes",
                "Effect": "Allow",
                "Principal": {"AWS": autoscaling},
                "Action": list(VOLUME_KEY_ACTIONS),
                "Resource": "*",
            },
            {
                "Sid": "AutoScalingGrantsForNodeVolumes",
                "Effect": "Allow",
                "Principal": {"AWS": autoscaling},
                "Action": "kms:CreateGrant",
                "Resource": "*",
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            },
        ]
    return {"Version": "2012-10-17", "Statement": statements}
