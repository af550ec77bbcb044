"""`mlstack score ENV`: a batch transform job checked field by field against moto, and an Indexed
Job of the batch scorer created through the API-server client, whose pods share the files."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from infra.cli.main import main
from infra.config.eks_versions import SUPPORTED_KUBERNETES_VERSIONS
from infra.manifests.scoring import ScoringRun, scoring_job
from infra.operations.aws_access import StackAws
from infra.operations.errors import RefusedError
from infra.operations.scoring_runs import ScoringRequest, score_on_kubernetes, score_on_sagemaker
from infra.project import outputs
from serving import batch
from serving.cluster_api import ClusterApi
from tests import kubernetes_api
from tests.infra.deployed import DATA, GROUP, SCORING_ROLE, DeployedStack
from tests.infra.operating import REGION, Registry
from tests.kubernetes_api import TOKEN, ApiServer
from tests.logs import log_messages

WHEN = datetime(2026, 12, 3, 10, 15, 42, tzinfo=UTC)
INPUT, OUTPUT = f"s3://{DATA}/scoring/2026-12/", f"s3://{DATA}/predictions/2026-12/"
FILES = ("part-000.csv", "part-001.csv", "part-002.csv")


@pytest.fixture
def scoring(project: Path, deployed: DeployedStack) -> DeployedStack:
    """dev serving version 2 of demo (version 1 is Rejected), with three files to score."""
    registry = Registry(deployed.sagemaker)
    registry.register(GROUP, "a" * 64, status="Rejected")
    registry.register(GROUP, "b" * 64)
    path = project / "Pulumi.dev.yaml"
    path.write_text(path.read_text() + "  mlstack:servingModelVersions: [demo=2]\n")
    for name in FILES:
        deployed.s3.put_object(Bucket=DATA, Key=f"scoring/2026-12/{name}", Body=b"1.0,2.0\n")
    return deployed


def on_sagemaker(
    project: Path,
    stack: DeployedStack,
    *,
    now: datetime = WHEN,
    instance_type: str = "ml.c5.2xlarge",
    **request: Any,
) -> str:
    return score_on_sagemaker(
        project,
        "dev",
        ScoringRequest(**{"model": "demo", "input_uri": INPUT, "output_uri": OUTPUT, **request}),
        read_outputs=lambda: stack.outputs,
        operator="ops@example.com",
        reason="month-end scores",
        now=now,
        instance_type=instance_type,
        instances=2,
    )


def test_a_batch_transform_scores_the_input_lines_with_the_served_version(
    project: Path, scoring: DeployedStack
) -> None:
    name = on_sagemaker(project, scoring)
    assert name == "demo-dev-score-20261203101542"
    version = scoring.sagemaker.describe_model_package(
        ModelPackageName=scoring.sent["CreateTransformJob"]["Tags"][-1]["Value"]
    )
    assert version["ModelPackageVersion"] == 2
    model = scoring.sagemaker.describe_model(ModelName=name)
    assert model["ExecutionRoleArn"] == SCORING_ROLE
    assert model["PrimaryContainer"] == {
        "Image": scoring.outputs[outputs.SERVING_IMAGE],
        "ModelDataUrl": version["InferenceSpecification"]["Containers"][0]["ModelDataUrl"],
        "Environment": {"MLSTACK_MODEL_VERSION": "2"},
    }
    assert scoring.sent["CreateModel"]["EnableNetworkIsolation"] is True
    job = scoring.sagemaker.describe_transform_job(TransformJobName=name)
    key = scoring.outputs[outputs.KMS_KEY_ARN]
    assert job["ModelName"] == name
    assert job["TransformInput"] == {
        "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": INPUT}},
        "ContentType": "text/csv",
        "SplitType": "Line",
        "CompressionType": "None",
    }
    assert job["TransformOutput"] == {
        "S3OutputPath": OUTPUT,
        "Accept": "text/csv",
        "AssembleWith": "Line",
        "KmsKeyId": key,
    }
    assert job["TransformResources"] == {
        "InstanceType": "ml.c5.2xlarge",
        "InstanceCount": 2,
        "VolumeKmsKeyId": key,
    }
    # The serving image sizes its mini-batches and concurrency (/execution-parameters).
    sent = scoring.sent["CreateTransformJob"]
    assert not {"MaxPayloadInMB", "MaxConcurrentTransforms", "BatchStrategy"} & set(sent)
    tags = {t["Key"]: t["Value"] for t in sent["Tags"]}
    assert tags["mlstack:started-by"] == "ops@example.com"
    assert tags["mlstack:reason"] == "started with mlstack score: month-end scores"


def test_another_version_is_scored_when_named_but_never_a_rejected_one(
    project: Path, scoring: DeployedStack
) -> None:
    with pytest.raises(RefusedError, match="demo-dev version 1 is Rejected"):
        on_sagemaker(project, scoring, version=1)
    with pytest.raises(RefusedError, match="has no version 7; versions there: 1, 2"):
        on_sagemaker(project, scoring, version=7)
    assert "CreateModel" not in scoring.sent


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            {"input_uri": "s3://someone-elses/in/"},
            f"--input s3://someone-elses/in/: allowed: a prefix in the stack's data bucket, "
            f"s3://{DATA}/<prefix>/",
        ),
        ({"output_uri": f"s3://{DATA}/"}, f"--output s3://{DATA}/: allowed: a prefix in"),
        ({"output_uri": INPUT + "out/"}, "overlaps --input"),
        ({"input_uri": f"s3://{DATA}/nothing-here/"}, "no files there to score"),
    ],
)
def test_locations_the_roles_cannot_reach_or_that_would_loop_are_refused(
    project: Path, scoring: DeployedStack, request_: dict[str, Any], message: str
) -> None:
    with pytest.raises(RefusedError, match=message.replace("/", ".")):
        on_sagemaker(project, scoring, **request_)
    assert "CreateModel" not in scoring.sent


def test_parquet_is_left_to_the_cluster_and_a_model_not_served_needs_a_version(
    project: Path, scoring: DeployedStack
) -> None:
    scoring.s3.put_object(Bucket=DATA, Key="scoring/2026-12/extra.parquet", Body=b"PAR1")
    with pytest.raises(RefusedError, match=r"holds scoring/2026-12/extra.parquet \(score Parquet"):
        on_sagemaker(project, scoring)
    path = project / "Pulumi.dev.yaml"
    path.write_text(path.read_text().replace("  mlstack:servingModelVersions: [demo=2]\n", ""))
    scoring.s3.delete_object(Bucket=DATA, Key="scoring/2026-12/extra.parquet")
    with pytest.raises(RefusedError, match="dev serves no version of demo"):
        on_sagemaker(project, scoring)


@pytest.fixture
def cluster() -> Iterator[ApiServer]:
    with kubernetes_api.api_server({}) as server:
        yield server


def on_kubernetes(
    project: Path, stack: DeployedStack, cluster: ApiServer, pods: int
) -> tuple[str, int]:
    def connect(aws: StackAws, name: str, namespace: str) -> ClusterApi:
        assert (aws.region, name, namespace) == (REGION, "mlstack-dev", "mlstack")
        return ClusterApi(cluster.url, TOKEN, None, namespace)

    return score_on_kubernetes(
        project,
        "dev",
        ScoringRequest(model="demo", input_uri=INPUT, output_uri=OUTPUT),
        read_outputs=lambda: stack.outputs,
        connect_cluster=connect,
        operator="ops@example.com",
        reason="month-end scores",
        now=WHEN,
        pods=pods,
    )


def test_an_indexed_job_of_the_scorer_runs_on_the_cluster_one_pod_per_file_at_most(
    project: Path, scoring: DeployedStack, cluster: ApiServer
) -> None:
    name, pods = on_kubernetes(project, scoring, cluster, pods=8)
    assert (name, pods) == ("scoring-demo-20261203101542", 3)
    job = cluster.created[name]
    model_data = scoring.sagemaker.describe_model_package(
        ModelPackageName=f"arn:aws:sagemaker:{REGION}:123456789012:model-package/{GROUP}/2"
    )["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert job == scoring_job(
        ScoringRun(
            name="scoring-demo-20261203101542",
            model="demo",
            version=2,
            image=scoring.outputs[outputs.SERVING_IMAGE],
            model_uri=model_data,
            input_uri=INPUT,
            output_uri=OUTPUT,
            pods=3,  # three files: an eighth pod would have nothing to do
            region=REGION,
            started_by="ops@example.com",
            reason="month-end scores",
        )
    )
    for kubernetes_version in SUPPORTED_KUBERNETES_VERSIONS:
        kubernetes_validate.validate(job, kubernetes_version, strict=True)


def test_the_pods_of_the_created_job_score_every_listed_file_exactly_once(
    project: Path, scoring: DeployedStack, cluster: ApiServer
) -> None:
    for extra in range(3, 11):
        scoring.s3.put_object(Bucket=DATA, Key=f"scoring/2026-12/part-{extra:03}.csv", Body=b"1")
    name, pods = on_kubernetes(project, scoring, cluster, pods=4)
    job = cluster.created[name]
    assert pods == job["spec"]["completions"] == 4
    listed = [
        f"s3://{DATA}/{item['Key']}"
        for item in scoring.s3.list_objects_v2(Bucket=DATA, Prefix="scoring/2026-12/")["Contents"]
    ]
    [container] = job["spec"]["template"]["spec"]["containers"]
    shares = []
    for index in range(job["spec"]["completions"]):
        env = {item["name"]: item["value"] for item in container["env"]}
        args = batch.parse_arguments(container["args"], {**env, batch.SHARD_INDEX_ENV: str(index)})
        assert args.input == INPUT
        shares.append(batch.shard(listed, args.shards, args.shard_index))
    scored = [file for share in shares for file in share]
    assert sorted(scored) == sorted(listed)
    assert len(scored) == len(set(scored)) == 11


def test_a_stack_without_a_cluster_is_sent_to_sagemaker(
    project: Path, scoring: DeployedStack, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["score", "local", "--model", "demo", "--input", INPUT, "--output", OUTPUT]
    status = main([*base, "--on", "kubernetes", "--project-dir", str(project)])
    assert status == 1
    assert "local has no cluster to score on (mlstack:cluster): score --on sagemaker" in (
        log_messages(capsys.readouterr().err)
    )


def test_the_command_checks_its_flags_before_anything_starts(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["score", "dev", "--model", "demo", "--input", INPUT, "--output", OUTPUT]
    for flags, message in (
        (["--on", "sagemaker", "--pods", "3"], "--pods: not with --on sagemaker"),
        (["--on", "kubernetes", "--instances", "2"], "--instances: not with --on kubernetes"),
        (["--on", "kubernetes", "--pods", "0"], "--pods 0: allowed: 1 to 100"),
        (["--on", "sagemaker", "--instances", "101"], "--instances 101: allowed: 1 to 100"),
        (["--on", "sagemaker", "--version", "0"], "--version 0: allowed: a version number"),
        (["--on", "sagemaker", "--instance-type", "c5.xlarge"], "allowed: a SageMaker instance"),
    ):
        with pytest.raises(SystemExit) as stopped:
            main([*base, *flags, "--project-dir", str(project)])
        assert stopped.value.code == 2
        assert message in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("pulumi") is not None, reason="the Pulumi CLI is installed here")
def test_without_the_pulumi_cli_the_command_says_the_outputs_need_it(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["score", "dev", "--model", "demo", "--input", INPUT, "--output", OUTPUT]
    for engine in ("sagemaker", "kubernetes"):
        status = main([*base, "--on", engine, "--project-dir", str(project)])
        assert status == 5
        assert "dev's buckets, images and roles, which are its stack outputs" in (
            log_messages(capsys.readouterr().err)
        )


@pytest.mark.parametrize(
    ("instance_type", "volume_key"), [("ml.c5.2xlarge", True), ("ml.g4dn.xlarge", False)]
)
def test_a_transform_on_local_storage_asks_for_no_volume_key(
    project: Path, scoring: DeployedStack, instance_type: str, volume_key: bool
) -> None:
    on_sagemaker(project, scoring, instance_type=instance_type)
    resources = scoring.sent["CreateTransformJob"]["TransformResources"]
    assert ("VolumeKmsKeyId" in resources) is volume_key


def test_each_run_deletes_the_models_of_transforms_that_ended_and_keeps_the_running_one(
    project: Path, scoring: DeployedStack
) -> None:
    first = on_sagemaker(project, scoring)
    assert scoring.sagemaker.describe_transform_job(TransformJobName=first)[
        "TransformJobStatus"
    ] in ("Completed", "Failed", "Stopped")
    # A Model of another environment, and one of a run that is between its two calls.
    other = "demo-prod-score-20261203101542"
    starting = "demo-dev-score-20261203101543"
    for name in (other, starting):
        scoring.sagemaker.create_model(
            ModelName=name, ExecutionRoleArn=SCORING_ROLE, PrimaryContainer={"Image": "x"}
        )
    second = on_sagemaker(project, scoring, now=datetime.now(UTC))
    models = {m["ModelName"] for m in scoring.sagemaker.list_models()["Models"]}
    assert models == {second, other, starting}
