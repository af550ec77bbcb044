"""`mlstack verify ENV`: does what runs match what the stack declares?"""

from __future__ import annotations

import argparse
import json
from typing import Any

from infra.cli.operating import add_project_dir, exit_statuses, guarded, progress
from infra.cli.output import write_stdout
from mlstack_common.exits import ExitStatus


def add_parser(commands: Any) -> None:
    verify = commands.add_parser(
        "verify",
        help="compare what a stack declares with what is live, and say where they differ",
        description=(
            "For each model ENV pins: the version in the registry (there, and Approved); its "
            "SageMaker endpoint (in service, running the pinned version's model data, package "
            "and image — an update SageMaker rolled back shows here); its Deployment on the "
            "cluster (the pinned version and image in its pod template, rollout complete, at "
            "least servingMinReplicas pods ready). AWS is reached with the stack's region and "
            "endpoints and your credentials; the cluster with an EKS token for them."
        ),
        epilog=exit_statuses(
            refused="a mismatch (the report names each, with what to look at), or refused (the "
            "message says by what)",
            done="live matches what the stack declares",
        ),
    )
    verify.add_argument("stack", help="the environment to verify")
    verify.add_argument("--json", action="store_true", help="print the report as JSON")
    add_project_dir(verify)
    verify.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return guarded(lambda: _verify(args))


def _verify(args: argparse.Namespace) -> int:
    from infra.operations.cluster_access import cluster_api
    from infra.operations.pulumi_cli import AutomationStack
    from infra.operations.stack_verification import verify_stack

    report = verify_stack(
        args.project_dir,
        args.stack,
        connect_cluster=cluster_api,
        read_outputs=lambda: AutomationStack(args.stack, args.project_dir).outputs(),
        on_step=progress,
    )
    write_stdout(json.dumps(report.to_json(), indent=2) if args.json else report.render())
    return ExitStatus.OK if report.ok else ExitStatus.REFUSED
