"""`mlstack rollback ENV` for a model: it goes back to the version that last served, as each
target's history shows it; with --now traffic moves at once; the pin, the registry and the
audit log change together or not at all."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.cli.main import main
from infra.config.stack import load_config
from infra.config.stackfiles import load_stack_settings
from infra.operations.live_state import ROLLED_BACK_TAG
from mlstack_common.exits import ExitStatus
from tests import kubernetes_api
from tests.aws import EndpointUpdates, support_endpoint_updates
from tests.infra.live_targets import (
    NAMESPACE,
    EndpointFleet,
    deployment_objects,
    rollback_alarms,
)
from tests.infra.operating import REGION, Registry
from tests.logs import log_messages

STATUSES = ["Approved", "Approved", "Rejected", "Approved", "Approved", "Approved"]
"""demo's versions 1-6 in each environment's registry: 3 was Rejected."""
DEPLOYMENT = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/serving-demo"


def rollback(project: Path, stack: str, *args: str) -> int:
    return main(["rollback", stack, "--reason", "INC-9", *args, "--project-dir", str(project)])


def pins(project: Path, stack: str) -> dict[str, int]:
    return dict(load_config(load_stack_settings(stack, project).values).serving.model_versions)


def serve_on(project: Path, stack: str, target: str, version: int) -> None:
    path = project / f"Pulumi.{stack}.yaml"
    text = path.read_text().replace("  mlstack:servingTarget: both\n", "")
    path.write_text(
        text
        + f"  mlstack:servingTarget: {target}\n"
        + f"  mlstack:servingModelVersions:\n    - demo={version}  # CAB-1\n"
    )


@pytest.fixture
def updates(monkeypatch: pytest.MonkeyPatch) -> EndpointUpdates:
    return support_endpoint_updates(monkeypatch)


@pytest.fixture
def versions(registry: Registry) -> Registry:
    for environment in ("dev", "staging"):
        for number, status in enumerate(STATUSES, start=1):
            registry.register(f"demo-{environment}", str(number) * 64, status=status)
    return registry


@pytest.fixture
def fleet(versions: Registry, updates: EndpointUpdates) -> EndpointFleet:
    return EndpointFleet(versions.client, "demo-dev")


def snapshot(project: Path, stack: str, registry: Registry) -> tuple[str, list[Any], int]:
    """The stack file, the registry's statuses and descriptions, and the audit log's length."""
    group = f"demo-{'dev' if stack == 'dev' else stack}"
    statuses = [registry.status(group, n) for n in range(1, len(STATUSES) + 1)]
    return (project / f"Pulumi.{stack}.yaml").read_text(), statuses, len(registry.audit(stack))


# SageMaker


def test_the_version_sagemaker_serves_is_pinned_not_the_newest_approved_one(
    project: Path, fleet: EndpointFleet, versions: Registry, updates: EndpointUpdates
) -> None:
    """v2 served; the deploy of v6 was rolled back by SageMaker's alarms, so the endpoint runs
    v2 while v6 is pinned; v5 is Approved but never served. The rollback pins v2."""
    serve_on(project, "dev", "sagemaker", 6)
    fleet.deployed(2, 6, rolled_back={6})

    assert rollback(project, "dev") == 0

    assert pins(project, "dev") == {"demo": 2}
    assert "# CAB-1" in (project / "Pulumi.dev.yaml").read_text()
    assert updates.requests == []  # it already serves v2: nothing to move
    status, description = versions.status("demo-dev", 6)
    assert status == "Approved"
    assert description.startswith("rolled back in dev to version 2 by ")
    [record] = versions.audit("dev")
    assert (record.action, record.reason, record.models) == ("rollback", "INC-9", ("demo",))
    assert record.aws_identity.startswith("arn:aws:")
    assert any("SageMaker rolled the update back" in line for line in record.changes)
    assert "-    - demo=6  # CAB-1" in record.diff
    assert "+    - demo=2  # CAB-1" in record.diff


def test_now_points_the_endpoint_back_all_at_once_keeping_its_instances(
    project: Path,
    fleet: EndpointFleet,
    versions: Registry,
    updates: EndpointUpdates,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """v2 served, v5's deploy was rolled back, v6 deployed and serves (badly): --now goes
    back to v2 — the configuration that served, not v5's, which never did."""
    serve_on(project, "dev", "sagemaker", 6)
    fleet.deployed(2, 5, 6, rolled_back={5})
    updates.requests.clear()

    assert rollback(project, "dev", "--now") == 0

    [request] = updates.requests
    assert request["EndpointConfigName"] == fleet.configs[2]
    assert request["RetainAllVariantProperties"] is True
    policy = request["DeploymentConfig"]["BlueGreenUpdatePolicy"]
    assert policy["TrafficRoutingConfiguration"]["Type"] == "ALL_AT_ONCE"
    assert "AutoRollbackConfiguration" not in request["DeploymentConfig"]
    assert fleet.live_config() == fleet.configs[2]
    assert ROLLED_BACK_TAG in fleet.tags(6)
    assert pins(project, "dev") == {"demo": 2}
    [record] = versions.audit("dev")
    assert record.action == "emergency-rollback"
    assert any("all at once" in line for line in record.changes)
    assert "before it, version 2 served" in log_messages(capsys.readouterr().err)


def test_now_during_an_update_trips_the_rollback_alarms_instead(
    project: Path, fleet: EndpointFleet, versions: Registry, updates: EndpointUpdates
) -> None:
    """An endpoint in the middle of an update cannot be updated: SageMaker is made to roll the
    update back by its own alarms, and the pin goes to the version the old fleet serves."""
    from moto.sagemaker.models import sagemaker_backends

    serve_on(project, "dev", "sagemaker", 6)
    fleet.deployed(2)
    fleet.configuration(6)  # the update to it is still under way
    updates.start_update(sagemaker_backends["123456789012"][REGION], "demo-dev", fleet.configs[6])
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    alarms = rollback_alarms(cloudwatch, "demo-dev")

    assert rollback(project, "dev", "--now") == 0

    states = cloudwatch.describe_alarms(AlarmNames=alarms)["MetricAlarms"]
    assert {a["StateValue"] for a in states} == {"ALARM"}
    assert all("emergency rollback: INC-9" in a["StateReason"] for a in states)
    assert updates.requests == []
    assert pins(project, "dev") == {"demo": 2}


def test_a_version_the_endpoint_no_longer_retains_needs_a_deploy(
    project: Path, fleet: EndpointFleet, versions: Registry
) -> None:
    serve_on(project, "dev", "sagemaker", 6)
    fleet.deployed(6)
    before = snapshot(project, "dev", versions)

    assert rollback(project, "dev", "--now", "--to", "4") == 1

    assert snapshot(project, "dev", versions) == before


@pytest.mark.parametrize(
    ("to", "why"),
    [
        ("3", "it is Rejected"),
        ("9", "there is no such version"),
    ],
)
def test_a_version_that_cannot_be_served_is_refused(
    project: Path,
    fleet: EndpointFleet,
    versions: Registry,
    to: str,
    why: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    serve_on(project, "dev", "sagemaker", 6)
    fleet.deployed(6)
    before = snapshot(project, "dev", versions)

    assert rollback(project, "dev", "--to", to) == 1

    message = log_messages(capsys.readouterr().err)
    assert f"cannot roll back to version {to} of 'demo-dev': {why}" in message
    assert snapshot(project, "dev", versions) == before


def test_with_no_history_the_version_must_be_named(
    project: Path, fleet: EndpointFleet, versions: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_on(project, "dev", "sagemaker", 6)
    fleet.deployed(6)

    assert rollback(project, "dev") == 1

    assert "name it with --to N" in log_messages(capsys.readouterr().err)
    assert rollback(project, "dev", "--to", "4") == 0
    assert pins(project, "dev") == {"demo": 4}


# Kubernetes


def test_now_gives_the_deployment_the_previous_revisions_template(
    project: Path,
    versions: Registry,
    cluster: kubernetes_api.ApiServer,
) -> None:
    """The Deployment is rolling out v6 (revision 3) after v5 (2) and v2 (1): --now puts
    revision 2's template back, as `kubectl rollout undo` does."""
    serve_on(project, "dev", "kubernetes", 6)
    cluster.objects.update(deployment_objects("serving-demo", [2, 5, 6], rolled_out=False))

    assert rollback(project, "dev", "--now") == 0

    [(_, path, body)] = [r for r in cluster.requests if r[0] == "PUT"]
    assert path == DEPLOYMENT
    assert body is not None
    labels = body["spec"]["template"]["metadata"]["labels"]
    assert labels["mlstack.dev/model-version"] == "5"
    assert "pod-template-hash" not in labels
    assert body["metadata"]["resourceVersion"] == "7"  # refused if someone changed it since
    assert pins(project, "dev") == {"demo": 5}
    [record] = versions.audit("dev")
    assert record.action == "emergency-rollback"
    assert any("revision 2" in line for line in record.changes)


def test_without_now_the_cluster_is_read_and_left_alone(
    project: Path, versions: Registry, cluster: kubernetes_api.ApiServer
) -> None:
    serve_on(project, "dev", "kubernetes", 6)
    cluster.objects.update(deployment_objects("serving-demo", [4, 6]))

    assert rollback(project, "dev") == 0

    assert [r for r in cluster.requests if r[0] != "GET"] == []
    assert pins(project, "dev") == {"demo": 4}


# Both targets


def test_both_targets_are_moved_when_they_agree(
    project: Path,
    versions: Registry,
    updates: EndpointUpdates,
    cluster: kubernetes_api.ApiServer,
) -> None:
    fleet = EndpointFleet(versions.client, "demo-staging")
    serve_on(project, "staging", "both", 6)
    fleet.deployed(4, 6)
    cluster.objects.update(deployment_objects("serving-demo", [4, 6]))

    assert rollback(project, "staging", "--now") == 0

    assert fleet.live_config() == fleet.configs[4]
    assert any(r[0] == "PUT" for r in cluster.requests)
    assert pins(project, "staging") == {"demo": 4}


def test_targets_that_disagree_are_refused_naming_both(
    project: Path,
    versions: Registry,
    updates: EndpointUpdates,
    cluster: kubernetes_api.ApiServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    fleet = EndpointFleet(versions.client, "demo-staging")
    serve_on(project, "staging", "both", 6)
    fleet.deployed(4, 6)
    cluster.objects.update(deployment_objects("serving-demo", [5, 6]))
    before = snapshot(project, "staging", versions)

    assert rollback(project, "staging", "--now") == 1

    message = log_messages(capsys.readouterr().err)
    assert "endpoint demo-staging" in message
    assert "deployment mlstack/serving-demo" in message
    assert "--to N" in message
    assert snapshot(project, "staging", versions) == before
    assert [r for r in cluster.requests if r[0] == "PUT"] == []
    assert fleet.live_config() == fleet.configs[6]


# All or nothing


@pytest.mark.parametrize(
    ("interruption", "expected", "said"),
    [
        (OSError(28, "No space left on device"), ExitStatus.USAGE, "No space left on device"),
        (KeyboardInterrupt(), ExitStatus.INTERRUPTED, "interrupted (Ctrl-C)"),
    ],
    ids=["disk full", "ctrl-c"],
)
def test_an_interrupted_rollback_leaves_registry_and_stack_file_as_they_were(
    project: Path,
    fleet: EndpointFleet,
    versions: Registry,
    monkeypatch: pytest.MonkeyPatch,
    interruption: BaseException,
    expected: ExitStatus,
    said: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    serve_on(project, "dev", "sagemaker", 6)
    fleet.deployed(2, 6, rolled_back={6})
    text, statuses, _ = snapshot(project, "dev", versions)

    def fail(*_: Any) -> None:
        raise interruption

    monkeypatch.setattr(os, "replace", fail)
    status = main(["rollback", "dev", "--reason", "INC-9", "--project-dir", str(project)])

    assert status == expected
    assert said in log_messages(capsys.readouterr().err)

    assert (project / "Pulumi.dev.yaml").read_text() == text
    assert [p.name for p in project.iterdir() if p.name.endswith(".partial")] == []
    assert [versions.status("demo-dev", n) for n in range(1, 7)] == statuses
    assert [r.action for r in versions.audit("dev")] == ["rollback", "revert"]


def test_nothing_changes_when_the_audit_log_cannot_record_it(
    project: Path, fleet: EndpointFleet, versions: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    serve_on(project, "dev", "sagemaker", 6)
    fleet.deployed(2, 6, rolled_back={6})
    versions.logs.delete_log_group(logGroupName="/mlstack/dev/audit")
    before = (project / "Pulumi.dev.yaml").read_text(), versions.status("demo-dev", 6)

    assert rollback(project, "dev") == 1

    assert "the audit log /mlstack/dev/audit does not exist" in log_messages(
        capsys.readouterr().err
    )
    assert ((project / "Pulumi.dev.yaml").read_text(), versions.status("demo-dev", 6)) == before
