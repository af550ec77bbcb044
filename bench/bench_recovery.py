"""Time to recover with `mlstack rollback ENV --now`, per target, as far as this machine can
measure it: the command's own time (history read, audit record, registry and stack file, the
traffic move) against moto and an API server on 127.0.0.1 standing in for EKS. What comes after
the command is the target's own work — SageMaker starting a fleet from the retained
configuration, the Deployment controller scaling the old ReplicaSet up — and is stated in
bench/README.md from the services' documentation and the serving image's cold start.

Run: uv run python bench/bench_recovery.py --repeat 5
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from moto import mock_aws
from moto.sagemaker.models import sagemaker_backends

from infra.cli.main import main
from infra.operations import cluster_access
from infra.project import naming
from serving.cluster_api import ClusterApi
from tests import kubernetes_api
from tests.aws import support_endpoint_updates, use_emulator_credentials
from tests.infra.live_targets import EndpointFleet, deployment_objects, rollback_alarms
from tests.infra.operating import REGION, Registry, copy_project


def scene(target: str, case: str, monkeypatch: pytest.MonkeyPatch, root: Path) -> Callable[[], int]:
    """dev serving demo v6 after v5 on `target`, the rollback command ready to run."""
    project = copy_project(root)
    stack = project / "Pulumi.dev.yaml"
    stack.write_text(
        stack.read_text()
        + f"  mlstack:servingTarget: {target}\n  mlstack:servingModelVersions:\n    - demo=6\n"
    )
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    logs = boto3.client("logs", region_name=REGION)
    logs.create_log_group(logGroupName=naming.audit_log_group("dev"))
    registry = Registry(sagemaker, logs)
    for number in range(1, 7):
        registry.register("demo-dev", str(number) * 64)
    updates = support_endpoint_updates(monkeypatch)
    if target == "sagemaker":
        fleet = EndpointFleet(sagemaker, "demo-dev")
        if case == "updating":
            fleet.deployed(5)
            fleet.configuration(6)  # the update to it is still under way
            backend = sagemaker_backends["123456789012"][REGION]
            updates.start_update(backend, "demo-dev", fleet.configs[6])
            rollback_alarms(boto3.client("cloudwatch", region_name=REGION), "demo-dev")
        else:
            fleet.deployed(5, 6)
    return lambda: main(
        ["rollback", "dev", "--now", "--reason", "bench", "--project-dir", str(project)]
    )


def measure(target: str, case: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        with (
            tempfile.TemporaryDirectory() as scratch,
            pytest.MonkeyPatch.context() as monkeypatch,
            kubernetes_api.api_server(deployment_objects("serving-demo", [5, 6])) as server,
        ):
            use_emulator_credentials(monkeypatch, REGION)
            monkeypatch.setattr(
                cluster_access,
                "cluster_api",
                lambda aws, name, ns: ClusterApi(server.url, kubernetes_api.TOKEN, None, ns),
            )
            with mock_aws():
                run = scene(target, case, monkeypatch, Path(scratch))
                with contextlib.redirect_stdout(io.StringIO()):
                    start = time.perf_counter()
                    status = run()
                    times.append(time.perf_counter() - start)
                if status:
                    raise SystemExit(f"{target} {case}: the rollback exited {status}")
    return times


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    repeat = parser.parse_args().repeat
    print("| target | situation | command time, median (min-max) |")
    print("| --- | --- | --- |")
    for target, case, label in (
        ("sagemaker", "live", "bad version in service: endpoint pointed at the retained config"),
        ("sagemaker", "updating", "bad deploy in progress: rollback alarms tripped"),
        ("kubernetes", "live", "bad version rolling out: previous revision's template"),
    ):
        times = measure(target, case, repeat)
        print(
            f"| {target} | {label} | {statistics.median(times):.2f} s "
            f"({min(times):.2f}-{max(times):.2f}) |"
        )


if __name__ == "__main__":
    main_()
