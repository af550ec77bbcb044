"""Entry point of the CrossGuard pack; the rules themselves live in `mlstack_policy`."""

from pulumi_policy import PolicyPack

from mlstack_policy.crossguard import policies

PolicyPack(name="mlstack-policies", policies=policies())
