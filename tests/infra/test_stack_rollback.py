"""`mlstack rollback ENV --to-update K`: update K's commit and configuration, deployed from a
temporary worktree. The update histories are recorded ones (the shape `pulumi stack history
--json --show-secrets` prints, parsed as the Automation API parses it); the engine that would run
`pulumi up` records what it was given, and everything before it is the real code."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pulumi.automation import UpdateSummary

from infra.cli.main import main
from infra.operations.errors import RefusedError
from infra.operations.stack_rollback import roll_back_stack
from tests.infra.operating import copy_project
from tests.logs import log_messages

HISTORIES = Path(__file__).parent / "histories"
DATETIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # the Automation API's own format for history times


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
    text = (HISTORIES / name).read_text()
    text = text.replace("@commit1@", repository.commit1).replace("@commit2@", repository.commit2)
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
    """The stack as the Automation API would present it: a recorded history, and a record of
    each preview or update it was asked for, with the checkout it was asked to run from."""

    updates: list[UpdateSummary]
    runs: list[Run] = field(default_factory=list)
    records_commit: bool = True
    """Whether an update it runs records the checkout's commit, as the Pulumi CLI does."""

    def history(self) -> list[Any]:
        return list(self.updates)

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
    )
    return target, "".join(output)


def test_an_update_is_deployed_again_from_its_commit_with_its_configuration(
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
    # The commit's file, with the one value update 3 ran with that the commit does not hold;
    # values equal to the file's or to the declared defaults, and secrets, are left as they are.
    committed = git(repository.root, "show", f"{repository.commit1}:Pulumi.staging.yaml") + "\n"
    assert run.stack_file == committed.replace(
        "mlstack:servingMinReplicas: 2", "mlstack:servingMinReplicas: 3"
    )
    assert run.stack_file != committed
    assert "mlstack:servingMinReplicas" in output
    assert "aws:defaultTags" not in output
    assert "alarmEmail" not in output
    # The checkout is as it was, and the temporary worktree is gone.
    assert git(repository.root, "rev-parse", "HEAD") == repository.commit2
    assert git(repository.root, "status", "--porcelain") == ""
    assert len(git(repository.root, "worktree", "list").splitlines()) == 1


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
    engine = RecordingEngine(recorded_history("staging.json", repository))
    roll_back(repository, engine, 9, preview=True)
    [run] = engine.runs
    assert (run.head, run.preview) == (repository.commit2, True)
    assert "demo=2" in run.stack_file


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


@pytest.mark.skipif(shutil.which("pulumi") is not None, reason="the Pulumi CLI is installed")
def test_without_the_pulumi_cli_the_command_says_what_to_install(
    repository: Repository, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["rollback", "staging", "--to-update", "3", "--reason", "x"]
    assert main([*args, "--project-dir", str(repository.root)]) == 5
    err = log_messages(capsys.readouterr().err)
    assert "needs the Pulumi CLI, and there is no `pulumi` on PATH: install it" in err
    assert "https://get.pulumi.com" in err


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

    engine = AutomationStack("staging", repository.root)
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
