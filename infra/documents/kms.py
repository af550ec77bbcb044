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


def environment_key_policy(*, account_id: str, partition: str, region: str) -> dict[str, Any]:
    """The key policy of an environment's key.

    Administration stays with the account itself (so IAM policies scoped to concrete roles grant
    use of the key), never with `*`. Two services get use of it by name, because no IAM policy
    of ours can reach them: CloudWatch Logs of this account and region (flow logs and
    control-plane logs are stored encrypted) and the Auto Scaling service-linked role, which
    launches the EKS nodes whose disks the key encrypts; it may create grants only for AWS
    resources.
    """
    autoscaling = (
        f"arn:{partition}:iam::{account_id}:role/aws-service-role/"
        "autoscaling.amazonaws.com/AWSServiceRoleForAutoScaling"
    )
    return {
        "Version": "2012-10-17",
        "Statement": [
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
        ],
    }
