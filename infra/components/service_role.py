"""An IAM role one AWS service assumes on this account's behalf only."""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from infra.documents.iam import service_trust_policy


def account_service_role(
    name: str,
    *,
    parent: pulumi.Resource,
    service: str,
    permissions_boundary: pulumi.Input[str] | None,
    description: str | None = None,
) -> aws.iam.Role:
    """The role, trusted by `service` for this account only (no confused deputy), carrying the
    stack's permissions boundary when it has one; its permissions are the caller's."""
    account_id = aws.get_caller_identity_output(
        opts=pulumi.InvokeOutputOptions(parent=parent)
    ).account_id
    return aws.iam.Role(
        name,
        description=description,
        assume_role_policy=account_id.apply(
            lambda account: json.dumps(
                service_trust_policy(service, account_id=account), sort_keys=True
            )
        ),
        permissions_boundary=permissions_boundary,
        opts=pulumi.ResourceOptions(parent=parent),
    )
