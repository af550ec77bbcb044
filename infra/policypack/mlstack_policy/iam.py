"""IAM rules: least privilege in what we write, and in what we attach."""

from __future__ import annotations

import re
from typing import Any

from mlstack_policy.documents import as_list, statements
from mlstack_policy.rules import MLSTACK, ResourceLike, resource_rule

ROLE = "aws:iam/role:Role"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
POLICY_ATTACHMENT = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"

# Verbs of calls that only read; anything else may change something.
_READ_ONLY = re.compile(
    r"^[a-z0-9-]+:(Describe|List|Get|Head|BatchGet|Search|Query|View)[A-Za-z0-9]*\*?$"
)
_BROAD_MANAGED = re.compile(r"FullAccess|AdministratorAccess|PowerUserAccess")
_SERVICE_ACCOUNT = re.compile(r"^system:serviceaccount:[a-z0-9-]+:[a-z0-9-]+$")
_GITHUB = "token.actions.githubusercontent.com"
_GITHUB_SUBJECT = re.compile(r"^repo:[A-Za-z0-9-]+/[A-Za-z0-9._-]+:[A-Za-z0-9:/._-]+$")


def _allowed_actions(document: object) -> list[tuple[dict[str, object], str]]:
    return [
        (statement, str(action))
        for statement in statements(document)
        if statement.get("Effect") == "Allow"
        for action in as_list(statement.get("Action"))
    ]


@resource_rule("IAM.21", "IAM policies we write allow no wildcard service actions", ROLE_POLICY)
def no_wildcard_actions(policy: ResourceLike) -> str | None:
    wild = [
        a for _, a in _allowed_actions(policy.props.get("policy")) if a == "*" or a.endswith(":*")
    ]
    return f"allows wildcard actions {', '.join(sorted(set(wild)))}" if wild else None


# Condition keys that scope a call naming no resource: the namespace a metric is put in, the
# tags a resource is created with (`eks:CreateCluster` takes no resource ARN; its scope is the
# tag the stack creates it with).
_SCOPING_KEYS = re.compile(r"^(cloudwatch:namespace|aws:RequestTag/.+)$")


def _scoped_write(statement: dict[str, object]) -> bool:
    """A write on `*` that a condition scopes to what the stack makes."""
    condition = statement.get("Condition")
    if not isinstance(condition, dict):
        return False
    equals = condition.get("StringEquals") or {}
    return isinstance(equals, dict) and any(_SCOPING_KEYS.match(str(key)) for key in equals)


@resource_rule(
    "MLSTACK.IAM.1",
    "IAM policies we write allow changes only on named resources",
    ROLE_POLICY,
    MLSTACK,
)
def no_writes_on_everything(policy: ResourceLike) -> str | None:
    writes = sorted(
        {
            action
            for statement, action in _allowed_actions(policy.props.get("policy"))
            if "*" in as_list(statement.get("Resource"))
            and not _READ_ONLY.match(action)
            and not _scoped_write(statement)
        }
    )
    return f"allows {', '.join(writes)} on Resource '*'" if writes else None


@resource_rule(
    "MLSTACK.IAM.2",
    "No broad AWS-managed policies (FullAccess, AdministratorAccess, PowerUserAccess)",
    POLICY_ATTACHMENT,
    MLSTACK,
)
def no_broad_managed_policies(attachment: ResourceLike) -> str | None:
    policy_arn = str(attachment.props.get("policyArn", ""))
    return f"attaches {policy_arn}" if _BROAD_MANAGED.search(policy_arn) else None


@resource_rule(
    "MLSTACK.IAM.3",
    "Roles assumed through the cluster's OIDC provider trust exactly one service account",
    ROLE,
    MLSTACK,
)
def irsa_pinned_to_one_service_account(role: ResourceLike) -> str | None:
    for statement in _web_identity(role):
        if _from_github(statement):
            continue  # MLSTACK.IAM.4
        condition = statement.get("Condition") or {}
        equals = condition.get("StringEquals") or {}
        subjects = [v for k, v in equals.items() if str(k).endswith(":sub")]
        audiences = [v for k, v in equals.items() if str(k).endswith(":aud")]
        if "StringLike" in condition or len(subjects) != 1:
            return "web-identity trust does not name exactly one subject with StringEquals"
        if not isinstance(subjects[0], str) or not _SERVICE_ACCOUNT.match(subjects[0]):
            return f"web-identity subject {subjects[0]!r} is not one service account"
        if audiences != ["sts.amazonaws.com"]:
            return "web-identity trust does not pin the audience to sts.amazonaws.com"
    return None


def _web_identity(role: ResourceLike) -> list[dict[str, Any]]:
    return [
        statement
        for statement in statements(role.props.get("assumeRolePolicy"))
        if "sts:AssumeRoleWithWebIdentity" in as_list(statement.get("Action"))
    ]


def _from_github(statement: dict[str, Any]) -> bool:
    principal = statement.get("Principal")
    federated = principal.get("Federated") if isinstance(principal, dict) else None
    return any(str(arn).endswith(f":oidc-provider/{_GITHUB}") for arn in as_list(federated))


@resource_rule(
    "MLSTACK.IAM.4",
    "Roles assumed through GitHub's OIDC provider trust exact subjects, for STS's audience",
    ROLE,
    MLSTACK,
)
def github_trust_pinned_to_exact_subjects(role: ResourceLike) -> str | None:
    """Any repository on GitHub can get a token from the same provider: without an exact
    subject (a repository and its branch, pull request or environment) anyone could assume
    the role."""
    for statement in filter(_from_github, _web_identity(role)):
        condition = statement.get("Condition")
        if not isinstance(condition, dict) or set(condition) != {"StringEquals"}:
            return "GitHub trust compares with anything but StringEquals"
        equals = condition["StringEquals"] if isinstance(condition["StringEquals"], dict) else {}
        subjects = as_list(equals.get(f"{_GITHUB}:sub"))
        if not subjects or not all(
            isinstance(s, str) and _GITHUB_SUBJECT.match(s) for s in subjects
        ):
            return f"GitHub trust subjects {subjects!r} are not exact repo:<owner>/<name>:... ones"
        if equals.get(f"{_GITHUB}:aud") != "sts.amazonaws.com":
            return "GitHub trust does not pin the audience to sts.amazonaws.com"
    return None
