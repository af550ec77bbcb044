"""`mlstack train ENV --on kubernetes`: a Job from the model's training CronJob, through the
API-server client, against a stand-in answering with the CronJob the stack renders."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from infra.cli.main import main
from infra.manifests.training import cron_job
from infra.operations.aws_access import StackAws
from infra.operations.errors import UnreachableError
from infra.operations.training_runs import train_on_kubernetes
from serving.cluster_api import ClusterApi
from tests import kubernetes_api
from tests.infra.test_manifests_training import SCHEDULE
from tests.kubernetes_api import TOKEN, ApiServer
from tests.logs import log_messages

WHEN = datetime(2026, 12, 3, 10, 15, 42, tzinfo=UTC)


@pytest.fixture
def cluster() -> Iterator[ApiServer]:
    declared = cron_job(SCHEDULE)  # the churn model's CronJob, as the API server returns it
    declared["metadata"] |= {"namespace": "mlstack", "uid": "7c1d-cron-uid"}
    path = "/apis/batch/v1/namespaces/mlstack/cronjobs/training-churn"
    with kubernetes_api.api_server({path: declared}) as server:
        yield server


@pytest.fixture
def dev_with_churn(project: Path) -> Path:
    path = project / "Pulumi.dev.yaml"
    path.write_text(path.read_text() + "  mlstack:models: [demo, churn]\n")
    return project


def start(project: Path, cluster: ApiServer, model: str = "churn", token: str = TOKEN) -> str:
    connected: list[tuple[str, str]] = []

    def connect(aws: StackAws, name: str, namespace: str) -> ClusterApi:
        connected.append((name, namespace))
        return ClusterApi(cluster.url, token, None, namespace)

    name = train_on_kubernetes(
        project,
        "dev",
        model,
        connect_cluster=connect,
        operator="ops@example.com",
        reason="new data landed",
        now=WHEN,
    )
    assert connected == [("mlstack-dev", "mlstack")]
    return name


def test_a_run_starts_as_a_job_of_the_training_cronjob(
    dev_with_churn: Path, cluster: ApiServer
) -> None:
    assert start(dev_with_churn, cluster) == "training-churn-manual-20261203101542"
    job = cluster.created["training-churn-manual-20261203101542"]
    assert job["spec"] == cron_job(SCHEDULE)["spec"]["jobTemplate"]["spec"]
    assert job["metadata"]["ownerReferences"][0]["name"] == "training-churn"
    assert job["metadata"]["annotations"]["mlstack.dev/started-by"] == (
        "started by ops@example.com with mlstack train: new data landed"
    )


def test_a_model_without_a_cronjob_there_or_a_refused_token_is_named(
    dev_with_churn: Path, cluster: ApiServer
) -> None:
    with pytest.raises(UnreachableError, match="cannot read CronJob mlstack/training-demo: 404"):
        start(dev_with_churn, cluster, model="demo")
    with pytest.raises(UnreachableError, match="401 Unauthorized"):
        start(dev_with_churn, cluster, token="expired")
    assert cluster.created == {}


def test_a_stack_without_a_training_cronjob_or_model_is_refused_before_any_call(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--on", "kubernetes", "--project-dir", str(project)]
    assert main(["train", "local", "--model", "demo", *args]) == 1
    assert "local has no training CronJob to start a run from" in log_messages(
        capsys.readouterr().err
    )
    assert main(["train", "dev", "--model", "churn", *args]) == 1
    assert "model 'churn' is not one of this stack's models (mlstack:models): demo" in (
        log_messages(capsys.readouterr().err)
    )
    with pytest.raises(SystemExit):
        main(["train", "dev", "--model", "demo", "--on", "laptop", *args])
    err = capsys.readouterr().err
    assert "argument --on: invalid choice: 'laptop' (choose from " in err
    assert "kubernetes" in err
