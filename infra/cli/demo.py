"""`mlstack demo`: train, register, approve and serve the demo model on a local AWS emulator."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(commands: Any) -> None:
    demo = commands.add_parser(
        "demo",
        help="train, register, approve and serve the demo model against a local AWS emulator",
    )
    demo.add_argument("--keep", type=Path, metavar="DIR", help="keep logs and artifacts in DIR")
    demo.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from infra.demo import main as demo

    try:
        return demo(args.keep)
    except (RuntimeError, OSError) as error:
        print(f"mlstack demo: {error}", file=sys.stderr)
        return 1
