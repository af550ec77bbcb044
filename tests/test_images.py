"""The images' Dockerfiles: linted, non-root, exec-form entrypoints, only their own extra and
sources."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.project.paths import PROJECT_ROOT

HADOLINT = Path(sys.executable).parent / "hadolint"
# image -> the container argument SageMaker passes it
IMAGES = {"training": "train", "serving": "serve"}
# As the Makefile's `requirements` target runs `uv export`.
EXPORT_FLAGS = (
    "--frozen",
    "--no-dev",
    "--no-default-groups",
    "--no-emit-project",
    "--no-header",
    "--quiet",
)


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
    installs = [value for op, value in steps if op == "RUN" and "uv pip install" in value]
    assert len(installs) == 1
    assert "--require-hashes -r /tmp/requirements.txt" in installs[0]
    assert ("COPY", f"{image}/requirements.txt /tmp/requirements.txt") in steps


@pytest.mark.parametrize("image", IMAGES)
def test_an_image_copies_the_shared_package_and_its_own_sources_only(image: str) -> None:
    """Nothing of `infra/`, the README or the other image: a commit there leaves the image (and
    its content tag, `infra.components.image_sources`) as it was."""
    steps = instructions(PROJECT_ROOT / image / "Dockerfile")
    copied = [value.split()[0] for op, value in steps if op == "COPY" and "--from" not in value]
    assert copied == [
        f"{image}/requirements.txt",
        "mlstack_common/*.py",
        f"{image}/*.py",
    ]


def admitted(ignore_file: Path) -> list[str]:
    """The patterns an ignore file lets into the build context (it excludes everything else)."""
    lines = [line for line in ignore_file.read_text().splitlines() if line and line[0] != "#"]
    assert lines[0] == "*", f"{ignore_file} must exclude everything first"
    assert all(line.startswith("!") for line in lines[1:]), lines
    return [line[1:] for line in lines[1:]]


@pytest.mark.parametrize("image", IMAGES)
def test_each_images_build_context_is_what_its_dockerfile_copies(image: str) -> None:
    """On deploy the context's hash decides whether the image is built again: it must cover
    what the build reads and nothing else (the README, infra/, the other image)."""
    steps = instructions(PROJECT_ROOT / image / "Dockerfile")
    copied = [value.split()[0] for op, value in steps if op == "COPY" and "--from" not in value]
    assert sorted(admitted(PROJECT_ROOT / image / "Dockerfile.dockerignore")) == sorted(copied)


def test_the_shared_build_context_is_the_union_of_the_images_contexts() -> None:
    union = {
        pattern
        for image in IMAGES
        for pattern in admitted(PROJECT_ROOT / image / "Dockerfile.dockerignore")
    }
    assert set(admitted(PROJECT_ROOT / ".dockerignore")) == union


@pytest.mark.parametrize("image", IMAGES)
def test_each_images_requirements_are_its_extra_exported_from_the_lock(image: str) -> None:
    """`<image>/requirements.txt` is what the image installs; regenerate it with
    `make requirements` after changing dependencies."""
    assert (PROJECT_ROOT / image / "requirements.txt").read_text() == exported(image)


def test_the_serving_image_checks_its_health_on_ping_and_writes_only_its_work_dir() -> None:
    steps = instructions(PROJECT_ROOT / "serving" / "Dockerfile")
    [healthcheck] = [value for op, value in steps if op == "HEALTHCHECK"]
    assert "/ping" in healthcheck
    assert ("EXPOSE", "8080") in steps
    env = " ".join(value for op, value in steps if op == "ENV")
    assert "MLSTACK_WORK_DIR=/tmp/mlstack-serving" in env


def exported(extra: str) -> str:
    """An image's extra at the locked versions, with hashes, as `make requirements` writes it."""
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv is not None, "uv installs this project; it is on PATH wherever the tests run"
    result = subprocess.run(
        [uv, "export", *EXPORT_FLAGS, "--extra", extra],
        capture_output=True, text=True, check=True, cwd=PROJECT_ROOT,
    )  # fmt: skip
    return result.stdout


def locked_dependencies(extra: str) -> set[str]:
    """The packages an image installs, by name."""
    return {
        line.split("==")[0].strip()
        for line in exported(extra).splitlines()
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
