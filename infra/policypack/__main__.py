"""Entry point of the CrossGuard pack; the rules themselves live in `infra.policy`."""

from pulumi_policy import PolicyPack

from infra.policy.crossguard import stack_policies

PolicyPack(name="mlstack-policies", policies=stack_policies())
