"""The committed plan of each stack's layers (infra/snapshots/<layer>/<stack>.txt) is the programs'
plan: a change to what a stack declares fails here, naming the resources, until the snapshot is
refreshed and the change shows in the review."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infra.offline.runner import ProgramRun, run_program
from infra.offline.snapshot import compare, render_snapshot, snapshot_file
from infra.project.layers import LAYERS
from infra.project.paths import PROJECT_ROOT
from mlstack_policy.rules import evaluate
from tests.cli import mlstack
from tests.infra.conftest import STACKS
from tests.logs import log_records


def snapshot(run: ProgramRun) -> str:
    return render_snapshot(run, evaluate(run.resources))


@pytest.mark.parametrize("layer", [layer.name for layer in LAYERS])
@pytest.mark.parametrize("stack", STACKS)
def test_the_committed_plan_is_the_programs_plan(
    stack: str, layer: str, stack_runs: dict[str, ProgramRun]
) -> None:
    path = snapshot_file(stack, layer)
    committed = path.read_text(encoding="utf-8")
    current = snapshot(stack_runs[stack].of_layer(layer))
    if current != committed:
        pytest.fail(
            f"{stack}'s {layer} plan differs from {path.relative_to(PROJECT_ROOT)}: "
            f"{compare(committed, current).describe()}. If the change is meant, run `make "
            "snapshots` and commit the result, so the review shows it."
        )


def test_an_unreviewed_change_is_caught_and_named() -> None:
    committed = snapshot_file("dev", "platform").read_text(encoding="utf-8")
    changed = snapshot(
        run_program("dev", overrides={"mlstack:natGateways": "per-az"}).of_layer("platform")
    )
    changes = compare(committed, changed)
    assert changes.added == [
        "aws:ec2/eip:Eip  network-nat-1",
        "aws:ec2/natGateway:NatGateway  network-nat-1",
    ]
    assert changes.removed == []
    assert changes.changed == ["aws:ec2/routeTable:RouteTable  network-private-1"]
    assert changes.describe() == (
        "added: aws:ec2/eip:Eip  network-nat-1, aws:ec2/natGateway:NatGateway  network-nat-1; "
        "changed: aws:ec2/routeTable:RouteTable  network-private-1"
    )


def test_the_snapshot_holds_nothing_that_differs_between_checkouts(
    stack_runs: dict[str, ProgramRun],
) -> None:
    """The checkout's path, the source commit and the digests derived from it are placeholders;
    secrets are masked; the Kubernetes objects are there."""
    text = snapshot(stack_runs["dev"].of_layer("platform")) + snapshot(
        stack_runs["dev"].of_layer("workloads")
    )
    head = subprocess.run(
        ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert str(PROJECT_ROOT) not in text
    assert head not in text
    assert "<project>/serving/Dockerfile" in text
    assert "images-serving-1860547@sha256:<serving image>" in text
    assert "kubernetes:batch/v1:CronJob  kubernetes-cronjob-training-demo" in text
    assert "kubeconfig: '[secret]'" in text


def test_the_snapshot_command_writes_the_file_and_refuses_overrides(tmp_path: Path) -> None:
    refused = mlstack("plan", "dev", "--snapshot", "--set", "natGateways=per-az")
    assert refused.returncode == 2
    assert "--snapshot records the stack as its files declare it" in refused.stderr
    written = mlstack("plan", "local", "--snapshot")
    assert written.returncode == 0, written.stderr
    assert written.stdout == ""
    assert [
        (record["stack"], record["message"])
        for record in log_records(written.stderr, "mlstack plan")
    ] == [
        ("local", "infra/snapshots/platform/local.txt: no change"),
        ("local", "infra/snapshots/workloads/local.txt: no change"),
    ]
