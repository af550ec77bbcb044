"""`mlstack verify ENV`: does what runs match what the stack declares, and is it healthy?"""

from __future__ import annotations

import argparse
import json
from typing import Any

from infra.cli.operating import add_project_dir, guarded, progress
from infra.cli.output import write_stdout
from infra.config.errors import ConfigError
from infra.config.stackfiles import StackFileError
from infra.operations.errors import OperationError
from mlstack_common.exits import ExitStatus, exit_status_help
from mlstack_common.registry import RegistryError


def add_parser(commands: Any) -> None:
    verify = commands.add_parser(
        "verify",
        help="compare what a stack declares with what is live, and say where they differ",
        description=(
            "For each model ENV pins: the version in the registry (there, and Approved); its "
            "SageMaker endpoint (in service, running the pinned version's model data, package "
            "and image, at least endpointMinInstances instances — an update SageMaker rolled "
            "back shows here, told apart from a traffic shift still in progress); its "
            "Deployment on the cluster (the pinned version and image in its pod template, "
            "rollout complete, at least servingMinReplicas pods ready); and its CloudWatch "
            "alarms (any in ALARM fails, with CloudWatch's reason). The report starts with the "
            "AWS account and region it read. A part that cannot be reached (a private cluster "
            "from outside its VPC, a hung API) is reported as not read, after seconds, and the "
            "rest is still checked. AWS is reached with the stack's region and endpoints and "
            "your credentials; the cluster with an EKS token for them."
        ),
        epilog=exit_status_help(
            ExitStatus.OK,
            ExitStatus.REFUSED,
            ExitStatus.USAGE,
            ExitStatus.UNREACHABLE,
            ExitStatus.TOOL_MISSING,
            ExitStatus.INTERRUPTED,
            details={
                ExitStatus.OK: "live matches what the stack declares, and nothing fires",
                ExitStatus.REFUSED: "a mismatch or an alarm in ALARM (the report names each, "
                "with what to look at), or nothing to check (ENV pins no version)",
                ExitStatus.UNREACHABLE: "some part could not be read, and all that was read "
                "matches (the report says what, and why)",
            },
        ),
    )
    verify.add_argument("stack", help="the environment to verify")
    verify.add_argument(
        "--json", action="store_true", help="print the report as JSON (also when it stops)"
    )
    add_project_dir(verify)
    verify.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return guarded(lambda: _verify(args))


def _verify(args: argparse.Namespace) -> int:
    from infra.operations.cluster_access import cluster_api
    from infra.operations.pulumi_cli import AutomationStack
    from infra.operations.stack_verification import verify_stack

    try:
        report = verify_stack(
            args.project_dir,
            args.stack,
            connect_cluster=cluster_api,
            read_outputs=lambda: AutomationStack(args.stack, args.project_dir).outputs(),
            on_step=progress,
        )
    except (OperationError, StackFileError, ConfigError, RegistryError) as error:
        if args.json:
            # A script reading stdout gets a report in every case; the log line says the rest.
            write_stdout(json.dumps(_stopped(args.stack, error), indent=2))
        raise
    write_stdout(json.dumps(report.to_json(), indent=2) if args.json else report.render())
    return report.exit_status


def _stopped(stack: str, error: Exception) -> dict[str, Any]:
    """The report of a verification that stopped before reading anything live."""
    return {"stack": stack, "ok": False, "error": str(error), "checks": [], "notes": []}
