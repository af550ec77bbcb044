"""Experiment tracking: one training run as one MLflow run, when a tracking URI is set.

The URI is MLflow's own `MLFLOW_TRACKING_URI`, so the same variable that points `mlflow ui`,
notebooks and SageMaker training jobs at a server points training at it; there is no second
setting to keep in step. Unset, the run records through `UntrackedRun`, which does nothing, and
MLflow is never imported: training needs no MLflow installed. The URI may be an http(s) URL or,
with the `sagemaker-mlflow` plugin, a SageMaker managed MLflow tracking server's ARN (requests
signed with the AWS credentials).

The server is asked for the run's experiment before the data is even read: a run whose record
cannot be kept fails in seconds (exit 4, which the training CronJob retries), instead of
training for an hour and then registering a version nobody can trace back to its run. What is
logged after the version is registered is best-effort (see `run_training`): failing there would
make a retry register the same model twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from training.errors import InputError

if TYPE_CHECKING:
    from mlflow import MlflowClient

TRACKING_URI_VARIABLE = "MLFLOW_TRACKING_URI"
EXPERIMENT_VARIABLE = "MLFLOW_EXPERIMENT_NAME"
CLIENT_DEFAULTS = {
    # MLflow retries a failing request 7 times with exponential backoff (minutes against a
    # server that is down); two quick retries cover a blip, and the CronJob retries the run.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    # stdout carries the JSON result alone; the run's id goes to stderr with the progress.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    # A training job sends nothing to MLflow's usage telemetry; where egress is closed, the
    # attempt held the process for about 15 s at exit.
    "MLFLOW_DISABLE_TELEMETRY": "true",
}
"""Set unless the environment already sets them."""
REPORT_ARTIFACTS = "report"
"""Where in the run the report's files go (the card, plots, evaluation, statistics, spec)."""
_MAX_PARAM = 6000  # MLflow's limit on a parameter value
_MAX_REASON = 400


class TrackingError(RuntimeError):
    """The tracking server could not be used; the message names its URI."""


@dataclass(frozen=True)
class TrackingTarget:
    """Where runs are recorded: a tracking URI and, optionally, the experiment's name."""

    uri: str
    experiment: str | None = None
    """None: the model's name (its model package group), one experiment per model and
    environment."""

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> TrackingTarget | None:
        """The target MLflow's standard variables name; None when no tracking URI is set."""
        uri = environ.get(TRACKING_URI_VARIABLE, "").strip()
        if not uri:
            return None
        return cls(uri=uri, experiment=environ.get(EXPERIMENT_VARIABLE, "").strip() or None)

    @property
    def shown(self) -> str:
        """The URI without any password it carries, for messages and the registry."""
        parts = urlsplit(self.uri)
        if parts.password is None:
            return self.uri
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))


class RunTracker(Protocol):
    """What a training run tells its tracker. A run always has one, so recording is never
    conditional: `TrackedRun` keeps the record in MLflow, `UntrackedRun` keeps none."""

    @property
    def run_id(self) -> str | None:
        """The tracked run's id, for the card, the registry and the CLI; None: not tracked."""
        ...

    @property
    def shown_uri(self) -> str | None:
        """The tracking server's URI without its password; None: not tracked."""
        ...

    def log_params(self, params: Mapping[str, Any]) -> None: ...

    def log_metrics(self, metrics: Mapping[str, float]) -> None: ...

    def set_tags(self, tags: Mapping[str, str]) -> None: ...

    def log_files(self, files: Iterable[Path]) -> None: ...

    def end(self, *, succeeded: bool) -> None: ...


class UntrackedRun:
    """The tracker of a run without a tracking URI: it records nothing, never fails and never
    imports MLflow, so the card, the registered version and the result name no run."""

    @property
    def run_id(self) -> None:
        return None

    @property
    def shown_uri(self) -> None:
        return None

    def log_params(self, params: Mapping[str, Any]) -> None:
        return None

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        return None

    def set_tags(self, tags: Mapping[str, str]) -> None:
        return None

    def log_files(self, files: Iterable[Path]) -> None:
        return None

    def end(self, *, succeeded: bool) -> None:
        return None


class TrackedRun:
    """An MLflow run in progress. Every call either succeeds or raises `TrackingError` (and
    `start` an `InputError` when the MLflow client is not installed)."""

    def __init__(self, client: MlflowClient, target: TrackingTarget, run_id: str) -> None:
        self._client = client
        self.target = target
        self.run_id = run_id

    @property
    def shown_uri(self) -> str:
        return self.target.shown

    @classmethod
    def start(
        cls, target: TrackingTarget, *, experiment: str, run_name: str, tags: Mapping[str, str]
    ) -> TrackedRun:
        """Find or create the experiment and start a run in it: the first requests, so a server
        that is down, refuses or cannot be reached fails the run here."""
        # Before the import: MLflow reads some of them (telemetry) when it is imported.
        for name, value in CLIENT_DEFAULTS.items():
            os.environ.setdefault(name, value)
        try:
            from mlflow import MlflowClient
        except ImportError as error:
            raise InputError(
                f"{TRACKING_URI_VARIABLE} = {target.shown}: the MLflow client is not installed; "
                "allowed: install the training extra (mlflow-skinny, sagemaker-mlflow), or unset "
                f"{TRACKING_URI_VARIABLE} to train without tracking"
            ) from error
        if not target.uri.startswith("arn:"):
            # The SageMaker plugin's header provider expects an ARN and warns on every request
            # to any other server.
            logging.getLogger("mlflow.tracking.request_header.registry").setLevel(logging.ERROR)
        client = MlflowClient(tracking_uri=target.uri)
        name = target.experiment or experiment
        with _reported(target, f"finding or creating experiment {name!r}"):
            found = client.get_experiment_by_name(name)
            experiment_id = found.experiment_id if found else client.create_experiment(name)
            given = {key: value for key, value in tags.items() if value}
            run = client.create_run(experiment_id, run_name=run_name, tags=given)
        return cls(client, target, run.info.run_id)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        entries = [Param(k, str(v)[:_MAX_PARAM]) for k, v in sorted(params.items())]
        with _reported(self.target, "logging parameters"):
            self._client.log_batch(self.run_id, params=entries)

    def log_metrics(self, metrics: Mapping[str, float]) -> None:
        """Finite values only: MLflow stores NaN, but a chart of it tells nobody anything."""
        import math
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [
            Metric(k, float(v), now, 0) for k, v in sorted(metrics.items()) if math.isfinite(v)
        ]
        with _reported(self.target, "logging metrics"):
            self._client.log_batch(self.run_id, metrics=entries)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        entries = [RunTag(k, v) for k, v in sorted(tags.items()) if v]
        with _reported(self.target, "setting tags"):
            self._client.log_batch(self.run_id, tags=entries)

    def log_files(self, files: Iterable[Path], artifact_path: str = REPORT_ARTIFACTS) -> None:
        with _reported(self.target, "uploading the report"):
            for path in files:
                self._client.log_artifact(self.run_id, str(path), artifact_path)

    def end(self, *, succeeded: bool) -> None:
        """FINISHED when the CLI exits 0, FAILED otherwise (a refused version included), so
        the run's status in the UI says what the job's status says."""
        with _reported(self.target, "ending the run"):
            self._client.set_terminated(self.run_id, "FINISHED" if succeeded else "FAILED")


@contextmanager
def _reported(target: TrackingTarget, step: str) -> Iterator[None]:
    """Turn whatever the client raises into one `TrackingError` naming the server and step."""
    try:
        yield
    except Exception as error:  # MLflow's, requests' and boto3's errors alike
        reason = " ".join(str(error).split())
        if len(reason) > _MAX_REASON:
            # MLflow's messages start with the request and end with the cause: keep both.
            reason = reason[: _MAX_REASON // 3] + " ... " + reason[-2 * _MAX_REASON // 3 :]
        raise TrackingError(
            f"MLflow tracking server {target.shown} ({TRACKING_URI_VARIABLE}): {step} failed: "
            f"{reason}"
        ) from error
