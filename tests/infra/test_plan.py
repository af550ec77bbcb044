"""`mlstack plan`, run as a reviewer runs it: through its entry point, and (where the process is
what is tested) as the installed command in its own process."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from infra.offline.plan import render_tree
from infra.offline.runner import ProgramRun
from infra.project.paths import stack_file as stack_file_path
from mlstack_common.exits import ExitStatus
from mlstack_policy.rules import Violation
from tests.aws import Emulator
from tests.cli import MLSTACK, mlstack
from tests.infra.operating import SCRATCH_STACK_PREFIX
from tests.logs import log_messages, log_records


def plan(*args: str) -> subprocess.CompletedProcess[str]:
    return mlstack("plan", *args)


def test_plan_dev_shows_the_storage_settings_a_reviewer_checks(
    stack_runs: dict[str, ProgramRun],
) -> None:
    result = plan("dev")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    platform, workloads = stack_runs["dev"].runs
    # One tree per layer, the platform first: the workloads read its outputs.
    assert out.startswith(
        f"stack dev, platform layer (project mlstack): {len(platform.resources)} resources"
    )
    assert (
        f"\n\nstack dev, workloads layer (project mlstack-workloads): "
        f"{len(workloads.resources)} resources"
    ) in out
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
    # Each bucket's policy, and the alarm topic's, refuse requests without TLS.
    assert out.count("'aws:SecureTransport': 'false'") == 4
    assert "enableKeyRotation: true" in out
    assert out.count("policy: 0 violation(s)") == 2


def test_plan_json_lists_every_resource_with_its_parent() -> None:
    result = plan("prod", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    platform, workloads = document["layers"]
    assert (platform["layer"], platform["project"]) == ("platform", "mlstack")
    assert (workloads["layer"], workloads["project"]) == ("workloads", "mlstack-workloads")
    resources = {r["name"]: r for r in platform["resources"]}
    urns = {r["urn"]: r["name"] for r in platform["resources"]}
    assert urns[resources["storage-data-bucket"]["parent"]] == "storage-data"
    assert urns[resources["storage-data"]["parent"]] == "storage"
    assert resources["storage-data-bucket"]["protect"] is True
    assert resources["key-key"]["inputs"]["policy"]["Statement"][0]["Principal"] == {
        "AWS": "arn:aws:iam::123456789012:root"
    }
    assert platform["violations"] == workloads["violations"] == []
    assert platform["outputs"]["environment"] == "prod"
    assert set(workloads["outputs"]) == {"servingImage", "trainingImage", "servedModelVersions"}
    assert any(r["type"] == "kubernetes:apps/v1:Deployment" for r in workloads["resources"])


def test_plan_of_one_layer_shows_only_it() -> None:
    result = plan("staging", "--layer", "workloads")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("stack staging, workloads layer (project mlstack-workloads)")
    assert "platform layer" not in result.stdout
    assert "aws:eks/cluster:Cluster" not in result.stdout


def test_plan_with_an_override_shows_the_change() -> None:
    result = plan("prod", "--set", "noncurrentVersionRetentionDays=10")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("noncurrentVersionExpiration: {noncurrentDays: 10}") == 3


def test_plan_reports_bad_config_with_key_value_and_allowed_and_exits_2() -> None:
    result = plan("dev", "--set", "natGateways=two")
    assert result.returncode == 2
    assert "mlstack:natGateways = 'two': allowed: one of none, single, per-az" in log_messages(
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_plan_of_an_unknown_stack_names_the_stacks_there_are() -> None:
    result = plan("qa")
    assert result.returncode == 2
    assert (
        "no stack file Pulumi.qa.yaml; stacks with a file: dev, local, prod, staging"
        in log_messages(result.stderr)
    )


def test_the_tree_lists_violations_under_the_policy_heading(
    stack_runs: dict[str, ProgramRun],
) -> None:
    bucket = stack_runs["dev"].named("storage-data-bucket")
    violation = Violation("S3.8", bucket.urn, bucket.name, "no public access block")
    platform, workloads = render_tree(stack_runs["dev"], [violation]).split("\n\nstack dev, ")
    assert platform.endswith(
        "policy: 1 violation(s)\n    [S3.8] storage-data-bucket: no public access block"
    )
    assert workloads.endswith("policy: 0 violation(s)")


@pytest.fixture
def stack_file() -> Iterator[Callable[[bytes], str]]:
    """Write a stack file beside the real ones, as a user would, and remove it afterwards."""
    written: list[Path] = []

    def write(content: bytes) -> str:
        name = f"{SCRATCH_STACK_PREFIX}{os.getpid()}-{len(written)}"
        path = stack_file_path(name)
        path.write_bytes(content)
        written.append(path)
        return name

    yield write
    for path in written:
        path.unlink(missing_ok=True)


def assert_one_line_exit_2(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == ExitStatus.USAGE, result.stderr
    assert "Traceback" not in result.stderr
    errors = [r for r in log_records(result.stderr, "mlstack plan") if r["level"] == "ERROR"]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0]["message"], errors[0]


def test_plan_of_a_stack_file_that_is_not_yaml_exits_2_in_one_line(
    stack_file: Callable[[bytes], str],
) -> None:
    name = stack_file(b"config:\n  mlstack:environment: dev\n   mlstack:natGateways: [none\n")
    assert_one_line_exit_2(plan(name), f"Pulumi.{name}.yaml: not valid YAML", "line 3")


def test_plan_of_a_stack_file_that_is_not_text_exits_2_in_one_line(
    stack_file: Callable[[bytes], str],
) -> None:
    name = stack_file(b"config:\n  mlstack:environment: \xff\xfe\n")
    assert_one_line_exit_2(plan(name), f"Pulumi.{name}.yaml: not UTF-8 text")


def test_plan_of_a_missing_stack_file_exits_2_in_one_line() -> None:
    assert_one_line_exit_2(plan("qa"), "no stack file Pulumi.qa.yaml")


def test_plan_whose_reader_goes_away_exits_2_in_one_line() -> None:
    # `mlstack plan prod --json | head -c 0`: the reader has closed the pipe before the plan
    # is written.
    with subprocess.Popen(
        [str(MLSTACK), "plan", "prod", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None
        process.stdout.close()
        _, stderr = process.communicate(timeout=120)
    result = subprocess.CompletedProcess(process.args, process.returncode, "", stderr)
    assert_one_line_exit_2(result, "the output was closed before the plan was written")


def test_plan_refuses_a_misspelt_key_in_the_stack_file(stack_file: Callable[[bytes], str]) -> None:
    name = stack_file(
        b"config:\n  aws:region: eu-west-1\n  mlstack:environment: scratch\n"
        b"  mlstack:natGateway: none\n  mlstak:natGateways: none\n"
    )
    result = plan(name)
    assert result.returncode == 2
    assert "mlstack:natGateway: unknown key" in log_messages(result.stderr)
    assert "did you mean mlstack:natGateways?" in log_messages(result.stderr)
    assert "mlstak:natGateways: unknown namespace 'mlstak'" in log_messages(result.stderr)


def test_plan_of_every_stack_warns_of_nothing() -> None:
    # Every key has an effect somewhere, and a stack setting one where it has none is refused.
    for stack in ("dev", "local"):
        result = plan(stack)
        assert result.returncode == 0, result.stderr
        assert "warning" not in result.stderr.lower(), result.stderr


def test_plan_refuses_a_key_set_where_it_can_have_no_effect(
    stack_file: Callable[[bytes], str],
) -> None:
    name = stack_file(
        b"config:\n  aws:region: eu-west-1\n  mlstack:environment: scratch\n"
        b"  mlstack:endpointMinInstances: 3\n"
    )
    result = plan(name)
    assert result.returncode == 2
    assert (
        "mlstack:endpointMinInstances = 3: allowed: its default (1), while "
        "mlstack:servingTarget is kubernetes (it takes effect with sagemaker or both)"
    ) in log_messages(result.stderr)


def served_version(result: subprocess.CompletedProcess[str]) -> str:
    line = next(line for line in result.stdout.splitlines() if "MLSTACK_MODEL_VERSION" in line)
    return line.split("value: ")[1].strip(" '}")


def test_plan_with_a_pin_and_no_registry_says_it_used_placeholders() -> None:
    result = plan("dev", "--set", "servingModelVersions=[demo=3]")
    assert result.returncode == 0, result.stderr
    assert "model versions: offline placeholders, every pinned version taken as Approved" in (
        log_messages(result.stderr)
    )
    assert served_version(result) == "3"


def test_plan_resolves_pins_from_recorded_answers_and_refuses_an_unapproved_one(
    tmp_path: Path,
) -> None:
    answers = tmp_path / "registry.yaml"
    answers.write_text(
        "demo-dev:\n"
        "  1: {status: Approved, model_data_url: 's3://models/demo/one/model.tar.gz'}\n"
        "  2: {status: PendingManualApproval}\n"
    )
    served = plan(
        "dev", "--set", "servingModelVersions=[demo=1]", "--registry-answers", str(answers)
    )
    assert served.returncode == 0, served.stderr
    assert f"model versions: recorded answers in {answers}" in log_messages(served.stderr)
    assert "s3://models/demo/one/model.tar.gz" in served.stdout
    refused = plan(
        "dev", "--set", "servingModelVersions=[demo=2]", "--registry-answers", str(answers)
    )
    assert_one_line_exit_2(
        refused, "demo=2: version 2 of model package group 'demo-dev' is PendingManualApproval"
    )


def test_plan_resolves_pins_against_an_emulator(emulator: Emulator) -> None:
    sagemaker = emulator.client("sagemaker", "eu-west-1")  # the dev stack's region
    sagemaker.create_model_package_group(ModelPackageGroupName="demo-dev")
    for status in ("Approved", "Approved"):
        sagemaker.create_model_package(
            ModelPackageGroupName="demo-dev",
            InferenceSpecification={
                "Containers": [{"Image": "serving", "ModelDataUrl": "s3://models/m.tar.gz"}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            ModelApprovalStatus=status,
        )
    result = plan(
        "dev", "--set", "servingModelVersions=[demo=2]", "--registry-endpoint", emulator.endpoint
    )
    assert result.returncode == 0, result.stderr
    assert f"model versions: asked of the registry at {emulator.endpoint}" in log_messages(
        result.stderr
    )
    assert served_version(result) == "2"
    missing = plan(
        "dev", "--set", "servingModelVersions=[demo=5]", "--registry-endpoint", emulator.endpoint
    )
    assert_one_line_exit_2(missing, "model package group 'demo-dev' has no version 5")


def test_plan_writes_each_kubernetes_object_as_yaml_a_reviewer_can_read(tmp_path: Path) -> None:
    (tmp_path / "gone--deployment--old.yaml").write_text("kind: Deployment\n")
    result = plan("staging", "--set", "servingModelVersions=[demo=2]", "--k8s-yaml", str(tmp_path))
    assert result.returncode == 0, result.stderr
    written = {path.name: yaml.safe_load(path.read_text()) for path in tmp_path.iterdir()}
    assert sorted(written) == [
        "cluster--clusterrole--cluster-autoscaler.yaml",
        "cluster--clusterrolebinding--cluster-autoscaler.yaml",
        "cluster--namespace--mlstack.yaml",
        "kube-system--daemonset--nvidia-device-plugin.yaml",
        "kube-system--deployment--cluster-autoscaler.yaml",
        "kube-system--role--cluster-autoscaler.yaml",
        "kube-system--rolebinding--cluster-autoscaler.yaml",
        "kube-system--serviceaccount--cluster-autoscaler.yaml",
        "mlstack--cronjob--drift-demo.yaml",
        "mlstack--cronjob--training-demo.yaml",
        "mlstack--deployment--serving-demo.yaml",
        "mlstack--horizontalpodautoscaler--serving-demo.yaml",
        "mlstack--networkpolicy--default-deny-ingress.yaml",
        "mlstack--networkpolicy--serving-demo.yaml",
        "mlstack--poddisruptionbudget--serving-demo.yaml",
        "mlstack--service--serving-demo.yaml",
        "mlstack--serviceaccount--drift.yaml",
        "mlstack--serviceaccount--scoring.yaml",
        "mlstack--serviceaccount--serving.yaml",
        "mlstack--serviceaccount--training.yaml",
    ]
    deployment = written["mlstack--deployment--serving-demo.yaml"]
    assert (deployment["apiVersion"], deployment["kind"]) == ("apps/v1", "Deployment")
    assert f"{len(written)} Kubernetes objects in {tmp_path}" in log_messages(result.stderr)
