"""Value formats that keys of more than one section take."""

from __future__ import annotations

import re

# The only values CloudWatch Logs accepts for a log group's retention.
LOG_RETENTION_DAYS: tuple[int, ...] = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557,
    2922, 3288, 3653,
)  # fmt: skip

_IAM_PRINCIPAL_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:(?:role|user)/[\w+=,.@/-]+$")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,\-?]+$")


def check_principal_arn(value: str) -> str | None:
    if _IAM_PRINCIPAL_ARN.match(value):
        return None
    return "an IAM role or user ARN: arn:aws:iam::<12-digit account>:role/<name>"


def check_cron(value: str) -> str | None:
    fields = value.split()
    if value == "" or (len(fields) == 5 and all(_CRON_FIELD.match(field) for field in fields)):
        return None
    return "a 5-field cron expression such as '0 3 * * 1' (UTC), or empty for on demand only"
