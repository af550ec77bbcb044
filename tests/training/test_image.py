"""The training image's Dockerfile: linted, non-root, exec-form, only the training extra."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from infra.paths import PROJECT_ROOT

DOCKERFILE = PROJECT_ROOT / "training" / "Dockerfile"
HADOLINT = Path(sys.executable).parent / "hadolint"


def instructions(path: Path) -> list[tuple[str, str]]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    joined = "\n".join(lines).replace("\\\n", " ")
    return [
        (line.split(" ", 1)[0], line.split(" ", 1)[1])
        for line in joined.splitlines()
        if not line.startswith(" ")
    ]


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [str(HADOLINT), str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_runs_as_a_non_root_user_with_an_exec_form_entrypoint() -> None:
    steps = instructions(DOCKERFILE)
    final_stage = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    users = [value for op, value in final_stage if op == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    entrypoint = [value for op, value in final_stage if op == "ENTRYPOINT"]
    assert entrypoint == ['["python", "-m", "training"]']
    assert ("CMD", '["train"]') in final_stage


def test_base_image_is_a_build_argument_and_only_the_training_extra_is_installed() -> None:
    steps = instructions(DOCKERFILE)
    assert steps[0][0] == "ARG"
    assert steps[0][1].startswith("BASE_IMAGE=")
    assert all(value.startswith("${BASE_IMAGE}") for op, value in steps if op == "FROM")
    installs = [value for op, value in steps if op == "RUN" and "uv sync" in value]
    assert installs == [
        "uv sync --locked --no-dev --no-default-groups --extra training --no-editable"
    ]
