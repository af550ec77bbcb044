"""`mlstack preflight ENV`: can the account and region ENV's stack file names hold the stack?"""

from __future__ import annotations

import argparse
import json
from typing import Any

from infra.cli.operating import add_project_dir, guarded
from infra.cli.output import write_stdout
from mlstack_common.exits import ExitStatus, exit_status_help


def add_parser(commands: Any) -> None:
    preflight = commands.add_parser(
        "preflight",
        help="check, read-only, that an account and region can hold a stack before its up",
        description=(
            "Before ENV's first `pulumi up`, and in CI before each deploy: the caller's account "
            "(against aws:allowedAccountIds when the stack file sets it) and partition; the "
            "region enabled; the Service Quotas the stack needs at its peak (its VPC, NAT "
            "gateways and their addresses, node groups, the endpoint instances of a blue/green "
            "shift, one training and one transform instance); every EKS add-on version it "
            "pins offered for its Kubernetes version; the digests of the images it pins from "
            "public registries there; the environment cost allocation tag "
            "active (the budget sees nothing otherwise); and the delivery path (GitHub's OIDC "
            "provider, the runner's connection, the Pulumi CLI's login). One line per check, "
            "with the fix for each problem. Nothing is changed."
        ),
        epilog=exit_status_help(
            ExitStatus.OK,
            ExitStatus.REFUSED,
            ExitStatus.USAGE,
            ExitStatus.UNREACHABLE,
            ExitStatus.INTERRUPTED,
            details={
                ExitStatus.OK: "every check passed",
                ExitStatus.REFUSED: "a check found a problem (the report says the fix)",
                ExitStatus.UNREACHABLE: "some checks could not be read, and the rest passed",
            },
        ),
    )
    preflight.add_argument("stack", help="the environment to check")
    preflight.add_argument("--json", action="store_true", help="print the report as JSON")
    add_project_dir(preflight)
    preflight.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return guarded(lambda: _preflight(args))


def _preflight(args: argparse.Namespace) -> int:
    from infra.operations.preflight import preflight

    report = preflight(args.project_dir, args.stack)
    write_stdout(json.dumps(report.to_json(), indent=2) if args.json else report.render())
    return int(report.exit_status)
