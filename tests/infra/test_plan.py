"""`mlstack plan`, run as a reviewer runs it: the installed command, in its own process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from infra.offline.runner import ProgramRun
from infra.plan import render_tree
from infra.policy.rules import Violation

MLSTACK = Path(sys.executable).parent / "mlstack"


def plan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MLSTACK), "plan", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_plan_dev_shows_the_storage_settings_a_reviewer_checks(
    stack_runs: dict[str, ProgramRun],
) -> None:
    result = plan("dev")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith(f"stack dev: {len(stack_runs['dev'].resources)} resources")
    for bucket in ("storage-data-bucket", "storage-models-bucket", "storage-capture-bucket"):
        assert f"aws:s3/bucket:Bucket  {bucket}" in out
    assert out.count("sseAlgorithm: 'aws:kms'") == 3
    assert out.count("bucketKeyEnabled: true") == 3
    assert out.count("versioningConfiguration: {status: Enabled}") == 3
    for flag in (
        "blockPublicAcls",
        "blockPublicPolicy",
        "ignorePublicAcls",
        "restrictPublicBuckets",
    ):
        assert out.count(f"{flag}: true") == 3, flag
    assert out.count("'aws:SecureTransport': 'false'") == 3
    assert "enableKeyRotation: true" in out
    assert "policy: 0 violation(s)" in out


def test_plan_json_lists_every_resource_with_its_parent() -> None:
    result = plan("prod", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    resources = {r["name"]: r for r in document["resources"]}
    urns = {r["urn"]: r["name"] for r in document["resources"]}
    assert urns[resources["storage-data-bucket"]["parent"]] == "storage-data"
    assert urns[resources["storage-data"]["parent"]] == "storage"
    assert resources["storage-data-bucket"]["protect"] is True
    assert resources["key-key"]["inputs"]["policy"]["Statement"][0]["Principal"] == {
        "AWS": "arn:aws:iam::123456789012:root"
    }
    assert document["violations"] == []
    assert document["outputs"]["environment"] == "prod"


def test_plan_with_an_override_shows_the_change() -> None:
    result = plan("prod", "--set", "noncurrentVersionRetentionDays=10")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("noncurrentVersionExpiration: {noncurrentDays: 10}") == 3


def test_plan_reports_bad_config_with_key_value_and_allowed_and_exits_2() -> None:
    result = plan("dev", "--set", "natGateways=two")
    assert result.returncode == 2
    assert "mlstack:natGateways = 'two': allowed: one of none, single, per-az" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_plan_of_an_unknown_stack_names_the_stacks_there_are() -> None:
    result = plan("qa")
    assert result.returncode == 2
    assert (
        "no stack file Pulumi.qa.yaml; stacks with a file: dev, local, prod, staging"
        in result.stderr
    )


def test_the_tree_lists_violations_under_the_policy_heading(
    stack_runs: dict[str, ProgramRun],
) -> None:
    violation = Violation("S3.8", "urn:x", "storage-data-bucket", "no public access block")
    text = render_tree(stack_runs["dev"], [violation])
    assert text.endswith(
        "policy: 1 violation(s)\n    [S3.8] storage-data-bucket: no public access block"
    )
