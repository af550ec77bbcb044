"""The indexed scoring Job, built by a pure function and checked without an engine: valid for
every supported Kubernetes version, and read back with the scorer's own argument parser."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from infra.config.eks_versions import SUPPORTED_KUBERNETES_VERSIONS
from infra.manifests.namespace import default_deny
from infra.manifests.scoring import ScoringRun, scoring_job
from infra.project import naming
from mlstack_common.exits import ExitStatus
from serving import batch

from .test_checkov import checkov

RUN = ScoringRun(
    name="scoring-churn-20261203161500",
    model="churn",
    version=7,
    image="123456789012.dkr.ecr.eu-west-1.amazonaws.com/serving@sha256:" + "2" * 64,
    model_uri="s3://mlstack-prod-models/models/churn-prod/abc-def/model.tar.gz",
    input_uri="s3://mlstack-prod-data/scoring/churn/2026-12-03/",
    output_uri="s3://mlstack-prod-data/predictions/churn/2026-12-03/",
    pods=4,
    region="eu-west-1",
    started_by="ops@example.com",
    reason="monthly churn list",
)


def container(job: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = job["spec"]["template"]["spec"]["containers"]
    [only] = containers
    return only


def what_pod_runs(job: dict[str, Any], index: int) -> Any:
    """The scorer's arguments as pod `index` runs them: the container's args parsed by
    `serving.batch`'s own parser, in the environment the pod gets — the container's env plus
    the completion index Kubernetes injects into each pod of an Indexed Job."""
    env = {item["name"]: item["value"] for item in container(job)["env"]}
    env[batch.SHARD_INDEX_ENV] = str(index)
    assert container(job)["command"] == ["python", "-m", "serving.batch"]
    return batch.parse_arguments(container(job)["args"], env)


@pytest.mark.parametrize("version", SUPPORTED_KUBERNETES_VERSIONS)
def test_the_job_is_valid_for_every_supported_kubernetes_version(version: str) -> None:
    kubernetes_validate.validate(scoring_job(RUN), version, strict=True)


def test_one_indexed_pod_per_shard_all_at_once() -> None:
    spec = scoring_job(RUN)["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 4
    assert spec["backoffLimitPerIndex"] == 2
    assert "backoffLimit" not in spec  # per index instead: one bad shard spends no one else's
    assert spec["activeDeadlineSeconds"] == 24 * 3600  # a stuck run does not hold nodes forever
    assert spec["ttlSecondsAfterFinished"] > 0
    assert spec["template"]["spec"]["restartPolicy"] == "Never"
    single = scoring_job(replace(RUN, pods=1))["spec"]
    assert single["completions"] == single["parallelism"] == 1


def test_a_refused_input_fails_its_shard_at_once_and_an_eviction_is_not_a_failure() -> None:
    refused, evicted = scoring_job(RUN)["spec"]["podFailurePolicy"]["rules"]
    assert refused["action"] == "FailIndex"
    assert refused["onExitCodes"] == {
        "containerName": "scoring",
        "operator": "In",
        "values": [ExitStatus.REFUSED, ExitStatus.USAGE],
    }
    assert evicted == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }


def test_each_pod_scores_the_runs_input_into_its_output_with_the_versions_model() -> None:
    job = scoring_job(RUN)
    for index in range(RUN.pods):
        args = what_pod_runs(job, index)
        assert args.input == RUN.input_uri
        assert args.output == RUN.output_uri
        assert args.model == RUN.model_uri
        assert (args.shards, args.shard_index) == (4, index)
    env = {item["name"]: item["value"] for item in container(job)["env"]}
    assert env["AWS_REGION"] == "eu-west-1"


@pytest.mark.parametrize(("files", "pods"), [(10, 4), (3, 5), (1, 1), (8, 8), (0, 3), (97, 7)])
def test_its_per_pod_split_covers_every_input_file_exactly_once(files: int, pods: int) -> None:
    job = scoring_job(replace(RUN, pods=pods))
    # However the store lists them, every pod sees the same set of keys.
    listing = [f"{RUN.input_uri}part-{n:05d}.csv" for n in reversed(range(files))]
    scored: list[str] = []
    for index in range(job["spec"]["completions"]):
        args = what_pod_runs(job, index)
        scored += batch.shard(listing, args.shards, args.shard_index)
    assert sorted(scored) == sorted(listing)
    assert len(scored) == len(set(scored))


def test_the_pod_is_hardened_like_every_workload_and_runs_as_the_scoring_account() -> None:
    pod = scoring_job(RUN)["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == naming.SCORING_SERVICE_ACCOUNT
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container(scoring_job(RUN))["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    resources = container(scoring_job(RUN))["resources"]
    assert resources["requests"] == resources["limits"]
    [scratch] = pod["volumes"]
    assert "emptyDir" in scratch
    assert container(scoring_job(RUN))["volumeMounts"] == [
        {"name": scratch["name"], "mountPath": "/tmp"}  # noqa: S108 (an emptyDir)
    ]


def test_the_job_says_which_model_version_who_and_why() -> None:
    job = scoring_job(RUN)
    metadata = job["metadata"]
    assert metadata["name"] == "scoring-churn-20261203161500"
    assert metadata["namespace"] == naming.WORKLOAD_NAMESPACE
    for labels in (metadata["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert labels["app.kubernetes.io/component"] == "scoring"
        assert labels["app.kubernetes.io/instance"] == "churn"
        assert labels["mlstack.dev/model-version"] == "7"
    assert metadata["annotations"]["mlstack.dev/started-by"] == "ops@example.com"
    assert metadata["annotations"]["mlstack.dev/reason"] == "monthly churn list"
    assert metadata["annotations"]["mlstack.dev/model-version"] == "7"


def test_a_run_without_pods_is_refused_naming_the_value() -> None:
    with pytest.raises(ValueError, match="pods = 0: allowed: 1 or more"):
        replace(RUN, pods=0)


def test_the_job_passes_checkov_like_every_object_the_stack_declares(tmp_path: Path) -> None:
    (tmp_path / "scoring-job.yaml").write_text(yaml.safe_dump(scoring_job(RUN)))
    # The namespace the Job is created in denies ingress to every pod (CKV2_K8S_6).
    (tmp_path / "default-deny.yaml").write_text(yaml.safe_dump(default_deny()))
    report = checkov(tmp_path)
    results = report["results"]
    assert [(c["check_id"], c["resource"]) for c in results["failed_checks"]] == []
    assert results.get("parsing_errors", []) == []
    assert results["skipped_checks"] == []
    assert report["summary"]["passed"] > 20
