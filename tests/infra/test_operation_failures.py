"""What the operation commands say when their setup is wrong or someone stops them: one log line
naming the problem and what to do, with its status from the exit-status table, never a
traceback. Run in-process through `mlstack`'s entry point; AWS is moto, the cluster an API-server
stand-in, the Pulumi CLI recorded answers (tests/infra/recorded_cli.py)."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from infra.cli.main import main
from infra.config.stackfiles import StackFileError, StackSettings
from infra.operations import pulumi_cli
from infra.operations.stack_edit import StackFileEdit
from mlstack_common.exits import ExitStatus
from tests import kubernetes_api
from tests.infra.operating import Registry
from tests.infra.recorded_cli import NOT_LOGGED_IN, RecordedCli
from tests.logs import log_records

LOGIN_LINE = (
    "needs the Pulumi CLI logged in to the stack's backend with access to the stack, and it is "
    "not (PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions): log "
    "in to the stack's backend (`pulumi login`"
)


def run(project: Path, *args: str) -> int:
    return main([*args, "--project-dir", str(project)])


def one_error(stderr: str, command: str) -> dict[str, Any]:
    """The one ERROR line of `stderr`, every line being a JSON log line."""
    assert "Traceback" not in stderr
    errors = [r for r in log_records(stderr, command) if r["level"] == "ERROR"]
    assert len(errors) == 1, errors
    return errors[0]


@pytest.fixture
def logged_out(monkeypatch: pytest.MonkeyPatch) -> RecordedCli:
    """An installed Pulumi CLI that is not logged in: every stack command is refused."""
    cli = RecordedCli(refusal=NOT_LOGGED_IN)
    monkeypatch.setattr(pulumi_cli, "cli_command", lambda step: cli)
    return cli


def pin(project: Path, stack: str, entry: str) -> None:
    path = project / f"Pulumi.{stack}.yaml"
    path.write_text(path.read_text() + f"  mlstack:servingModelVersions:\n    - {entry}\n")


# --- a Pulumi CLI that is not logged in --------------------------------------------------------


def test_verify_without_a_login_compares_everything_but_the_image_and_says_why(
    project: Path,
    registry: Registry,
    cluster: kubernetes_api.ApiServer,
    logged_out: RecordedCli,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """dev builds its own images, so its serving image's digest is a stack output."""
    registry.register("demo-dev", "a" * 64)
    pin(project, "dev", "demo=1")

    status = run(project, "verify", "dev")

    captured = capsys.readouterr()
    assert status == ExitStatus.REFUSED  # the Deployment is not there: a mismatch
    assert "Traceback" not in captured.err
    assert (
        "note: image digests not compared: the stack builds its serving image, and its digest "
        "is a stack output (servingImage); reading the outputs of dev (platform) " + LOGIN_LINE
    ) in captured.out
    assert logged_out.calls  # the CLI was asked, and said no


def test_promote_from_an_environment_without_a_login_says_so_in_one_line(
    project: Path,
    registry: Registry,
    logged_out: RecordedCli,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry.register("demo-dev", "a" * 64)
    registry.register("demo-staging", "a" * 64)
    pin(project, "dev", "demo=1")
    before = (project / "Pulumi.staging.yaml").read_text()

    status = run(project, "promote", "--from", "dev", "--to", "staging", "--reason", "INC-9")

    assert status == ExitStatus.TOOL_MISSING
    error = one_error(capsys.readouterr().err, "mlstack promote")
    assert error["exit_status"] == ExitStatus.TOOL_MISSING
    assert "reading the outputs of dev (platform) " + LOGIN_LINE in error["message"]
    assert (project / "Pulumi.staging.yaml").read_text() == before


# --- a stack file without aws:region -----------------------------------------------------------


@pytest.fixture
def no_region(project: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """staging's file without `aws:region`, and nothing else naming a region either."""
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    path = project / "Pulumi.staging.yaml"
    path.write_text(
        "".join(line for line in path.read_text().splitlines(True) if "aws:region" not in line)
    )
    return project


REGION_LINE = (
    "Pulumi.staging.yaml: no aws:region, and neither AWS_REGION nor AWS_DEFAULT_REGION nor the "
    "AWS profile names a region; allowed: set it in the stack (`pulumi config set aws:region "
    "<region> --stack staging`)"
)


@pytest.mark.parametrize(
    "args",
    [
        ("verify", "staging"),
        ("promote", "staging", "--model", "demo", "--version", "1", "--reason", "INC-9"),
        ("rollback", "staging", "--reason", "INC-9"),
    ],
    ids=["verify", "promote", "rollback"],
)
def test_a_stack_file_without_a_region_is_one_line_and_exit_2(
    no_region: Path, args: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    pin(no_region, "staging", "demo=1")  # so that verify has something to look at
    assert run(no_region, *args) == ExitStatus.USAGE
    error = one_error(capsys.readouterr().err, f"mlstack {args[0]}")
    assert error["message"] == REGION_LINE


def test_the_region_is_found_where_the_aws_provider_looks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for variable in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    config = tmp_path / "aws-config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    settings = StackSettings("qa", {"mlstack:environment": "qa"}, frozenset())
    with pytest.raises(StackFileError, match=r"Pulumi\.qa\.yaml: no aws:region"):
        settings.region()
    config.write_text("[default]\nregion = ap-southeast-2\n")
    assert settings.region() == "ap-southeast-2"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-west-2")
    assert settings.region() == "us-west-2"
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    assert settings.region() == "eu-central-1"
    in_file = StackSettings("qa", {"aws:region": "eu-west-1"}, frozenset())
    assert in_file.region() == "eu-west-1"


# --- a file the system will not let it write ----------------------------------------------------


def test_a_stack_file_that_cannot_be_written_is_one_line_naming_it_and_exit_2(
    project: Path,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The new text is renamed over the stack file; a directory the operator cannot write to
    refuses the rename, and the file stays as it was."""
    registry.register("demo-dev", "a" * 64)
    path = project / "Pulumi.dev.yaml"
    before = path.read_text()

    def refused(edit: StackFileEdit) -> None:
        partial = edit.path.with_name(f".{edit.path.name}.partial")
        raise OSError(errno.EACCES, os.strerror(errno.EACCES), str(partial), None, str(edit.path))

    monkeypatch.setattr(StackFileEdit, "write", refused)
    status = run(project, "promote", "dev", "--model", "demo", "--version", "1", "--reason", "x")
    assert status == ExitStatus.USAGE
    error = one_error(capsys.readouterr().err, "mlstack promote")
    assert error["message"] == f"{path}: Permission denied"
    assert path.read_text() == before


# --- Ctrl-C ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("promote", "dev", "--model", "demo", "--version", "1", "--reason", "INC-9"),
        ("rollback", "dev", "--reason", "INC-9"),
        ("verify", "dev"),
        ("train", "dev", "--model", "demo", "--on", "sagemaker"),
        (
            "score",
            "dev",
            "--model",
            "demo",
            "--input",
            "in/",
            "--output",
            "out/",
            "--on",
            "sagemaker",
        ),
    ],
    ids=lambda args: args[0],
)
def test_ctrl_c_in_any_operation_command_is_one_line_and_exit_130(
    project: Path,
    args: tuple[str, ...],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Pressed while the command reads its stack file, the first thing each one does."""

    def pressed(path: Path) -> dict[str, Any]:
        raise KeyboardInterrupt

    monkeypatch.setattr("infra.config.stackfiles.read_stack_file", pressed)
    assert run(project, *args) == ExitStatus.INTERRUPTED
    error = one_error(capsys.readouterr().err, f"mlstack {args[0]}")
    assert error["message"] == (
        "interrupted (Ctrl-C) before it finished; the lines above say how far it got"
    )
    assert error["exit_status"] == 130


def test_every_operation_commands_help_lists_the_interrupted_status(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for command in ("promote", "rollback", "verify", "train", "score"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        shown = " ".join(capsys.readouterr().out.split())
        assert "130 interrupted: Ctrl-C, a hang-up or SIGTERM stopped it" in shown, command
