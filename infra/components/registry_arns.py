"""The ARNs of an environment's model package groups, for policies of roles declared before the
groups: they are known from the account, region and names alone, so the groups' own policies
can name those roles without a dependency cycle."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

from infra.project import naming


def model_package_group_arns(
    parent: pulumi.Resource, environment: str, models: Sequence[str]
) -> pulumi.Output[list[str]]:
    invoke = pulumi.InvokeOutputOptions(parent=parent)
    return pulumi.Output.all(
        aws.get_partition_output(opts=invoke).partition,
        aws.get_region_output(opts=invoke).region,
        aws.get_caller_identity_output(opts=invoke).account_id,
    ).apply(
        lambda values: [
            naming.model_package_group_arn(
                partition=values[0],
                region=values[1],
                account_id=values[2],
                group=naming.model_package_group(model, environment),
            )
            for model in models
        ]
    )
