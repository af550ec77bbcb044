"""`mlstack demo`: train, register, approve and serve the demo model on a local AWS emulator."""

from __future__ import annotations

import argparse
import logging
import subprocess
from pathlib import Path
from typing import Any

from mlstack_common.exits import ExitStatus, exit_status_help

log = logging.getLogger("mlstack.cli")


def add_parser(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="train, register, approve and serve the demo model against a local AWS emulator",
        epilog=exit_status_help(
            ExitStatus.OK,
            ExitStatus.USAGE,
            ExitStatus.UNREACHABLE,
            details={
                ExitStatus.UNREACHABLE: "a step failed: the emulator, training or the server "
                "(the message says which; --keep DIR keeps their logs)"
            },
        ),
    )
    demo.add_argument("--keep", type=Path, metavar="DIR", help="keep logs and artifacts in DIR")
    demo.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from infra.operations.demo import main as demo

    try:
        return demo(args.keep)
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        log.error(str(error), extra={"exit_status": int(ExitStatus.UNREACHABLE)})
        return ExitStatus.UNREACHABLE
