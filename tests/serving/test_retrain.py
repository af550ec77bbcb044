"""Retraining on drift: a Job made from the model's training CronJob, as
`kubectl create job --from=cronjob/...` makes it, through the same client code that talks to a
cluster's API server; here the API server is a stand-in on 127.0.0.1 that answers with the
CronJob the stack declares (rendered by infra.manifests) and records what it is asked."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from infra.manifests.training import cron_job
from serving.cluster_api import ClusterApi, ClusterApiError
from serving.retrain import STARTED_BY, RetrainError, drift_job_name, start_training
from tests import kubernetes_api
from tests.infra.test_manifests_training import SCHEDULE
from tests.kubernetes_api import TOKEN, ApiServer

WHEN = datetime(2026, 12, 3, 7, 30, tzinfo=UTC)
NAME = drift_job_name("training-churn", WHEN)


def training_cron_job() -> dict[str, Any]:
    """The training CronJob as the API server returns it: the stack's object, namespaced, with
    the uid the server gave it."""
    declared = cron_job(SCHEDULE)
    declared["metadata"] |= {"namespace": "mlstack", "uid": "0b3c-cron-uid"}
    return declared


@pytest.fixture
def api_server() -> Iterator[ApiServer]:
    path = "/apis/batch/v1/namespaces/mlstack/cronjobs/training-churn"
    with kubernetes_api.api_server({path: training_cron_job()}) as server:
        yield server


def test_drift_starts_one_training_job_an_hour_from_the_cronjobs_template(
    api_server: ApiServer,
) -> None:
    api = ClusterApi(api_server.url, TOKEN, None)
    name, started = start_training(api, "mlstack", "training-churn", NAME, "drift of size")
    assert (name, started) == ("training-churn-drift-2026120307", True)
    [(_, path, job)] = [r for r in api_server.requests if r[0] == "POST"]
    assert path == "/apis/batch/v1/namespaces/mlstack/jobs"
    assert job is not None
    cron = training_cron_job()
    # The CronJob's job, as the CronJob's own runs have it; owned by it, so its limits and
    # TTL clean the Job up; saying why it was started.
    assert job["spec"] == cron["spec"]["jobTemplate"]["spec"]
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batch/v1",
            "kind": "CronJob",
            "name": "training-churn",
            "uid": "0b3c-cron-uid",
            "controller": True,
        }
    ]
    assert job["metadata"]["annotations"][STARTED_BY] == "drift of size"
    assert job["metadata"]["labels"] == cron["metadata"]["labels"]
    # A second run in the same hour finds it started.
    assert start_training(api, "mlstack", "training-churn", NAME, "drift of size") == (name, False)
    assert len(api_server.created) == 1


def test_a_cronjob_that_is_not_there_or_a_refused_token_is_named(api_server: ApiServer) -> None:
    api = ClusterApi(api_server.url, TOKEN, None)
    with pytest.raises(RetrainError, match="cannot read CronJob mlstack/training-other: 404"):
        start_training(api, "mlstack", "training-other", NAME, "drift")
    with pytest.raises(RetrainError, match="401 Unauthorized"):
        start_training(
            ClusterApi(api_server.url, "wrong", None), "mlstack", "training-churn", NAME, "x"
        )
    assert api_server.created == {}


def test_outside_a_pod_retraining_says_where_it_must_run(tmp_path: Path) -> None:
    with pytest.raises(ClusterApiError, match="not in a Kubernetes pod"):
        ClusterApi.in_cluster({}, tmp_path)
