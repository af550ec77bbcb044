"""The SageMaker training contract, run as SageMaker runs it: a process with `train`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from mlstack_common.artifact import load_model_dir
from mlstack_common.exits import ExitStatus
from tests.logs import log_messages, log_records


def run_container(opt_ml: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MLSTACK_OPT_ML": str(opt_ml), "MLSTACK_GIT_COMMIT": "feedface"}
    for name in ("SM_CHANNEL_TRAIN", "SM_MODEL_DIR", "SM_OUTPUT_DATA_DIR", "SM_OUTPUT_DIR"):
        env.pop(name, None)
    return subprocess.run(
        [sys.executable, "-m", "training", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def lay_out(opt_ml: Path, demo: tuple[Path, Path], hyperparameters: dict[str, str]) -> None:
    channel = opt_ml / "input" / "data" / "train"
    channel.mkdir(parents=True)
    shutil.copy(demo[0], channel / demo[0].name)
    shutil.copy(demo[1], channel / "dataset.yaml")
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))


def test_train_reads_channels_and_string_hyperparameters_and_writes_opt_ml_model(
    demo_dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    # SageMaker passes every hyperparameter as a string.
    lay_out(tmp_path, demo_dataset, {"algorithm": "linear", "seed": "7", "regularization": "0.5"})
    result = run_container(tmp_path, "train")
    assert result.returncode == 0, result.stderr
    model, metadata = load_model_dir(tmp_path / "model")
    assert metadata.algorithm == "linear"
    assert metadata.hyperparameters["seed"] == 7
    assert metadata.git_commit == "feedface"
    assert type(model[-1]).__name__ == "LogisticRegression"
    report = {p.name for p in (tmp_path / "output" / "data").iterdir()}
    assert {"model_card.md", "evaluation.json", "roc_curve.png"} <= report
    assert not (tmp_path / "output" / "failure").exists()


def test_a_bad_hyperparameter_writes_the_failure_file_and_exits_as_bad_settings(
    demo_dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    lay_out(tmp_path, demo_dataset, {"learning_rate": "fast", "max_depth": "3"})
    result = run_container(tmp_path, "train")
    assert result.returncode == ExitStatus.USAGE
    failure = (tmp_path / "output" / "failure").read_text()
    assert "learning_rate = 'fast': allowed: a number > 0 and <= 1" in failure
    assert "max_depth: unknown setting; allowed: " in failure
    assert not (tmp_path / "model" / "model.joblib").exists()


def test_a_bad_dataset_writes_the_failure_file_naming_the_column(
    demo_dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    lay_out(tmp_path, demo_dataset, {})
    data = next((tmp_path / "input" / "data" / "train").glob("*.csv"))
    data.write_text(data.read_text().replace("diagnosis", "label", 1))
    result = run_container(tmp_path, "train")
    assert result.returncode == ExitStatus.REFUSED
    failure = (tmp_path / "output" / "failure").read_text()
    assert "column 'diagnosis': missing from the data" in failure
    assert "column 'label': not in the spec" in failure


def test_an_empty_channel_is_explained(tmp_path: Path) -> None:
    (tmp_path / "input" / "data" / "train").mkdir(parents=True)
    result = run_container(tmp_path, "train")
    assert result.returncode == ExitStatus.REFUSED
    assert "channel 'train'" in (tmp_path / "output" / "failure").read_text()


def test_hyperparameters_that_are_not_an_object_are_refused_as_bad_settings(
    demo_dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    lay_out(tmp_path, demo_dataset, {})
    (tmp_path / "input" / "config" / "hyperparameters.json").write_text('["algorithm", "hgb"]')
    result = run_container(tmp_path, "train")
    assert result.returncode == ExitStatus.USAGE, result.stderr
    failure = (tmp_path / "output" / "failure").read_text()
    assert "hyperparameters.json: a JSON list; allowed: an object" in failure
    [logged] = log_records(result.stderr, "mlstack-train")
    assert (logged["level"], logged["message"]) == ("ERROR", failure.strip())
    assert "Traceback" not in result.stderr


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def test_the_commit_is_read_from_the_repository_training_starts_in(
    demo_dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    # No MLSTACK_GIT_COMMIT: the commit comes from git, as on a developer's machine.
    repository, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    repository.mkdir()
    elsewhere.mkdir()
    _git(repository, "init", "-q")
    (repository / "train.txt").write_text("x")
    _git(repository, "add", ".")
    _git(repository, "commit", "-q", "-m", "x")
    head = _git(repository, "rev-parse", "HEAD")
    env = {k: v for k, v in os.environ.items() if k != "MLSTACK_GIT_COMMIT"}
    env["GIT_CEILING_DIRECTORIES"] = str(tmp_path)  # never find the project's own repository
    for cwd, expected in ((repository, head), (elsewhere, "unknown")):
        result = subprocess.run(
            [sys.executable, "-m", "training", "--data", str(demo_dataset[0]),
             "--output-dir", str(cwd / "out"), "--algorithm", "linear"],
            cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert load_model_dir(cwd / "out" / "model")[1].git_commit == expected
        assert "fatal" not in result.stderr
        assert json.loads(result.stdout)["model"] == "model", "stdout holds the JSON result only"
        assert "fitting linear on 569 rows" in log_messages(result.stderr), "progress: stderr"
