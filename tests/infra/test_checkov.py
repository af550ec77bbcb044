"""checkov's Kubernetes framework over every object each stack declares, as `mlstack plan
--k8s-yaml` writes them, and dev's with an ingress. Every skipped check is listed here and
carries its reason in the object's own `checkov.io/skipN` annotation.

checkov runs in its own tool environment (`tests/tools.py`), which `make sync` installs."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.offline.k8s_yaml import write_objects
from infra.offline.runner import ProgramRun
from tests.tools import CHECKOV, tool_command

from .conftest import CLUSTER_STACKS

SKIPPED = {
    ("CKV_K8S_38", "Deployment.kube-system.cluster-autoscaler"),
    ("CKV_K8S_8", "DaemonSet.kube-system.nvidia-device-plugin"),
    ("CKV_K8S_9", "DaemonSet.kube-system.nvidia-device-plugin"),
    ("CKV_K8S_23", "DaemonSet.kube-system.nvidia-device-plugin"),
    ("CKV_K8S_40", "DaemonSet.kube-system.nvidia-device-plugin"),
}


def checkov(directory: Path) -> dict[str, Any]:
    try:
        command = tool_command(CHECKOV, "checkov", "-d", str(directory), "--framework",
                               "kubernetes", "--output", "json")  # fmt: skip
    except LookupError as error:
        pytest.skip(str(error))
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.skip(f"checkov could not be installed or run: {result.stderr.strip()[-300:]}")
    return report


def written(runs: dict[str, ProgramRun], ingress_run: ProgramRun, directory: Path) -> Path:
    for stack in CLUSTER_STACKS:
        write_objects(runs[stack], directory / stack)
    write_objects(ingress_run, directory / "dev-with-ingress")
    return directory


def test_every_object_of_every_stack_passes_checkov_with_each_skip_explained(
    served_runs: dict[str, ProgramRun], ingress_run: ProgramRun, tmp_path: Path
) -> None:
    report = checkov(written(served_runs, ingress_run, tmp_path))
    results = report["results"]
    failed = [(c["check_id"], c["resource"]) for c in results["failed_checks"]]
    assert failed == []
    assert results.get("parsing_errors", []) == []
    skipped = {(c["check_id"], c["resource"]) for c in results["skipped_checks"]}
    assert skipped == SKIPPED
    assert all(c["check_result"]["suppress_comment"] for c in results["skipped_checks"])
    assert report["summary"]["passed"] > 100


def test_checkov_fails_a_serving_pod_whose_image_is_a_tag(
    served_runs: dict[str, ProgramRun], ingress_run: ProgramRun, tmp_path: Path
) -> None:
    directory = written(served_runs, ingress_run, tmp_path)
    path = directory / "prod" / "mlstack--deployment--serving-demo.yaml"
    deployment = yaml.safe_load(path.read_text())
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["image"] = "mlstack-serving:latest"
    path.write_text(yaml.safe_dump(broken))
    results = checkov(directory)["results"]
    failed = {(c["check_id"], c["resource"]) for c in results["failed_checks"]}
    assert ("CKV_K8S_43", "Deployment.mlstack.serving-demo") in failed
    assert {resource for _, resource in failed} == {"Deployment.mlstack.serving-demo"}
