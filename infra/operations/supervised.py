"""Running a command line tool to its end, in a session of its own so that a Ctrl-C in the
terminal, a hang-up (a lost connection) or a SIGTERM reaches this process alone, which then
stops the tool the way the Pulumi CLI expects and returns only once it has ended: one SIGINT,
the CLI's own Ctrl-C, on which it cancels, lets the resource operations in flight finish and
records the stack's state (pulumi/pulumi pkg/backend/cancellation_scope.go: the first SIGINT or
SIGTERM cancels, a second terminates). A second interrupt, or a tool still running
`STOP_GRACE_SECONDS` later, kills it with every process it started."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from pulumi.automation import CommandResult

log = logging.getLogger("mlstack.pulumi")

STOP_GRACE_SECONDS = 900.0
"""How long an interrupted CLI may take to finish the resource operations it had started before
it is killed: long enough for most of them, since killing it leaves them half-done."""


class CliInterrupted(KeyboardInterrupt):
    """This process was interrupted while the CLI ran; the CLI has ended since."""

    def __init__(self, cause: str, *, killed: bool) -> None:
        super().__init__(cause)
        self.cause = cause
        self.killed = killed
        """It had to be killed rather than left to finish cancelling."""


SIGNALS = {signal.SIGINT: "Ctrl-C", signal.SIGHUP: "a hang-up", signal.SIGTERM: "SIGTERM"}
"""What interrupts an operation: the terminal's Ctrl-C, the terminal going away (a lost
connection), and a polite kill. Each is turned into a KeyboardInterrupt while the CLI runs."""


def interruption(interrupt: BaseException) -> str:
    """What interrupted: the signal's name, as `SIGNALS` gives it; Ctrl-C for a plain
    KeyboardInterrupt."""
    return str(interrupt.args[0]) if interrupt.args else SIGNALS[signal.SIGINT]


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGHUP and SIGTERM raise KeyboardInterrupt, as SIGINT does, while the CLI runs. A signal
    set to be ignored (`nohup`) stays ignored: that was the operator's choice."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, _: Any) -> None:
        raise KeyboardInterrupt(SIGNALS[signal.Signals(signum)])

    previous = {}
    for signum in SIGNALS:
        handler = signal.getsignal(signum)
        if handler is not signal.SIG_IGN:
            previous[signum] = handler
            signal.signal(signum, interrupt)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _read(stream: IO[str], into: list[str], callback: Callable[[str], Any] | None) -> None:
    for line in iter(stream.readline, ""):
        text = line.rstrip()
        into.append(text)
        if callback is not None:
            callback(text)
    stream.close()


def _descendants(pid: int) -> list[int]:
    """Every process below `pid`, listed before any is killed: the CLI starts its language host
    and plugins in process groups of their own (pulumi/pulumi sdk/go/common/util/cmdutil,
    `RegisterProcessGroup`), so killing its group alone would leave them running. `ps -A -o
    pid= -o ppid=` is POSIX's way to list them."""
    try:
        listed = subprocess.run(
            ["ps", "-A", "-o", "pid=", "-o", "ppid="],  # noqa: S607 (ps from PATH)
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    children: dict[int, list[int]] = {}
    for line in listed.splitlines():
        fields = line.split()
        if len(fields) == 2 and all(field.isdigit() for field in fields):
            children.setdefault(int(fields[1]), []).append(int(fields[0]))
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def _wait_uninterrupted(process: subprocess.Popen[str]) -> None:
    while True:
        try:
            process.wait()
            return
        except KeyboardInterrupt:
            continue


def _stop(process: subprocess.Popen[str], label: str, grace_seconds: float) -> bool:
    """End `process` after this process was interrupted: SIGINT, then wait; True when it had
    to be killed (a second interrupt, or `grace_seconds` passed)."""
    log.warning(
        f"stopping {label}: it finishes the operations it has started and records the stack's "
        f"state (up to {grace_seconds:.0f} s); interrupt again to kill it at once"
    )
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace_seconds
    try:
        process.wait(timeout=max(0.0, deadline - time.monotonic()))
        return False
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass
    below = _descendants(process.pid)
    for pid in (process.pid, *below):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    _wait_uninterrupted(process)
    log.warning(f"killed {label} and the {len(below)} processes it had started")
    return True


def supervise(
    command: list[str],
    *,
    cwd: str,
    env: Mapping[str, str],
    on_output: Callable[[str], Any] | None = None,
    on_error: Callable[[str], Any] | None = None,
    grace_seconds: float = STOP_GRACE_SECONDS,
    label: str | None = None,
) -> CommandResult:
    """Run `command` to its end in a session of its own, its output line by line to the
    callbacks. Interrupted (Ctrl-C, a hang-up, SIGTERM), it stops the command as `_stop` says
    and raises CliInterrupted once the command has ended. `label` names it in what is logged
    (default: the program's name)."""
    label = label or f"`{Path(command[0]).name}`"
    stdout: list[str] = []
    stderr: list[str] = []
    with _signals_interrupt():
        process = subprocess.Popen(  # noqa: S603 (the Pulumi CLI, with the SDK's arguments)
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=cwd,
            env=dict(env),
            encoding="utf-8",
            errors="replace",
            start_new_session=True,
        )
        pipes = ((process.stdout, stdout, on_output), (process.stderr, stderr, on_error))
        readers = [threading.Thread(target=_read, args=pipe, daemon=True) for pipe in pipes]
        cause: str | None = None
        killed = False
        try:
            for reader in readers:
                reader.start()
            process.wait()
        except KeyboardInterrupt as interrupt:
            cause = interruption(interrupt)
            killed = _stop(process, label, grace_seconds)
        for reader in readers:
            # A process it started that outlived it may hold the pipes open: do not hang on it.
            if reader.ident is not None:  # started
                reader.join(timeout=10)
    if cause is not None:
        raise CliInterrupted(cause, killed=killed)
    return CommandResult(
        stdout="\n".join(stdout), stderr="\n".join(stderr), code=process.returncode
    )
