"""`mlstack audit ENV`: who changed what the environment serves, when and why."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from typing import Any

from infra.cli.operating import add_project_dir, exit_statuses, guarded
from infra.cli.output import write_stdout


def add_parser(commands: Any) -> None:
    audit = commands.add_parser(
        "audit",
        help="show the environment's audit log: every approval, promotion and rollback",
        description=(
            "Every `mlstack promote` and `mlstack rollback` appends a record to the "
            "environment's audit log (CloudWatch Logs group /mlstack/ENV/audit, encrypted with "
            "the environment's key, kept ten years) before it changes anything: the action, who "
            "(AWS identity and git user), when, why, the registry changes and the stack file "
            "diff. A change that could not be made is followed by a `revert` record. Nothing "
            "in the log is ever rewritten; this command prints it, oldest first."
        ),
        epilog=exit_statuses(),
    )
    audit.add_argument("stack", help="the environment")
    audit.add_argument("--model", action="append", default=[], help="only records about it")
    audit.add_argument("--json", action="store_true", help="one JSON object per record")
    add_project_dir(audit)
    audit.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return guarded(lambda: _audit(args))


def _audit(args: argparse.Namespace) -> int:
    from infra.config.stackfiles import load_stack_settings
    from infra.operations.audit import AuditLog
    from infra.operations.aws_access import stack_aws
    from infra.operations.promotion import stack_config

    aws = stack_aws(load_stack_settings(args.stack, args.project_dir))
    log = AuditLog(aws.client("logs"), stack_config(args.project_dir, args.stack).environment)
    records = log.read(args.model)
    if args.json:
        write_stdout("\n".join(json.dumps(asdict(r), sort_keys=True) for r in records))
    else:
        write_stdout("\n".join(r.render() for r in records) or f"{log.group}: no records")
    return 0
