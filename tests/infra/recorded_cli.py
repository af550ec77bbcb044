"""The Pulumi CLI answering with recorded output, where the Automation API runs it.

The CLI cannot be installed here (its package downloads the binary). Everything above it is the
real code: the SDK's `select_stack`, its parsing of `pulumi stack history --json`, the failures
it raises, and this project's supervision of the process. A recorded `up` is a real process
that behaves as the CLI does on a signal (pulumi/pulumi pkg/backend/cancellation_scope.go: the
first SIGINT cancels, the operations in flight finish, then it exits)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi.automation import CommandResult, PulumiCommand
from semver import VersionInfo

from infra.operations.pulumi_cli import cli_label, command_error
from infra.operations.supervised import supervise

PULUMI_VERSION = "3.272.0"
NOT_LOGGED_IN = CommandResult(
    stdout="",
    stderr="error: PULUMI_ACCESS_TOKEN must be set for login during non-interactive CLI sessions",
    code=3,
)
"""What the CLI says on any stack command without a login and without a terminal (pulumi/pulumi
pkg/backend/backenderr: MissingEnvVarForNonInteractiveError; exit status 3,
`ExitAuthenticationError` in pkg/cmd/pulumi/cmd/exit_codes.go)."""
NO_EARLIER_STATE = CommandResult(
    stdout="",
    stderr="error: the current backend (diy) does not provide the ability to export previous "
    "deployments",
    code=1,
)
"""`pulumi stack export --version` on a self-managed backend (pkg/cmd/pulumi/stack/
stack_export.go)."""

CANCELLING_UP = """
import json, os, pathlib, signal, sys, time
report = pathlib.Path(sys.argv[1])
def cancel(signum, frame):
    print("^C received; cancelling. If you would like to terminate immediately, press ^C again.",
          flush=True)
    time.sleep(0.3)  # the resource operations in flight finish
    report.write_text(json.dumps({"cwd_exists": os.path.isdir(os.getcwd()), "pid": os.getpid()}))
    sys.exit(8)
signal.signal(signal.SIGINT, cancel)
print("Updating (staging)", flush=True)
os.kill(os.getppid(), signal.SIGINT)  # the operator presses Ctrl-C
while True:
    time.sleep(0.05)
"""
"""An update that is interrupted while it runs, then cancels as the CLI does; it reports
whether the directory it ran from was still there when it ended."""

STUCK_UP = """
import json, os, pathlib, signal, subprocess, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
plugin = subprocess.Popen(
    [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
     "time.sleep(600)"],
    start_new_session=True,
)
pathlib.Path(sys.argv[1]).write_text(json.dumps({"pid": os.getpid(), "plugin": plugin.pid}))
print("Updating (staging)", flush=True)
os.kill(os.getppid(), signal.SIGINT)
while True:
    time.sleep(0.05)
"""
"""An update that does not stop on SIGINT, with a plugin in a process group of its own (as the
CLI starts its plugins); it reports both process ids."""


def export(outputs: Mapping[str, Any], stack: str = "staging") -> dict[str, Any]:
    """A deployment as `pulumi stack export` prints it (apitype.UntypedDeployment, version 3),
    its root resource holding `outputs`."""
    return {
        "version": 3,
        "deployment": {
            "manifest": {"time": "2026-11-25T03:21:00Z", "magic": "", "version": "v3.272.0"},
            "resources": [
                {
                    "urn": f"urn:pulumi:{stack}::mlstack-workloads::pulumi:pulumi:Stack::"
                    f"mlstack-workloads-{stack}",
                    "custom": False,
                    "type": "pulumi:pulumi:Stack",
                    "outputs": dict(outputs),
                },
                {
                    "urn": f"urn:pulumi:{stack}::mlstack-workloads::pulumi:providers:aws::default",
                    "custom": True,
                    "id": "5c5e6c1e",
                    "type": "pulumi:providers:aws",
                    "outputs": {"region": "eu-west-1"},
                },
            ],
        },
    }


@dataclass
class RecordedCli(PulumiCommand):
    """`pulumi` answering each command from `answers` (by its subcommand words: `stack history`,
    `stack export`, `up`), or with `refusal` for every command; `up` runs `CANCELLING_UP`."""

    answers: dict[str, str] = field(default_factory=dict)
    refusal: CommandResult | None = None
    refusals: dict[str, CommandResult] = field(default_factory=dict)
    """Failures of single commands, by the same keys as `answers`."""
    report: Path | None = None
    """Where the recorded `up` says how it ended."""
    up_script: str = CANCELLING_UP
    grace_seconds: float = 5.0
    calls: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.command = "pulumi"
        self.version = VersionInfo.parse(PULUMI_VERSION)

    def run(
        self,
        args: list[str],
        cwd: str,
        additional_env: Mapping[str, str],
        on_output: Callable[[str], Any] | None = None,
        on_error: Callable[[str], Any] | None = None,
    ) -> CommandResult:
        self.calls.append(list(args))
        if self.refusal is not None:
            raise command_error(self.refusal)
        key = command_key(args)
        if key in self.refusals:
            raise command_error(self.refusals[key])
        if key == "up":
            assert self.report is not None
            result = supervise(
                [sys.executable, "-c", self.up_script, str(self.report)],
                cwd=cwd,
                env={"PATH": "/usr/bin:/bin"},
                on_output=on_output,
                on_error=on_error,
                grace_seconds=self.grace_seconds,
                label=cli_label(args),
            )
        else:
            result = CommandResult(stdout=self.answers.get(key, ""), stderr="", code=0)
        if result.code != 0:
            raise command_error(result)
        return result


def command_key(args: list[str]) -> str:
    """`up`, `cancel`, `stack history`, `stack export 3`: a command by its words, the version
    for an export."""
    words = [word for word in args if not word.startswith("-")]
    if words[:2] == ["stack", "export"]:
        return " ".join(words[:3])
    return " ".join(words[:2]) if words[:1] == ["stack"] else " ".join(words[:1])


def history_answer(path: Path, **commits: str) -> str:
    """A recorded `pulumi stack history --json` answer, its `@name@` commits filled in."""
    text = path.read_text()
    for name, commit in commits.items():
        text = text.replace(f"@{name}@", commit)
    return json.dumps(json.loads(text))
