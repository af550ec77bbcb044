"""CloudWatch Logs rules (no AWS control covers them; ids start with MLSTACK)."""

from __future__ import annotations

from mlstack_policy.rules import MLSTACK, ResourceLike, resource_rule

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


@resource_rule("MLSTACK.LOGS.1", "Log groups are KMS-encrypted and expire", LOG_GROUP, MLSTACK)
def encrypted_and_bounded(log_group: ResourceLike) -> str | None:
    if not log_group.props.get("kmsKeyId"):
        return "not encrypted with a KMS key"
    if not log_group.props.get("retentionInDays"):
        return "no retention, so logs are kept (and paid for) forever"
    return None
