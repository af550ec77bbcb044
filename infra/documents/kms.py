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


def environment_key_policy(*, account_id: str, partition: str, region: str) -> dict[str, Any]:
    """The key policy of an environment's key.

    Administration stays with the account itself (so IAM policies scoped to concrete roles grant
    use of the key), never with `*`; CloudWatch Logs of this account and region may encrypt with
    it, because flow logs and control-plane logs are stored encrypted.
    """
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
        ],
    }
