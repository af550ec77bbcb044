"""Experiment tracking against a real MLflow tracking server on 127.0.0.1, with training run as a
shell runs it (`mlstack-train`) and registering into a moto_server.

The server runs from its own tool environment (`tests/tools.py`, installed by `make sync`), like
checkov: the server is a tool the tests start, not a library the project imports. The client is
the training extra's `mlflow-skinny`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import yaml
from sklearn.datasets import load_diabetes, load_iris

from mlstack_common import storage
from mlstack_common.exits import ExitStatus
from serving.ports import free_port
from tests.aws import MODELS_BUCKET, SERVING_IMAGE, Emulator, running_emulator
from tests.logs import log_messages
from tests.loopback import http_server
from tests.tools import MLFLOW_SERVER, tool_command
from training.cli import main
from training.demo import write_demo_dataset

TRAIN = Path(sys.executable).parent / "mlstack-train"
COMMIT = "feedface"
ALGORITHMS = ("linear", "hgb", "forest")
TASKS = ("binary", "multiclass", "regression")
REPORT = {
    "model_card.md",
    "evaluation.json",
    "baseline_statistics.json",
    "dataset_spec.yaml",
}
PLOTS = {
    "binary": {"roc_curve.png", "precision_recall_curve.png", "confusion_matrix.png"},
    "multiclass": {"roc_curve.png", "precision_recall_curve.png", "confusion_matrix.png"},
    "regression": {"residuals.png", "predicted_vs_actual.png"},
}


@dataclass(frozen=True)
class Tracking:
    uri: str
    log: Path

    def client(self) -> Any:
        from mlflow import MlflowClient

        return MlflowClient(tracking_uri=self.uri)


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tracking]:
    """`mlflow server` with a sqlite backend and a local artifact root, served through it."""
    try:
        server = tool_command(MLFLOW_SERVER, "mlflow", "server")
    except LookupError as error:
        pytest.skip(str(error))
    directory = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = directory / "server.log"
    with (
        pytest.MonkeyPatch.context() as env,
        log.open("w") as output,
    ):
        # The client in this process sends nothing anywhere but the server under test.
        env.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        command = [
            *server, "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{directory / 'mlflow.db'}",
            "--artifacts-destination", str(directory / "artifacts"),
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        )
        uri = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(f"{uri}/health", timeout=2).close()  # noqa: S310
                    break
                except OSError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        pytest.fail(f"mlflow server did not start:\n{log.read_text()[-2000:]}")
                    time.sleep(0.5)
            yield Tracking(uri, log)
        finally:
            process.terminate()
            process.wait()


@pytest.fixture(scope="module")
def registry() -> Iterator[Emulator]:
    with running_emulator() as emulator:
        emulator.client("s3").create_bucket(Bucket=MODELS_BUCKET)
        yield emulator


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A data file with its dataset.yaml beside it, per task: real data shipped in
    scikit-learn (breast cancer, iris, diabetes)."""
    root = tmp_path_factory.mktemp("data")
    binary, _ = write_demo_dataset(root / "binary")
    found = {"binary": binary}
    for task, bunch, target_type in (
        ("multiclass", load_iris(as_frame=True), "categorical"),
        ("regression", load_diabetes(as_frame=True), "numeric"),
    ):
        frame = bunch.frame
        if task == "multiclass":
            frame["target"] = [str(bunch.target_names[i]) for i in frame["target"]]
        (root / task).mkdir()
        frame.to_csv(root / task / "data.csv", index=False)
        spec = {
            "target": {"name": "target", "type": target_type},
            "features": [{"name": str(name), "type": "numeric"} for name in bunch.feature_names],
        }
        (root / task / "dataset.yaml").write_text(yaml.safe_dump(spec))
        found[task] = root / task / "data.csv"
    return found


def train_args(data: Path, out: Path, group: str, *extra: str) -> list[str]:
    """`mlstack-train`'s arguments for a run on `data` into `group`."""
    return [
        "--data", str(data),
        "--output-dir", str(out),
        "--models-uri", f"s3://{MODELS_BUCKET}/models",
        "--model-package-group", group,
        "--serving-image", SERVING_IMAGE,
        *extra,
    ]  # fmt: skip


def train(
    data: Path,
    out: Path,
    emulator: Emulator,
    group: str,
    tracking_uri: str | None,
    *extra: str,
) -> subprocess.CompletedProcess[str]:
    """`mlstack-train` as a shell (or the training CronJob) runs it."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
    environment.update(emulator.env)
    environment.update({"MLSTACK_GIT_COMMIT": COMMIT, "MLSTACK_ENVIRONMENT": "test"})
    if tracking_uri is not None:
        environment["MLFLOW_TRACKING_URI"] = tracking_uri
    emulator.client("sagemaker").create_model_package_group(ModelPackageGroupName=group)
    return subprocess.run(
        [str(TRAIN), *train_args(data, out, group, *extra)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def train_in_process(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    data: Path,
    out: Path,
    emulator: Emulator,
    group: str,
    tracking_uri: str,
    *extra: str,
) -> tuple[int, str]:
    """`mlstack-train`'s `main` with the environment `train` gives the process: the matrix of
    algorithms and tasks pays for a run, not for a process's imports (the door a shell uses is
    `train`'s, above)."""
    for name in [k for k in os.environ if k.startswith(("AWS_", "MLFLOW_"))]:
        monkeypatch.delenv(name)
    for name, value in {
        **emulator.env,
        "MLSTACK_GIT_COMMIT": COMMIT,
        "MLSTACK_ENVIRONMENT": "test",
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_CONFIGURE_LOGGING": "false",
    }.items():
        monkeypatch.setenv(name, value)
    emulator.client("sagemaker").create_model_package_group(ModelPackageGroupName=group)
    storage.s3_client.cache_clear()
    try:
        status = main(train_args(data, out, group, *extra))
    finally:
        storage.s3_client.cache_clear()
    return status, capsys.readouterr().err


def versions(emulator: Emulator, group: str) -> list[dict[str, Any]]:
    sagemaker = emulator.client("sagemaker")
    summaries = sagemaker.list_model_packages(ModelPackageGroupName=group)[
        "ModelPackageSummaryList"
    ]
    return [
        sagemaker.describe_model_package(ModelPackageName=s["ModelPackageArn"]) for s in summaries
    ]


def test_a_run_shows_its_params_metrics_and_report_and_its_id_is_on_the_version(
    tracking_server: Tracking,
    registry: Emulator,
    datasets: dict[str, Path],
    tmp_path: Path,
) -> None:
    data = datasets["binary"]
    result = train(data, tmp_path / "out", registry, "tracked-test", tracking_server.uri)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)  # stdout is the JSON result alone
    run_id = printed["mlflow_run_id"]
    assert f"MLflow run {run_id}" in log_messages(result.stderr)

    [version] = versions(registry, "tracked-test")
    lineage = version["CustomerMetadataProperties"]
    assert lineage["mlflow_run_id"] == run_id
    assert lineage["mlflow_tracking_uri"] == tracking_server.uri

    client = tracking_server.client()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "tracked-test"
    params = run.data.params
    assert params["algorithm"] == "hgb"
    assert params["task"] == "classification"
    assert params["hp.max_iter"] == "200"
    assert params["gate.min_improvement"] == "0.01"
    assert params["data.rows"] == "569"
    assert params["data.sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    assert params["classes"] == "benign,malignant"
    metrics = run.data.metrics
    assert metrics["roc_auc"] == pytest.approx(printed["metrics"]["roc_auc"])
    assert {"accuracy", "log_loss", "baseline_roc_auc", "baseline_log_loss"} <= set(metrics)
    tags = run.data.tags
    assert tags["mlstack.model"] == "tracked-test"
    assert tags["mlstack.environment"] == "test"
    assert tags["mlflow.source.git.commit"] == COMMIT
    assert tags["mlstack.gate"] == "passed"
    assert tags["mlstack.model_package_arn"] == version["ModelPackageArn"]
    assert tags["mlstack.model_package_version"] == "1"
    assert tags["mlstack.approval_status"] == "PendingManualApproval"

    logged = {Path(a.path).name for a in client.list_artifacts(run_id, "report")}
    assert logged == REPORT | PLOTS["binary"]
    card = Path(client.download_artifacts(run_id, "report/model_card.md", str(tmp_path)))
    assert "version 1" in card.read_text()
    assert f"MLflow run:** `{run_id}`" in card.read_text()


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_algorithm_and_task_records_its_run_on_the_registered_version(
    algorithm: str,
    task: str,
    tracking_server: Tracking,
    registry: Emulator,
    datasets: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    group = f"{algorithm}-{task}-test"
    status, stderr = train_in_process(
        monkeypatch,
        capsys,
        datasets[task],
        tmp_path,
        registry,
        group,
        tracking_server.uri,
        "--algorithm",
        algorithm,
    )
    assert status == 0, stderr
    [version] = versions(registry, group)
    run_id = version["CustomerMetadataProperties"]["mlflow_run_id"]
    client = tracking_server.client()
    run = client.get_run(run_id)
    assert (run.info.status, run.data.params["algorithm"]) == ("FINISHED", algorithm)
    assert run.data.tags["mlstack.model_package_arn"] == version["ModelPackageArn"]
    logged = {Path(a.path).name for a in client.list_artifacts(run_id, "report")}
    assert logged == REPORT | PLOTS[task]


def test_a_refused_version_is_a_failed_run_with_its_card(
    tracking_server: Tracking, registry: Emulator, datasets: dict[str, Path], tmp_path: Path
) -> None:
    result = train(
        datasets["binary"], tmp_path, registry, "refused-test", tracking_server.uri,
        "--min-improvement", "0.9",
    )  # fmt: skip
    assert result.returncode == ExitStatus.GATE, result.stderr
    assert versions(registry, "refused-test") == []
    client = tracking_server.client()
    [run] = client.search_runs([client.get_experiment_by_name("refused-test").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["mlstack.gate"] == "refused"
    assert run.data.tags["mlstack.registered"] == "no"
    assert "less than the required 0.9" in run.data.tags["mlstack.error"]
    card = Path(client.download_artifacts(run.info.run_id, "report/model_card.md", str(tmp_path)))
    assert "not registered: the quality gate refused it" in card.read_text()


class _Refusing(BaseHTTPRequestHandler):
    """A server that answers every request with 403, as one behind an auth proxy would."""

    def do_GET(self) -> None:
        self.send_response(403)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"forbidden: no credentials")

    do_POST = do_GET  # noqa: N815 (the name http.server dispatches POST to)

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def refusing_server() -> Iterator[str]:
    with http_server(_Refusing) as url:
        yield url


@pytest.mark.parametrize("server", ["down", "refusing"])
def test_a_server_that_cannot_be_used_stops_the_run_before_training_naming_it(
    server: str,
    refusing_server: str,
    registry: Emulator,
    datasets: dict[str, Path],
    tmp_path: Path,
) -> None:
    uri = refusing_server if server == "refusing" else f"http://127.0.0.1:{free_port()}"
    group = f"untracked-{server}-test"
    result = train(datasets["binary"], tmp_path / "out", registry, group, uri)
    assert result.returncode == ExitStatus.UNREACHABLE
    logged = log_messages(result.stderr)
    assert f"MLflow tracking server {uri} (MLFLOW_TRACKING_URI): finding or creating" in logged
    assert ("403" if server == "refusing" else "Connection refused") in logged
    assert "fitting" not in logged
    assert not (tmp_path / "out").exists()
    assert versions(registry, group) == []


def _without_mlflow(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m training` in an interpreter where importing mlflow fails, as where the
    client is not installed."""
    shim = (
        "import runpy, sys; sys.modules['mlflow'] = None; "
        f"sys.argv = ['mlstack-train', *{args!r}]; "
        "runpy.run_module('training', run_name='__main__')"
    )
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.run(
        [sys.executable, "-c", shim],
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_without_a_tracking_uri_training_never_imports_mlflow(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    args = ["--data", str(datasets["binary"]), "--output-dir", str(tmp_path)]
    result = _without_mlflow(args, {})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["mlflow_run_id"] is None
    assert "MLflow" not in (tmp_path / "report" / "model_card.md").read_text()


def test_a_tracking_uri_without_the_client_installed_is_refused_as_input(
    datasets: dict[str, Path], tmp_path: Path
) -> None:
    args = ["--data", str(datasets["binary"]), "--output-dir", str(tmp_path)]
    result = _without_mlflow(args, {"MLFLOW_TRACKING_URI": "http://127.0.0.1:1"})
    assert result.returncode == ExitStatus.REFUSED
    assert "MLFLOW_TRACKING_URI = http://127.0.0.1:1: the MLflow client is not installed" in (
        log_messages(result.stderr)
    )
    assert not (tmp_path / "model").exists()


def _published_names(emulator: Emulator, version: dict[str, Any]) -> set[str]:
    """The names of the report files published beside the version's evaluation."""
    evaluation = version["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
    prefix = evaluation.removeprefix(f"s3://{MODELS_BUCKET}/").rsplit("/", 1)[0]
    listed = emulator.client("s3").list_objects_v2(Bucket=MODELS_BUCKET, Prefix=f"{prefix}/")
    return {item["Key"].rsplit("/", 1)[-1] for item in listed["Contents"]}


def test_an_untracked_run_records_no_run_yet_writes_and_publishes_what_a_tracked_one_does(
    tracking_server: Tracking, registry: Emulator, datasets: dict[str, Path], tmp_path: Path
) -> None:
    data = datasets["binary"]
    uris = {"tracked": tracking_server.uri, "untracked": None}
    runs = {
        name: train(data, tmp_path / name, registry, f"alike-{name}-test", uri)
        for name, uri in uris.items()
    }
    for name, result in runs.items():
        assert result.returncode == 0, f"{name}: {result.stderr}"
    assert json.loads(runs["untracked"].stdout)["mlflow_run_id"] is None
    assert "MLflow" not in log_messages(runs["untracked"].stderr)
    assert tracking_server.client().get_experiment_by_name("alike-untracked-test") is None

    [tracked] = versions(registry, "alike-tracked-test")
    [untracked] = versions(registry, "alike-untracked-test")
    tracked_lineage = tracked["CustomerMetadataProperties"]
    untracked_lineage = untracked["CustomerMetadataProperties"]
    assert {"mlflow_run_id", "mlflow_tracking_uri"} <= set(tracked_lineage)
    assert not [key for key in untracked_lineage if key.startswith("mlflow")]
    assert set(untracked_lineage) == set(tracked_lineage) - {"mlflow_run_id", "mlflow_tracking_uri"}
    assert untracked_lineage["model_sha256"] == tracked_lineage["model_sha256"]
    assert untracked["ModelApprovalStatus"] == tracked["ModelApprovalStatus"]
    assert _published_names(registry, untracked) == _published_names(registry, tracked)

    written = {
        name: sorted(p.relative_to(tmp_path / name) for p in (tmp_path / name).rglob("*"))
        for name in runs
    }
    assert written["untracked"] == written["tracked"]
    for same in ("model/model.joblib", "report/evaluation.json", "report/baseline_statistics.json"):
        assert (tmp_path / "untracked" / same).read_bytes() == (
            tmp_path / "tracked" / same
        ).read_bytes(), same
    assert "MLflow" in (tmp_path / "tracked" / "report" / "model_card.md").read_text()
    assert "MLflow" not in (tmp_path / "untracked" / "report" / "model_card.md").read_text()
