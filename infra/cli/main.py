"""`mlstack`: the command-line entry point for people who run the stack."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from infra.cli import audit, demo, plan, preflight, promote, rollback, score, train, verify
from mlstack_common.exits import ExitStatus, exit_status_help
from mlstack_common.logs import configure_logging

EXIT_HELP = exit_status_help(
    ExitStatus.OK,
    ExitStatus.REFUSED,
    ExitStatus.USAGE,
    ExitStatus.UNREACHABLE,
    ExitStatus.TOOL_MISSING,
    ExitStatus.INTERRUPTED,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlstack",
        description=__doc__,
        epilog=f"{EXIT_HELP} Each command's --help lists those it can return. Progress and "
        "failures go to stderr as JSON lines; a command's result goes to stdout.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command in (preflight, plan, promote, rollback, verify, audit, train, score, demo):
        command.add_parser(commands)
    return parser


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The arguments, checked as far as they can be without running anything: each command may
    refuse a combination its parser cannot express (exit 2, with its usage)."""
    args = build_parser().parse_args(argv)
    validate = getattr(args, "validate", None)
    if validate is not None:
        validate(args)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    configure_logging(f"mlstack {args.command}")
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
