"""Where each stack file serves its models and what watches them, read without any engine."""

from __future__ import annotations

from typing import Any

import pytest

from infra.config.serving_targets import ServingTargets, serving_targets
from infra.config.stack import load_config
from infra.config.stackfiles import load_stack_settings


def targets_of(stack: str, **overrides: Any) -> ServingTargets:
    values = {
        **load_stack_settings(stack).values,
        **{f"mlstack:{key}": value for key, value in overrides.items()},
    }
    return serving_targets(load_config(values), ["demo"])


@pytest.mark.parametrize(
    ("stack", "prefixes", "endpoints"),
    [
        ("dev", ("kubernetes",), {}),
        ("staging", ("sagemaker", "kubernetes"), {"demo": "demo-staging"}),
        ("prod", ("sagemaker", "kubernetes"), {"demo": "demo-prod"}),
    ],
)
def test_each_stack_captures_where_it_serves_and_checks_drift_there(
    stack: str, prefixes: tuple[str, ...], endpoints: dict[str, str]
) -> None:
    targets = targets_of(stack)
    assert targets.capture_prefixes == prefixes
    assert targets.endpoints == endpoints
    assert targets.drifted == {"demo": f"demo-{stack}"}
    assert targets.capture_on_cluster


def test_no_capture_or_no_schedule_means_no_drift_job() -> None:
    assert targets_of("dev", dataCapturePercent=0).drifted == {}
    assert not targets_of("dev", dataCapturePercent=0).capture_on_cluster
    assert targets_of("dev", driftSchedule="").drifted == {}


def test_without_the_cluster_only_sagemaker_serves_and_nothing_checks_drift() -> None:
    local = targets_of("local")
    assert not local.serves
    on_sagemaker = targets_of("local", servingTarget="sagemaker")
    assert (on_sagemaker.on_cluster, on_sagemaker.on_sagemaker) == (False, True)
    assert on_sagemaker.capture_prefixes == ("sagemaker",)
    assert on_sagemaker.drifted == {}
