"""`mlstack rollback ENV --to-update K`: update K's commit, configuration and images, deployed
from a temporary worktree, the model pins made since kept. The update histories are recorded
ones (the shape `pulumi stack history --json --show-secrets` prints, parsed as the Automation
API parses it). Most tests give the rollback an engine that records the preview or update it
was asked for; those of the command itself drive the real Automation API and supervision
against recorded CLI answers (tests/infra/recorded_cli.py), whose `up` is a real process."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation import ConfigValue, UpdateSummary

from infra.cli.main import main
from infra.operations import pulumi_cli
from infra.operations.errors import RefusedError
from infra.operations.stack_edit import StackFileEdit
from infra.operations.stack_rollback import roll_back_stack
from infra.operations.supervised import CliInterrupted, supervise
from infra.project.layers import PLATFORM, WORKLOADS, Layer
from mlstack_common.exits import ExitStatus
from tests.infra.operating import copy_project
from tests.infra.recorded_cli import (
    NO_EARLIER_STATE,
    NOT_LOGGED_IN,
    STUCK_UP,
    RecordedCli,
    export,
    history_answer,
)
from tests.logs import log_messages, log_records

HISTORIES = Path(__file__).parent / "histories"
DATETIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # the Automation API's own format for history times
REGISTRY = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
DIGESTS = {"training": "sha256:" + "3" * 64, "serving": "sha256:" + "4" * 64}
"""What update 3 ran."""
OUTPUTS_3 = {
    "trainingImage": f"{REGISTRY}/images-training-staging@{DIGESTS['training']}",
    "servingImage": f"{REGISTRY}/images-serving-staging@{DIGESTS['serving']}",
    "servedModelVersions": {"demo": "arn:aws:sagemaker:eu-west-1:123456789012:model-package/x"},
}
"""The outputs update 3 recorded, as `pulumi stack export --version 3` gives them."""
DIGEST_LINES = (
    f"  mlstack:imageDigests:\n    - training={DIGESTS['training']}\n"
    f"    - serving={DIGESTS['serving']}\n"
)


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@dataclass(frozen=True)
class Repository:
    root: Path
    commit1: str
    """staging pins demo=1."""
    commit2: str
    """staging pins demo=2."""


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    root = copy_project(tmp_path / "checkout")
    workloads = root / WORKLOADS.directory.relative_to(PLATFORM.directory)
    workloads.mkdir(parents=True)
    shutil.copy(WORKLOADS.directory / "Pulumi.yaml", workloads)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "ops@example.com")
    git(root, "config", "user.name", "Ops Person")
    staging = root / "Pulumi.staging.yaml"
    staging.write_text(staging.read_text() + "  mlstack:servingModelVersions:\n    - demo=1\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "Serve demo v1 in staging")
    commit1 = git(root, "rev-parse", "HEAD")
    staging.write_text(staging.read_text().replace("demo=1", "demo=2"))
    git(root, "commit", "-qam", "Serve demo v2 in staging")
    return Repository(root, commit1, git(root, "rev-parse", "HEAD"))


def recorded_history(name: str, repository: Repository) -> list[UpdateSummary]:
    text = history_answer(HISTORIES / name, commit1=repository.commit1, commit2=repository.commit2)
    return [
        UpdateSummary(
            kind=item["kind"],
            start_time=datetime.strptime(item["startTime"], DATETIME),
            message=item["message"],
            environment=item["environment"],
            config=item["config"],
            result=item["result"],
            end_time=datetime.strptime(item["endTime"], DATETIME) if "endTime" in item else None,
            version=item.get("version"),
            resource_changes=item.get("resourceChanges"),
        )
        for item in json.loads(text)
    ]


@dataclass
class Run:
    head: str
    stack_file: str
    preview: bool
    message: str


@dataclass
class RecordingEngine:
    """The stack as the Automation API would present it: a recorded history and the outputs
    each update recorded, and a record of each preview or update it was asked for, with the
    checkout it was asked to run from."""

    updates: list[UpdateSummary]
    exports: dict[int, dict[str, Any]] = field(default_factory=lambda: {3: OUTPUTS_3})
    layer: Layer = WORKLOADS
    runs: list[Run] = field(default_factory=list)
    exported: list[int] = field(default_factory=list)
    records_commit: bool = True
    """Whether an update it runs records the checkout's commit, as the Pulumi CLI does."""

    def history(self) -> list[Any]:
        return list(self.updates)

    def recorded_outputs(self, version: int) -> dict[str, Any]:
        self.exported.append(version)
        return self.exports.get(version, {})

    def run(self, work_dir: Path, *, preview: bool, message: str, on_output: Any) -> None:
        head = git(work_dir, "rev-parse", "HEAD")
        self.runs.append(
            Run(
                head=head,
                stack_file=(work_dir / "Pulumi.staging.yaml").read_text(),
                preview=preview,
                message=message,
            )
        )
        if not preview:
            dirty = "true" if git(work_dir, "status", "--porcelain") else "false"
            environment = {"git.head": head, "git.dirty": dirty} if self.records_commit else {}
            self.updates.insert(
                0,
                UpdateSummary(
                    kind="update",
                    start_time=datetime(2026, 12, 3, 9, 0),
                    message=message,
                    environment=environment,
                    config={},
                    result="succeeded",
                    version=max(u.version or 0 for u in self.updates) + 1,
                ),
            )


def roll_back(repository: Repository, engine: RecordingEngine, version: int, **kw: Any) -> Any:
    output: list[str] = []
    target = roll_back_stack(
        repository.root,
        "staging",
        version,
        engine=engine,
        preview=kw.get("preview", False),
        reason="the v2 canary failed",
        operator="ops@example.com",
        on_output=output.append,
        restore_pins=kw.get("restore_pins", False),
    )
    return target, "".join(output)


def committed(repository: Repository, commit: str) -> str:
    return git(repository.root, "show", f"{commit}:Pulumi.staging.yaml") + "\n"


def assert_checkout_untouched(repository: Repository) -> None:
    """The checkout is as it was, and no temporary worktree is left."""
    assert git(repository.root, "rev-parse", "HEAD") == repository.commit2
    assert git(repository.root, "status", "--porcelain") == ""
    assert len(git(repository.root, "worktree", "list").splitlines()) == 1


def test_an_update_is_deployed_again_from_its_commit_with_its_configuration_and_images(
    repository: Repository,
) -> None:
    engine = RecordingEngine(recorded_history("staging.json", repository))

    target, output = roll_back(repository, engine, 3)

    [run] = engine.runs
    assert run.head == repository.commit1 == target.commit
    assert run.preview is False
    assert run.message == (
        f"rollback to update 3 ({repository.commit1[:12]}) by ops@example.com: the v2 canary failed"
    )
    # The commit's file, with the one value update 3 ran with that the commit does not hold
    # (values equal to the file's or to the declared defaults, and secrets, are left as they
    # are), the model pins of the checkout, and the images update 3 ran, by digest, so the
    # program deploys them instead of building.
    assert run.stack_file == (
        committed(repository, repository.commit1)
        .replace("mlstack:servingMinReplicas: 2", "mlstack:servingMinReplicas: 3")
        .replace("demo=1", "demo=2")
        + DIGEST_LINES
    )
    assert engine.exported == [3]
    assert "restoring the configuration update 3 ran with" in output
    assert "mlstack:servingMinReplicas" in output
    assert "aws:defaultTags" not in output
    assert "alarmEmail" not in output
    assert "keeping the model pins Pulumi.staging.yaml has now (demo=2), not update 3's" in output
    assert "deploying the images update 3 ran, by digest (mlstack:imageDigests): training=" in (
        output
    )
    assert_checkout_untouched(repository)


def test_restore_pins_deploys_the_model_versions_the_update_pinned(
    repository: Repository,
) -> None:
    engine = RecordingEngine(recorded_history("staging.json", repository))

    _, output = roll_back(repository, engine, 3, restore_pins=True)

    [run] = engine.runs
    assert "    - demo=1\n" in run.stack_file
    assert "demo=2" not in run.stack_file
    assert "deploying update 3's model pins (demo=1), not the ones Pulumi.staging.yaml has now" in (
        output
    )


def test_an_update_that_pinned_its_images_is_rolled_back_to_them_without_reading_its_state(
    repository: Repository,
) -> None:
    """Promoted environments pin their images (mlstack:imageDigests); the history holds them."""
    history = recorded_history("staging.json", repository)
    pinned = [f"{image}={digest}" for image, digest in DIGESTS.items()]
    history[-1].config["mlstack:imageDigests"] = ConfigValue(json.dumps(pinned), secret=False)
    engine = RecordingEngine(history, exports={})

    roll_back(repository, engine, 3)

    assert engine.exported == []
    assert engine.runs[0].stack_file.endswith(DIGEST_LINES)


def test_an_update_that_recorded_no_image_digest_is_refused(repository: Repository) -> None:
    engine = RecordingEngine(
        recorded_history("staging.json", repository),
        exports={3: {key: value for key, value in OUTPUTS_3.items() if "Image" not in key}},
    )
    with pytest.raises(RefusedError) as refused:
        roll_back(repository, engine, 3)
    assert str(refused.value) == (
        "update 3 of staging recorded no image by digest (trainingImage, servingImage missing "
        f"from its outputs), so a rollback to it would build the images from commit "
        f"{repository.commit1[:12]} instead of deploying what ran; roll back to an update that "
        "deployed images"
    )
    assert engine.runs == []
    assert_checkout_untouched(repository)


def test_the_platform_layer_deploys_no_images_so_needs_no_digest(repository: Repository) -> None:
    engine = RecordingEngine(recorded_history("staging.json", repository), layer=PLATFORM)
    roll_back(repository, engine, 3)
    assert engine.exported == []
    assert "imageDigests" not in engine.runs[0].stack_file


def test_a_rollback_that_left_no_commit_in_its_own_update_says_so(
    repository: Repository,
) -> None:
    recording = RecordingEngine(recorded_history("staging.json", repository))
    assert "warning" not in roll_back(repository, recording, 3)[1]
    silent = RecordingEngine(recorded_history("staging.json", repository), records_commit=False)
    _, output = roll_back(repository, silent, 3)
    assert (
        f"warning: the rollback's update recorded commit none, not {repository.commit1}; "
        "`--to-update` cannot return to it later"
    ) in output


def test_a_dry_run_previews_the_same_checkout(repository: Repository) -> None:
    engine = RecordingEngine(recorded_history("staging.json", repository), exports={9: OUTPUTS_3})
    roll_back(repository, engine, 9, preview=True)
    [run] = engine.runs
    assert (run.head, run.preview) == (repository.commit2, True)
    assert "demo=2" in run.stack_file
    assert run.stack_file.endswith(DIGEST_LINES)


@pytest.mark.parametrize(
    ("version", "message"),
    [
        (42, "staging has no update 42; its updates, newest first: 9, 8, 7, 6, 5, 4, 3"),
        (4, "update 4 of staging failed; roll back to an update that succeeded"),
        (6, "entry 6 of staging's history is a refresh, which deploys nothing; roll back to an"),
        (5, "update 5 of staging ran from commit {commit1} with uncommitted changes (git.dirty)"),
        (
            7,
            "commit 0123456789abcdef0123456789abcdef01234567 of update 7 is not in this repository",
        ),
        (8, "update 8 of staging records no git commit (git.head): it was not run from a git"),
    ],
)
def test_an_update_that_cannot_be_reproduced_is_refused(
    repository: Repository, version: int, message: str
) -> None:
    engine = RecordingEngine(recorded_history("staging.json", repository))
    with pytest.raises(RefusedError) as refused:
        roll_back(repository, engine, version)
    assert message.format(commit1=repository.commit1[:12]) in str(refused.value)
    assert engine.runs == []


def test_a_checkout_with_uncommitted_changes_is_refused_before_anything_runs(
    repository: Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    (repository.root / "Pulumi.prod.yaml").write_text("config: {}\n")
    engine = RecordingEngine(recorded_history("staging.json", repository))
    with pytest.raises(RefusedError, match=r"has uncommitted changes \(1:  M Pulumi.prod.yaml\)"):
        roll_back(repository, engine, 3)
    assert engine.runs == []
    # The command says the same, before it looks for the Pulumi CLI.
    args = ["rollback", "staging", "--to-update", "3", "--reason", "x"]
    assert main([*args, "--project-dir", str(repository.root)]) == 1
    assert "has uncommitted changes" in log_messages(capsys.readouterr().err)


def test_restore_pins_goes_with_to_update(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["rollback", "staging", "--reason", "x", "--restore-pins"])
    assert stopped.value.code == ExitStatus.USAGE
    assert "--restore-pins goes with --to-update" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("pulumi") is not None, reason="the Pulumi CLI is installed")
def test_without_the_pulumi_cli_the_command_says_what_to_install(
    repository: Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["rollback", "staging", "--to-update", "3", "--reason", "x"]
    assert main([*args, "--project-dir", str(repository.root)]) == 5
    err = log_messages(capsys.readouterr().err)
    assert "needs the Pulumi CLI, and there is no `pulumi` on PATH: install it" in err
    assert "https://get.pulumi.com" in err


# --- the command, through the Automation API and recorded CLI answers --------------------------


@pytest.fixture
def cli(repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RecordedCli:
    """The Pulumi CLI as the rollback command meets it, answering for staging's workloads."""
    recorded = RecordedCli(
        answers={
            "stack history": history_answer(
                HISTORIES / "staging.json",
                commit1=repository.commit1,
                commit2=repository.commit2,
            ),
            "stack export 3": json.dumps(export(OUTPUTS_3)),
        },
        report=tmp_path / "up.json",
    )
    monkeypatch.setattr(pulumi_cli, "cli_command", lambda step: recorded)
    return recorded


def rollback_command(repository: Repository, *args: str) -> int:
    return main(
        [
            "rollback",
            "staging",
            "--to-update",
            "3",
            "--reason",
            "INC-7",
            "--project-dir",
            str(repository.root),
            *args,
        ]
    )


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie waiting to be reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def test_ctrl_c_stops_the_update_before_its_checkout_is_removed_and_says_so_in_one_line(
    repository: Repository, cli: RecordedCli, capsys: pytest.CaptureFixture[str]
) -> None:
    status = rollback_command(repository)

    assert status == ExitStatus.INTERRUPTED
    assert int(status) == 130
    assert cli.report is not None
    ended = json.loads(cli.report.read_text())
    # The CLI ended in the directory it ran from, and has ended for good.
    assert ended["cwd_exists"] is True
    assert not alive(ended["pid"])
    assert_checkout_untouched(repository)
    records = log_records(capsys.readouterr().err, "mlstack rollback")
    [error] = [r for r in records if r["level"] == "ERROR"]
    assert error["exit_status"] == 130
    assert error["message"] == (
        "interrupted (Ctrl-C): `pulumi up` of staging (workloads) stopped once the operations "
        "it had started were done, and recorded what it changed (`pulumi stack history --stack "
        "staging`); run it again to finish"
    )
    assert any(r["message"].startswith("stopping `pulumi up`") for r in records)
    # The update ran with update 3's images and the checkout's pins, from update 3's commit.
    [up] = [call for call in cli.calls if call[:1] == ["up"]]
    assert f"rollback to update 3 ({repository.commit1[:12]}) by ops@example.com: INC-7" in up
    assert ["cancel"] not in [call[:1] for call in cli.calls]


def test_an_update_that_will_not_stop_is_killed_with_its_plugins_and_cancelled(
    repository: Repository, cli: RecordedCli, capsys: pytest.CaptureFixture[str]
) -> None:
    cli.up_script, cli.grace_seconds = STUCK_UP, 0.5

    assert rollback_command(repository) == ExitStatus.INTERRUPTED

    assert cli.report is not None
    started = json.loads(cli.report.read_text())
    assert not alive(started["pid"])
    assert not alive(started["plugin"])
    assert ["cancel", "--yes", "--stack", "staging"] in cli.calls
    assert_checkout_untouched(repository)
    assert (
        "interrupted (Ctrl-C): `pulumi up` of staging (workloads) was killed mid-way and its "
        "update cancelled (`pulumi cancel`), so the stack is not locked"
    ) in log_messages(capsys.readouterr().err)


def test_a_backend_without_earlier_states_refuses_a_rollback_to_built_images(
    repository: Repository, cli: RecordedCli, capsys: pytest.CaptureFixture[str]
) -> None:
    cli.refusals["stack export 3"] = NO_EARLIER_STATE
    assert rollback_command(repository, "--dry-run") == ExitStatus.REFUSED
    assert (
        "update 3 of staging built its images, so their digests are in the outputs it recorded "
        "(trainingImage, servingImage), which cannot be read: reading the outputs update 3 of "
        "staging (workloads) left: the stack's backend keeps no earlier versions of its state"
    ) in log_messages(capsys.readouterr().err)
    assert [call[:1] for call in cli.calls if call[:1] in (["up"], ["preview"])] == []


def test_a_cli_that_is_not_logged_in_is_one_line_and_exit_5(
    repository: Repository, cli: RecordedCli, capsys: pytest.CaptureFixture[str]
) -> None:
    cli.refusal = NOT_LOGGED_IN
    assert rollback_command(repository) == ExitStatus.TOOL_MISSING
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [error] = [r for r in log_records(err, "mlstack rollback") if r["level"] == "ERROR"]
    assert error["message"] == (
        "reading the update history of staging (workloads) needs the Pulumi CLI logged in to "
        "the stack's backend with access to the stack, and it is not (PULUMI_ACCESS_TOKEN must "
        "be set for login during non-interactive CLI sessions): log in to the stack's backend "
        "(`pulumi login`; on Pulumi Cloud without a terminal, set PULUMI_ACCESS_TOKEN) and run "
        "this again"
    )


def test_a_stack_file_that_cannot_be_written_stops_it_in_one_line_before_anything_runs(
    repository: Repository,
    cli: RecordedCli,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def disk_full(edit: StackFileEdit) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(StackFileEdit, "write", disk_full)
    assert rollback_command(repository) == ExitStatus.USAGE
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [error] = [r for r in log_records(err, "mlstack rollback") if r["level"] == "ERROR"]
    assert error["message"] == (
        "Pulumi.staging.yaml: cannot be written in the temporary checkout of commit "
        f"{repository.commit1[:12]} (No space left on device); nothing was deployed"
    )
    assert [call for call in cli.calls if call[:1] == ["up"]] == []
    assert_checkout_untouched(repository)


# --- supervision of any CLI command ------------------------------------------------------------


def test_a_hang_up_stops_the_cli_as_ctrl_c_does(tmp_path: Path) -> None:
    script = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGINT, lambda *_: sys.exit(8))\n"
        "os.kill(os.getppid(), signal.SIGHUP)\n"
        "time.sleep(60)\n"
    )
    with pytest.raises(CliInterrupted) as interrupted:
        supervise([sys.executable, "-c", script], cwd=str(tmp_path), env=dict(os.environ))
    assert (interrupted.value.cause, interrupted.value.killed) == ("a hang-up", False)
    # The terminal's signals are this process's own again.
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL


def test_a_cli_that_ends_on_its_own_gives_its_output_and_status(tmp_path: Path) -> None:
    lines: list[str] = []
    result = supervise(
        [sys.executable, "-c", "import sys; print('one'); print('two'); sys.exit(3)"],
        cwd=str(tmp_path),
        env=dict(os.environ),
        on_output=lines.append,
    )
    assert (result.code, result.stdout, lines) == (3, "one\ntwo", ["one", "two"])


@pytest.mark.skipif(
    shutil.which("pulumi") is None,
    reason="needs the Pulumi CLI (not installable here: its package downloads the binary)",
)
def test_with_the_pulumi_cli_a_new_stack_has_no_update_to_go_back_to(
    repository: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real Automation API against a local backend: history read and parsed by the SDK."""
    backend = tmp_path / "backend"
    backend.mkdir()
    monkeypatch.setenv("PULUMI_BACKEND_URL", f"file://{backend}")
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "test")
    subprocess.run(
        ["pulumi", "stack", "init", "staging", "--cwd", str(repository.root)], check=True
    )
    git(repository.root, "commit", "-qam", "the stack's secrets salt")
    from infra.operations.pulumi_cli import AutomationStack

    engine = AutomationStack("staging", repository.root, PLATFORM)
    with pytest.raises(
        RefusedError, match="staging has no update 1; its updates, newest first: none"
    ):
        roll_back_stack(
            repository.root,
            "staging",
            1,
            engine=engine,
            preview=True,
            reason="x",
            operator="ops@example.com",
            on_output=print,
        )
