"""The images' Dockerfiles: linted, non-root, exec-form entrypoints, only their own extra."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.paths import PROJECT_ROOT

HADOLINT = Path(sys.executable).parent / "hadolint"
# image -> the container argument SageMaker passes it
IMAGES = {"training": "train", "serving": "serve"}


def instructions(path: Path) -> list[tuple[str, str]]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [
        (line.split(" ", 1)[0], line.split(" ", 1)[1])
        for line in joined.splitlines()
        if not line.startswith(" ")
    ]


@pytest.mark.parametrize("image", IMAGES)
def test_hadolint_finds_nothing(image: str) -> None:
    dockerfile = PROJECT_ROOT / image / "Dockerfile"
    result = subprocess.run(
        [str(HADOLINT), str(dockerfile)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("image", IMAGES)
def test_runs_as_a_non_root_user_with_an_exec_form_entrypoint(image: str) -> None:
    steps = instructions(PROJECT_ROOT / image / "Dockerfile")
    final_stage = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    users = [value for op, value in final_stage if op == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    entrypoint = [value for op, value in final_stage if op == "ENTRYPOINT"]
    assert entrypoint == [f'["python", "-m", "{image}"]']
    assert ("CMD", f'["{IMAGES[image]}"]') in final_stage


@pytest.mark.parametrize("image", IMAGES)
def test_base_image_is_a_build_argument_and_only_its_extra_is_installed(image: str) -> None:
    steps = instructions(PROJECT_ROOT / image / "Dockerfile")
    assert steps[0][0] == "ARG"
    assert steps[0][1].startswith("BASE_IMAGE=")
    assert all(value.startswith("${BASE_IMAGE}") for op, value in steps if op == "FROM")
    installs = [value for op, value in steps if op == "RUN" and "uv sync" in value]
    only_its_extra = f"uv sync --locked --no-dev --no-default-groups --extra {image} --no-editable"
    assert installs == [f"{only_its_extra} --no-install-project", only_its_extra]


def test_the_serving_image_checks_its_health_on_ping_and_writes_only_its_work_dir() -> None:
    steps = instructions(PROJECT_ROOT / "serving" / "Dockerfile")
    [healthcheck] = [value for op, value in steps if op == "HEALTHCHECK"]
    assert "/ping" in healthcheck
    assert ("EXPOSE", "8080") in steps
    env = " ".join(value for op, value in steps if op == "ENV")
    assert "MLSTACK_WORK_DIR=/tmp/mlstack-serving" in env


def locked_dependencies(extra: str) -> set[str]:
    """The packages an image installs: its extra at the locked versions, as its Dockerfile's
    `uv sync --locked --no-dev --no-default-groups --extra <image>` resolves them."""
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv is not None, "uv installs this project; it is on PATH wherever the tests run"
    result = subprocess.run(
        [uv, "export", "--locked", "--no-dev", "--no-default-groups", "--extra", extra,
         "--no-hashes", "--no-emit-project", "--no-header"],
        capture_output=True, text=True, check=True, cwd=PROJECT_ROOT,
    )  # fmt: skip
    return {
        line.split("==")[0].strip()
        for line in result.stdout.splitlines()
        if line and not line.startswith(("#", " "))
    }


MLFLOW = {"mlflow", "mlflow-skinny", "mlflow-tracing", "sagemaker-mlflow"}


def test_the_mlflow_client_is_in_the_training_image_and_nothing_of_mlflow_in_serving() -> None:
    training, serving = locked_dependencies("training"), locked_dependencies("serving")
    assert {"mlflow-skinny", "sagemaker-mlflow"} <= training
    assert "mlflow" not in training  # the client only, not the server
    assert serving & MLFLOW == set()
    # Nor what the MLflow client brings with it (its web framework, Databricks' SDK, git).
    assert serving & {"fastapi", "starlette", "databricks-sdk", "gitpython"} == set()
