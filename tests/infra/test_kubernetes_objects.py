"""Every Kubernetes object each stack declares, as the program declares it, against the
OpenAPI schema of that stack's own Kubernetes version (unknown or misspelt fields fail)."""

from __future__ import annotations

import kubernetes_validate
import pytest

from infra.config.stack import load_config
from infra.config.stackfiles import load_stack_settings
from infra.offline.k8s_yaml import kubernetes_objects
from infra.offline.registry import offline_registry
from infra.offline.runner import ProgramRun

from .conftest import CLUSTER_STACKS, RunStack


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_every_declared_object_is_valid_for_the_stacks_kubernetes_version(
    stack: str, run_stack: RunStack
) -> None:
    version = load_config(load_stack_settings(stack).values).cluster.kubernetes_version
    with offline_registry(stack, {"demo": 1}, "eu-west-1"):
        run = run_stack(stack, servingModelVersions=["demo=1"])
    objects = kubernetes_objects(run)
    assert {obj["kind"] for obj in objects} >= {"Namespace", "Deployment", "Service"}
    for obj in objects:
        kubernetes_validate.validate(obj, version, strict=True)


def test_the_ingress_objects_are_valid_too(ingress_run: ProgramRun) -> None:
    objects = kubernetes_objects(ingress_run)
    assert "Ingress" in {obj["kind"] for obj in objects}
    for obj in objects:
        kubernetes_validate.validate(obj, "1.35", strict=True)
