"""The environment key on a fresh account and on one that already has the roles it names."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.documents.kms import autoscaling_role_arn
from infra.offline.mocks import ACCOUNT_ID, Account
from infra.offline.runner import ProgramRun, run_program

from .conftest import CLUSTER_STACKS, STACKS

SERVICE_LINKED_ROLE = "aws:iam/serviceLinkedRole:ServiceLinkedRole"
KEY = "aws:kms/key:Key"
EXISTING_ROLE = autoscaling_role_arn(account_id=ACCOUNT_ID, partition="aws")
ACCOUNTS = {
    "fresh account": Account(),
    "account with Auto Scaling's role": Account(existing_roles=(EXISTING_ROLE,)),
}


def principals(run: ProgramRun) -> set[str]:
    [key] = run.of_type(KEY)
    policy: dict[str, Any] = json.loads(key.inputs["policy"])
    named: set[str] = set()
    for statement in policy["Statement"]:
        aws = statement["Principal"].get("AWS", [])
        named.update([aws] if isinstance(aws, str) else aws)
    return named


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("account", list(ACCOUNTS), ids=list(ACCOUNTS))
def test_the_key_policy_names_no_principal_that_may_not_exist(stack: str, account: str) -> None:
    # KMS refuses a key policy naming a principal that does not exist. Each principal is the
    # account itself, a role the lookup found, or a role this stack declares before the key.
    run = run_program(stack, account=ACCOUNTS[account])
    [key] = run.of_type(KEY)
    declared = {r.props["arn"]: r for r in run.of_type(SERVICE_LINKED_ROLE)}
    for principal in principals(run):
        if principal == f"arn:aws:iam::{ACCOUNT_ID}:root":
            continue
        assert principal in ACCOUNTS[account].existing_roles or principal in declared, principal
        role = declared[principal]
        assert role.urn in key.dependencies, "the key must wait for the role it names"


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_on_a_fresh_account_the_auto_scaling_role_is_created_and_kept(stack: str) -> None:
    run = run_program(stack, account=ACCOUNTS["fresh account"])
    [role] = run.of_type(SERVICE_LINKED_ROLE)
    assert role.inputs["awsServiceName"] == "autoscaling.amazonaws.com"
    assert role.import_id == ""
    assert role.retain_on_delete, "other stacks and AWS itself use the account's role"
    assert EXISTING_ROLE in principals(run)
    [lookup] = [args for token, args in run.calls if token == "aws:iam/getRoles:getRoles"]
    assert lookup == {
        "pathPrefix": "/aws-service-role/autoscaling.amazonaws.com/",
        "nameRegex": "^AWSServiceRoleForAutoScaling$",
    }


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_on_an_account_that_has_the_role_it_is_adopted_not_created(stack: str) -> None:
    run = run_program(stack, account=ACCOUNTS["account with Auto Scaling's role"])
    [role] = run.of_type(SERVICE_LINKED_ROLE)
    assert role.import_id == EXISTING_ROLE
    assert role.retain_on_delete
    # Adopting must not fail on what AWS set when it made the role itself.
    again = run_program(stack, account=ACCOUNTS["account with Auto Scaling's role"])
    assert [r.inputs for r in again.of_type(SERVICE_LINKED_ROLE)] == [role.inputs]


def test_without_a_cluster_the_key_names_no_auto_scaling_role() -> None:
    run = run_program("local")
    assert run.of_type(SERVICE_LINKED_ROLE) == []
    assert principals(run) == {f"arn:aws:iam::{ACCOUNT_ID}:root"}
    assert not [token for token, _ in run.calls if token == "aws:iam/getRoles:getRoles"]
