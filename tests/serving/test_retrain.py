"""Retraining on drift: a Job made from the model's training CronJob, as
`kubectl create job --from=cronjob/...` makes it, through the same client code that talks to a
cluster's API server; here the API server is a stand-in on 127.0.0.1 that answers with the
CronJob the stack declares (rendered by infra.manifests) and records what it is asked."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from infra.manifests.training import cron_job
from serving.cluster_api import ClusterApi, ClusterApiError
from serving.retrain import STARTED_BY, RetrainError, start_training
from tests.infra.test_manifests_training import SCHEDULE

TOKEN = "service-account-token"
WHEN = datetime(2026, 12, 3, 7, 30, tzinfo=UTC)


def training_cron_job() -> dict[str, Any]:
    """The training CronJob as the API server returns it: the stack's object, namespaced, with
    the uid the server gave it."""
    declared = cron_job(SCHEDULE)
    declared["metadata"] |= {"namespace": "mlstack", "uid": "0b3c-cron-uid"}
    return declared


@dataclass
class ApiServer:
    url: str
    requests: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)


@pytest.fixture
def api_server() -> Iterator[ApiServer]:
    cron = training_cron_job()
    state = ApiServer("")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorised(self) -> bool:
            if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                return True
            self._answer(401, {"kind": "Status", "message": "Unauthorized"})
            return False

        def do_GET(self) -> None:
            state.requests.append(("GET", self.path, None))
            if not self._authorised():
                return
            if self.path == "/apis/batch/v1/namespaces/mlstack/cronjobs/training-churn":
                self._answer(200, cron)
            else:
                self._answer(404, {"kind": "Status", "message": f"{self.path} not found"})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests.append(("POST", self.path, body))
            if not self._authorised():
                return
            name = body["metadata"]["name"]
            if name in state.jobs:
                self._answer(409, {"kind": "Status", "message": f'jobs "{name}" already exists'})
                return
            state.jobs[name] = body
            self._answer(201, body)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def test_drift_starts_one_training_job_an_hour_from_the_cronjobs_template(
    api_server: ApiServer,
) -> None:
    api = ClusterApi(api_server.url, TOKEN, None)
    name, started = start_training(api, "mlstack", "training-churn", WHEN, "drift of size")
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
    assert start_training(api, "mlstack", "training-churn", WHEN, "drift of size") == (name, False)
    assert len(api_server.jobs) == 1


def test_a_cronjob_that_is_not_there_or_a_refused_token_is_named(api_server: ApiServer) -> None:
    api = ClusterApi(api_server.url, TOKEN, None)
    with pytest.raises(RetrainError, match="cannot read CronJob mlstack/training-other: 404"):
        start_training(api, "mlstack", "training-other", WHEN, "drift")
    with pytest.raises(RetrainError, match="401 Unauthorized"):
        start_training(
            ClusterApi(api_server.url, "wrong", None), "mlstack", "training-churn", WHEN, "x"
        )
    assert api_server.jobs == {}


def test_outside_a_pod_retraining_says_where_it_must_run(tmp_path: Path) -> None:
    with pytest.raises(ClusterApiError, match="not in a Kubernetes pod"):
        ClusterApi.in_cluster({}, tmp_path)
