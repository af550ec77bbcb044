"""The stack's configuration as frozen, typed sections, validated before any resource exists.

Values come from `pulumi.Config` inside the program, or from a plain mapping in tests and in
`mlstack plan`. Types and defaults are those `Pulumi.yaml` declares (`infra.config.schema`);
the sections (`infra.config.sections`) check what each value means, and `infra.config.rules`
the combinations. Every problem is collected and reported together, each naming the key, the
value given and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from infra.config.errors import ConfigError
from infra.config.reader import Reader, runtime_config_values, show
from infra.config.regions import check_region
from infra.config.rules import check_combinations
from infra.config.schema import ConfigKey, load_schema
from infra.config.sections.ci import CiConfig, read_ci
from infra.config.sections.cluster import ClusterConfig, read_cluster
from infra.config.sections.monitoring import MonitoringConfig, read_monitoring
from infra.config.sections.network import NetworkConfig, read_network
from infra.config.sections.registry import RegistryConfig, read_registry
from infra.config.sections.serving import ServingConfig, read_serving
from infra.config.sections.storage import StorageConfig, read_storage
from infra.config.sections.training import TrainingConfig, read_training
from infra.project import naming

MAX_ENVIRONMENT = 16


@dataclass(frozen=True, kw_only=True)
class StackConfig:
    """Everything one stack is configured with, checked."""

    environment: str
    region: str
    """`aws:region`, which the program reads too (the registry lookups); empty when the stack
    leaves it to the provider's environment."""
    deletion_protection: bool
    network: NetworkConfig
    storage: StorageConfig
    cluster: ClusterConfig
    registry: RegistryConfig
    serving: ServingConfig
    training: TrainingConfig
    monitoring: MonitoringConfig
    ci: CiConfig


ENVIRONMENT_RULE = (
    f"2-{MAX_ENVIRONMENT} characters: a lowercase letter, then lowercase letters or digits"
)


def environment_problem(value: str) -> str | None:
    """Which name derived from the environment `value` would break, and why; None when none.

    The environment is part of the cluster name (`mlstack-<env>`), the key alias, each model
    package group (`<model>-<env>`) and Kubernetes labels; the rule is the strictest of theirs."""
    group = naming.model_package_group("<model>", value)
    if len(value) > MAX_ENVIRONMENT:
        return (
            f"names made from it ({naming.cluster_name(value)}, {group}, labels) must fit the "
            "length limits of EKS, SageMaker and Kubernetes once a model name is added"
        )
    if len(value) < 2:
        return "a one-letter environment is too easily mistaken in names and labels"
    if not re.fullmatch(r"[a-z0-9-]+", value):
        bad = sorted({c for c in value if not re.fullmatch(r"[a-z0-9-]", c)})
        return (
            f"{''.join(bad)!r} cannot appear in Kubernetes labels and object names, which carry "
            f"the environment and allow only lowercase letters, digits and '-'"
        )
    if not value[0].isalpha():
        return f"the cluster name {naming.cluster_name(value)} and labels need a letter first"
    if "-" in value:
        # `<model>-<env>` names end in `-<env>`, and the CI roles are granted this stack's
        # endpoints, groups and alarms by that ending: with a '-' in an environment's name,
        # `*-<env>` of one environment could match another's (`*-prod` matches `x-pre-prod`).
        return (
            f"names made from it end in '-{value}' ({group}), and the CI roles find the stack's "
            f"own resources by that ending, which another environment's names must never share"
        )
    return None


def check_environment(value: str) -> str | None:
    problem = environment_problem(value)
    return None if problem is None else f"{ENVIRONMENT_RULE} ({problem})"


def load_config(
    values: Mapping[str, Any], schema: Mapping[str, ConfigKey] | None = None
) -> StackConfig:
    """Check `values` (keys with or without the `mlstack:` prefix) and build the typed config.

    Raises `ConfigError` listing every problem; nothing is half-built.
    """
    read = Reader(values, schema if schema is not None else load_schema())
    environment = read.string("environment", check_environment)
    _check_region(read)
    deletion_protection = read.boolean("deletionProtection")
    region = read.provider_values.get("aws:region")
    config = StackConfig(
        environment=environment,
        region=region if isinstance(region, str) else "",
        deletion_protection=deletion_protection,
        network=read_network(read),
        storage=read_storage(read),
        cluster=read_cluster(read),
        registry=read_registry(read),
        serving=read_serving(read),
        training=read_training(read),
        monitoring=read_monitoring(read),
        ci=read_ci(read),
    )
    check_combinations(config, read)
    if read.problems:
        raise ConfigError(read.problems)
    return config


def _check_region(read: Reader) -> None:
    """`aws:region` is the provider's setting; it is only checked here, since the provider skips
    region validation and a misspelt region would fail at the first API call."""
    region = read.provider_values.get("aws:region")
    if region is None:
        return
    allowed = check_region(region) if isinstance(region, str) else "an AWS region name"
    if allowed is not None:
        read.failed.add("aws:region")
        read.problems.append(f"aws:region = {show(region)}: allowed: {allowed}")


def from_pulumi() -> StackConfig:
    """Read the running stack's configuration; a bad value stops the program with the message."""
    import pulumi

    try:
        config = load_config(runtime_config_values())
    except ConfigError as error:
        raise pulumi.RunError(str(error)) from error
    return config
