"""KMS rules, with the ids of the FSBP controls they mirror."""

from __future__ import annotations

from mlstack_policy.documents import is_everyone, statements
from mlstack_policy.rules import ResourceLike, resource_rule

KEY = "aws:kms/key:Key"


@resource_rule("KMS.4", "KMS key rotation is enabled", KEY)
def rotates(key: ResourceLike) -> str | None:
    if key.props.get("customerMasterKeySpec", "SYMMETRIC_DEFAULT") != "SYMMETRIC_DEFAULT":
        return None  # AWS rotates only symmetric keys
    return None if key.props.get("enableKeyRotation") is True else "automatic rotation is off"


@resource_rule("KMS.5", "KMS keys are not publicly accessible", KEY)
def not_public(key: ResourceLike) -> str | None:
    for statement in statements(key.props.get("policy")):
        if (
            statement.get("Effect") == "Allow"
            and is_everyone(statement.get("Principal"))
            and not statement.get("Condition")
        ):
            return f"key policy statement {statement.get('Sid', '(no Sid)')!r} allows any principal"
    return None
