"""The steps that need the Pulumi CLI (stack outputs, update history, what an earlier update
recorded, `up` and `preview`), through the Automation API, which runs the CLI. Without the CLI,
or with one that is not logged in, they stop at once with one line saying what to do, instead
of failing somewhere inside the SDK.

Every CLI command runs supervised (`infra.operations.supervised`): interrupted, it is stopped
the way the CLI expects and the caller regains control only once it has ended; an update whose
CLI had to be killed is then cancelled (`pulumi cancel`) so the stack is not left locked. A
rollback therefore removes its temporary checkout only after the CLI that ran from it has
ended."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from pulumi.automation import CommandResult, PulumiCommand
from pulumi.automation.errors import (
    ConcurrentUpdateError,
    InvalidVersionError,
    StackNotFoundError,
    create_command_error,
)

from infra.operations.errors import (
    OperationError,
    PulumiCliMissingError,
    RefusedError,
    UnreachableError,
)
from infra.operations.supervised import STOP_GRACE_SECONDS, CliInterrupted, supervise
from infra.project.layers import LAYERS, WORKLOADS, Layer
from infra.project.paths import PROJECT_ROOT
from mlstack_common.exits import ExitStatus

INSTALL = (
    "install it (https://www.pulumi.com/docs/iac/download-install/: `curl -fsSL "
    "https://get.pulumi.com | sh`, or `brew install pulumi`), log in to the stack's backend "
    "(`pulumi login`), and run this again"
)
LOGIN = (
    "log in to the stack's backend (`pulumi login`; on Pulumi Cloud without a terminal, set "
    "PULUMI_ACCESS_TOKEN) and run this again"
)
AUTHENTICATION_EXIT = 3
"""The CLI's status for a missing or refused login (`ExitAuthenticationError`, CLIs from 3.244;
pulumi/pulumi pkg/cmd/pulumi/cmd/exit_codes.go)."""
STACK_NOT_FOUND_EXIT = 6
"""`ExitStackNotFound`, in the same table."""
NOT_LOGGED_IN = (
    # backenderr.MissingEnvVarForNonInteractiveError: no PULUMI_ACCESS_TOKEN without a terminal.
    "must be set for login during non-interactive CLI sessions",
    # backenderr.LoginRequiredError, for CLIs older than the exit-status table.
    "requires logging in",
)
NO_EARLIER_STATE = "does not provide the ability to export previous deployments"
"""`pulumi stack export --version` on a backend other than Pulumi Cloud (pulumi/pulumi
pkg/cmd/pulumi/stack/stack_export.go: only httpstate implements SpecificDeploymentExporter)."""
ROOT_STACK_TYPE = "pulumi:pulumi:Stack"
"""The type of the resource whose outputs are a stack's outputs, in an exported deployment."""


class PulumiLoginError(PulumiCliMissingError):
    """The Pulumi CLI is there but not logged in to the stack's backend (or not allowed in): as
    with no CLI, the step cannot happen until someone sets it up."""


class OperationInterruptedError(OperationError):
    """The operator (Ctrl-C), a hang-up or a SIGTERM stopped the operation; whatever it had
    started has ended."""

    exit_status = ExitStatus.INTERRUPTED


def require_cli(step: str) -> None:
    if shutil.which("pulumi") is None:
        raise PulumiCliMissingError(
            f"{step} needs the Pulumi CLI, and there is no `pulumi` on PATH: {INSTALL}"
        )


def cli_label(args: list[str]) -> str:
    """`pulumi up` for `--non-interactive up --yes ...`: the CLI's subcommand."""
    words = [word for word in args if not word.startswith("-")]
    return f"`pulumi {' '.join(words[:2] if words[:1] == ['stack'] else words[:1])}`"


class SupervisedCommand(PulumiCommand):
    """The Pulumi CLI on PATH, as the Automation API runs it (non-interactive, its output line
    by line), each command supervised as `supervise` says."""

    def __init__(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        super().__init__()  # `pulumi version`, checked against what the SDK needs
        self.grace_seconds = grace_seconds

    def run(
        self,
        args: list[str],
        cwd: str,
        additional_env: Mapping[str, str],
        on_output: Callable[[str], Any] | None = None,
        on_error: Callable[[str], Any] | None = None,
    ) -> CommandResult:
        separator = args.index("--") if "--" in args else len(args)
        if "--non-interactive" not in args[:separator]:
            args.insert(0, "--non-interactive")
        result = supervise(
            [self.command, *args],
            cwd=cwd,
            env={**os.environ, **additional_env, "PULUMI_AUTOMATION_API": "true"},
            on_output=on_output,
            on_error=on_error,
            grace_seconds=self.grace_seconds,
            label=cli_label(args),
        )
        if result.code != 0:
            raise command_error(result)
        return result


def command_error(result: CommandResult) -> Exception:
    """The SDK's error for a failed command (as `PulumiCommand.run` raises it), holding the
    command's result, which the SDK's errors keep only as text."""
    error = create_command_error(result)
    error.result = result  # type: ignore[attr-defined]
    return error


def cli_command(step: str) -> PulumiCommand:
    """The Pulumi CLI for `step`, refused with what to do when there is none the SDK can use."""
    require_cli(step)
    try:
        return SupervisedCommand()
    except InvalidVersionError as error:
        raise PulumiCliMissingError(
            f"{step} needs a Pulumi CLI this SDK can drive: {error}; {INSTALL}"
        ) from error
    except (OSError, subprocess.CalledProcessError) as error:
        raise PulumiCliMissingError(f"{step}: `pulumi version` failed ({error}); {INSTALL}") from (
            error
        )


# --- what a failed command means ----------------------------------------------------------------


def _error_line(stderr: str) -> str:
    """The CLI's complaint: its first `error:` line, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    flagged = [line.removeprefix("error: ") for line in lines if line.startswith("error: ")]
    line = (flagged or lines[-1:] or [""])[0]
    return line if len(line) <= 300 else line[:299] + "…"


def cli_failure(doing: str, stack: str, error: Exception) -> OperationError:
    """One line for a command the CLI refused or failed, by what it means to the operator."""
    result: CommandResult | None = getattr(error, "result", None)
    code = result.code if result is not None else None
    stderr = result.stderr if result is not None else str(error)
    line = _error_line(stderr) or (f"exit status {code}" if code is not None else str(error))
    if code == AUTHENTICATION_EXIT or any(text in stderr for text in NOT_LOGGED_IN):
        return PulumiLoginError(
            f"{doing} needs the Pulumi CLI logged in to the stack's backend with access to the "
            f"stack, and it is not ({line}): {LOGIN}"
        )
    if isinstance(error, StackNotFoundError) or code == STACK_NOT_FOUND_EXIT:
        return RefusedError(
            f"{doing}: the backend the Pulumi CLI is logged in to has no stack {stack} ({line}); "
            "`pulumi whoami` names the backend, `pulumi stack ls` its stacks"
        )
    if isinstance(error, ConcurrentUpdateError):
        return RefusedError(
            f"{doing}: another update of {stack} is running ({line}); wait for it to end, or, "
            f"if nothing runs it any more, `pulumi cancel --stack {stack}`"
        )
    if NO_EARLIER_STATE in stderr:
        return RefusedError(
            f"{doing}: the stack's backend keeps no earlier versions of its state ({line}); "
            "Pulumi Cloud does (`pulumi stack export --version`)"
        )
    return UnreachableError(f"{doing} failed ({line})")


def stack_outputs_of(exported: Mapping[str, Any]) -> dict[str, Any]:
    """The stack outputs in a deployment as `pulumi stack export` prints it: the outputs of its
    root resource (`pulumi:pulumi:Stack`)."""
    deployment = exported.get("deployment") or {}
    for resource in deployment.get("resources") or []:
        if resource.get("type") == ROOT_STACK_TYPE:
            return dict(resource.get("outputs") or {})
    return {}


# --- one stack ----------------------------------------------------------------------------------


class StackEngine(Protocol):
    """One stack as the Automation API sees it; what a stack rollback needs of it."""

    layer: Layer

    def history(self) -> list[Any]:
        """The stack's updates, newest first (`pulumi stack history`), as UpdateSummary objects."""

    def recorded_outputs(self, version: int) -> Mapping[str, Any]:
        """The stack outputs as update `version` left them (`pulumi stack export --version`)."""

    def run(
        self,
        work_dir: Path,
        *,
        preview: bool,
        message: str,
        on_output: Callable[[str], None],
    ) -> None:
        """`pulumi preview` or `pulumi up` of the layer's program and the stack file in the
        checkout at `work_dir`."""


class AutomationStack:
    """The real engine: the Pulumi CLI driven by the Automation API, for one layer's stack of an
    environment (its outputs: both layers')."""

    def __init__(self, stack: str, project_dir: Path, layer: Layer = WORKLOADS) -> None:
        self.command = cli_command(f"stack {stack!r}")
        self.stack = stack
        self.project_dir = project_dir
        self.layer = layer

    def layer_dir(self, root: Path, layer: Layer | None = None) -> Path:
        """Where `layer`'s Pulumi.yaml is in the checkout at `root`."""
        return root / (layer or self.layer).directory.relative_to(PROJECT_ROOT)

    @contextlib.contextmanager
    def _answers(self, doing: str) -> Iterator[None]:
        """The CLI's failures while `doing`, as one line each."""
        from pulumi.automation.errors import CommandError

        try:
            yield
        except CommandError as error:
            raise cli_failure(doing, self.stack, error) from error

    def _select(self, work_dir: Path) -> Any:
        from pulumi import automation

        return automation.select_stack(
            stack_name=self.stack,
            work_dir=str(work_dir),
            opts=automation.LocalWorkspaceOptions(pulumi_command=self.command),
        )

    def history(self) -> list[Any]:
        with self._answers(f"reading the update history of {self.stack} ({self.layer.name})"):
            stack = self._select(self.layer_dir(self.project_dir))
            return list(stack.history(show_secrets=True))

    def recorded_outputs(self, version: int) -> dict[str, Any]:
        doing = f"reading the outputs update {version} of {self.stack} ({self.layer.name}) left"
        with self._answers(doing):
            exported = self.command.run(
                ["stack", "export", "--version", str(version), "--stack", self.stack],
                str(self.layer_dir(self.project_dir)),
                {},
            )
        try:
            return stack_outputs_of(json.loads(exported.stdout))
        except (ValueError, AttributeError) as error:
            raise UnreachableError(f"{doing}: not a deployment the CLI exports ({error})") from (
                error
            )

    def outputs(self) -> dict[str, Any]:
        """Every output of the environment: the platform stack's and the workloads stack's
        (their names never overlap; `infra.project.outputs`)."""
        found: dict[str, Any] = {}
        for layer in LAYERS:
            with self._answers(f"reading the outputs of {self.stack} ({layer.name})"):
                stack = self._select(self.layer_dir(self.project_dir, layer))
                found.update({key: item.value for key, item in stack.outputs().items()})
        return found

    def run(
        self,
        work_dir: Path,
        *,
        preview: bool,
        message: str,
        on_output: Callable[[str], None],
    ) -> None:
        verb = "preview" if preview else "up"
        doing = f"`pulumi {verb}` of {self.stack} ({self.layer.name})"
        with self._answers(doing):
            stack = self._select(self.layer_dir(work_dir))
            try:
                if preview:
                    stack.preview(message=message, on_output=on_output)
                else:
                    stack.up(message=message, on_output=on_output)
            except CliInterrupted as interrupted:
                raise self._interrupted(stack, doing, interrupted, preview) from interrupted

    def _interrupted(
        self, stack: Any, doing: str, interrupted: CliInterrupted, preview: bool
    ) -> OperationInterruptedError:
        """What an interrupted preview or update left, and the update cancelled if the CLI had
        to be killed mid-way (the Automation API's `Stack.cancel`, which runs `pulumi cancel`:
        Pulumi Cloud then ends the stack's active update, a self-managed backend removes the
        stack's lock files; pulumi/pulumi pkg/backend/httpstate/backend.go and
        pkg/backend/diy/backend.go, `CancelCurrentUpdate`)."""
        head = f"interrupted ({interrupted.cause}): {doing}"
        if preview:
            return OperationInterruptedError(f"{head} stopped; a preview changes nothing")
        if not interrupted.killed:
            return OperationInterruptedError(
                f"{head} stopped once the operations it had started were done, and recorded "
                f"what it changed (`pulumi stack history --stack {self.stack}`); run it again "
                "to finish"
            )
        try:
            with self._answers(f"cancelling the update of {self.stack}"):
                stack.cancel()
        except (OperationError, KeyboardInterrupt) as error:
            return OperationInterruptedError(
                f"{head} was killed, and its update could not be cancelled ({error}): run "
                f"`pulumi cancel --stack {self.stack}` before the next deploy, then `pulumi "
                f"refresh --stack {self.stack}`"
            )
        return OperationInterruptedError(
            f"{head} was killed mid-way and its update cancelled (`pulumi cancel`), so the stack "
            f"is not locked; what it was changing may be half-done: `pulumi refresh --stack "
            f"{self.stack}`, then run it again"
        )
