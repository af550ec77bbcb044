"""`mlstack promote`: pin a model version in an environment, or carry one environment's pins and
image digests to the next, by editing its stack file."""

from __future__ import annotations

import argparse
from typing import Any

from infra.cli.operating import (
    add_project_dir,
    apply_pin_change,
    exit_statuses,
    guarded,
    progress,
)


def add_parser(commands: Any) -> None:
    promote = commands.add_parser(
        "promote",
        help="pin a model version in an environment, or copy one environment's pins to the next",
        description=(
            "`mlstack promote ENV --model M --version N` pins version N of model M in "
            "Pulumi.ENV.yaml; `mlstack promote --from staging --to prod` gives prod the model "
            "versions and image digests staging serves (in prod's registry, the versions that "
            "hold the same models), copying the images from staging's repositories into prod's "
            "first (both stacks' outputs name them: it needs the Pulumi CLI, and ECR read on "
            "staging's repositories and push on prod's). The registry is asked first: a "
            "version must be Approved (--approve approves a pending one, recording who and "
            "why); a Rejected one is refused. The stack file is edited in place, comments and "
            "key order kept, and the diff printed with the command that deploys it."
        ),
        epilog=exit_statuses(),
    )
    promote.add_argument("stack", nargs="?", help="the environment to pin a version in")
    promote.add_argument("--model", help="the model (one of the stack's mlstack:models)")
    promote.add_argument("--version", type=int, help="the model package version to pin")
    promote.add_argument(
        "--from", dest="source", metavar="ENV", help="copy this environment's pins…"
    )
    promote.add_argument("--to", dest="target", metavar="ENV", help="…into this one")
    promote.add_argument(
        "--approve",
        action="store_true",
        help="approve a version that is pending approval (recorded in the registry)",
    )
    promote.add_argument(
        "--reason",
        required=True,
        help="why (a change or incident ticket): recorded in the audit log and with an approval",
    )
    promote.add_argument("--dry-run", action="store_true", help="print the diff and change nothing")
    add_project_dir(promote)
    promote.set_defaults(handler=run, validate=validate, parser=promote)


def validate(args: argparse.Namespace) -> None:
    pinning = args.stack is not None
    copying = args.source is not None or args.target is not None
    if pinning == copying:
        args.parser.error("give either ENV --model M --version N, or --from ENV --to ENV")
    if pinning and (args.model is None or args.version is None):
        args.parser.error(f"pinning in {args.stack} needs --model and --version")
    if copying and (args.source is None or args.target is None or args.model or args.version):
        args.parser.error("copying pins needs --from and --to, and no --model or --version")


def run(args: argparse.Namespace) -> int:
    return guarded(lambda: _promote(args))


def _promote(args: argparse.Namespace) -> int:
    from infra.config.stackfiles import load_stack_settings
    from infra.operations.aws_access import stack_aws
    from infra.operations.git import operator
    from infra.operations.promotion import copy_pins, pin_version, stack_config
    from infra.operations.pulumi_cli import AutomationStack

    root = args.project_dir
    who = operator(root)
    target = args.stack or args.target
    target_aws = stack_aws(load_stack_settings(target, root))
    target_client = target_aws.client("sagemaker")
    if args.stack:
        progress(f"checking version {args.version} of {args.model} in {target}'s registry")
        change = pin_version(
            root,
            target,
            args.model,
            args.version,
            client=target_client,
            approve=args.approve,
            operator=who,
            reason=args.reason,
        )
    else:
        progress(f"finding {args.source}'s served models in {target}'s registry")
        source_aws = stack_aws(load_stack_settings(args.source, root))
        change = copy_pins(
            root,
            args.source,
            target,
            source_client=source_aws.client("sagemaker"),
            target_client=target_client,
            read_outputs=lambda stack: AutomationStack(stack, root).outputs(),
            source_ecr=source_aws.client("ecr"),
            target_ecr=target_aws.client("ecr"),
            approve=args.approve,
            operator=who,
            reason=args.reason,
        )
    return apply_pin_change(
        change,
        target_client,
        target,
        aws=target_aws,
        environment=stack_config(root, target).environment,
        operator=who,
        dry_run=args.dry_run,
        verbs=("approving", "would approve"),
    )
