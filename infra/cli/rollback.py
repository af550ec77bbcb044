"""`mlstack rollback ENV`: one model back to its previous version, or the whole stack back to an
earlier update."""

from __future__ import annotations

import argparse
from typing import Any

from infra.cli.operating import (
    add_project_dir,
    apply_pin_change,
    exit_statuses,
    guarded,
    log,
    progress,
)
from infra.project import naming


def add_parser(commands: Any) -> None:
    rollback = commands.add_parser(
        "rollback",
        help="pin a model's previous version, or re-deploy the stack as an earlier update left it",
        description=(
            "`mlstack rollback ENV --reason WHY` pins the version of the model that last served "
            "(as its endpoint's retained configurations and its Deployment's revisions show; "
            "--to N: that one, if Approved) in Pulumi.ENV.yaml, records who and why in the "
            "environment's audit log and on the version rolled back from, and prints the diff; "
            "deploy it with `pulumi up`. With --now it also moves traffic back at once on every "
            "target, even during a deploy. `mlstack rollback ENV "
            "--to-update K --reason WHY` runs update K's code and configuration again: the git "
            "commit K recorded, checked out in a temporary worktree, with K's configuration and "
            "(workloads) the images K ran, by digest, through the Pulumi CLI (--dry-run: a "
            "preview); the model pins stay as Pulumi.ENV.yaml has them (--restore-pins: K's). "
            "It refuses an unknown update, one that failed, ran from uncommitted changes or "
            "recorded no image digest, a commit this repository lacks, and a checkout with "
            "uncommitted changes. In CI: the rollback-stack workflow (docs/ci-cd.md)."
        ),
        epilog=exit_statuses(),
    )
    rollback.add_argument("stack", help="the environment")
    rollback.add_argument(
        "--reason", required=True, help="why, recorded in the registry or the update"
    )
    rollback.add_argument("--model", help="the model to roll back (needed when ENV serves several)")
    which = rollback.add_mutually_exclusive_group()
    which.add_argument("--to", type=int, metavar="N", help="the version to go back to")
    which.add_argument(
        "--to-update",
        type=int,
        metavar="K",
        help="the stack update to go back to (`pulumi stack history` of the --layer's stack)",
    )
    rollback.add_argument(
        "--layer",
        choices=["platform", "workloads"],
        default="workloads",
        help="with --to-update: whose stack (default workloads: the images, the Kubernetes "
        "objects, the endpoints)",
    )
    rollback.add_argument(
        "--restore-pins",
        action="store_true",
        help="with --to-update: deploy the model versions update K pinned, not the ones "
        "Pulumi.ENV.yaml pins now",
    )
    rollback.add_argument(
        "--now",
        action="store_true",
        help="move traffic back at once on every target (SageMaker: all at once, without "
        "waiting on alarms; Kubernetes: the previous pod template), and pin it, in one step",
    )
    rollback.add_argument(
        "--dry-run", action="store_true", help="show what would change, change nothing"
    )
    add_project_dir(rollback)
    rollback.set_defaults(handler=run, validate=validate, parser=rollback)


def validate(args: argparse.Namespace) -> None:
    if args.to_update is not None and args.model:
        args.parser.error("--to-update rolls back the whole stack; it takes no --model")
    if args.to_update is not None and args.now:
        args.parser.error("--now moves one model's traffic; it takes no --to-update")
    if args.to_update is None and args.layer != "workloads":
        args.parser.error("--layer goes with --to-update (a model's pin is the workloads')")
    if args.to_update is None and args.restore_pins:
        args.parser.error("--restore-pins goes with --to-update (a model's pin is what it moves)")


def run(args: argparse.Namespace) -> int:
    if args.to_update is not None:
        return guarded(lambda: _stack(args))
    return guarded(lambda: _model(args))


def _model(args: argparse.Namespace) -> int:
    from infra.config.stackfiles import load_stack_settings
    from infra.operations import cluster_access
    from infra.operations.aws_access import stack_aws
    from infra.operations.git import operator
    from infra.operations.model_rollback import roll_back_model
    from infra.operations.promotion import stack_config

    root = args.project_dir
    aws = stack_aws(load_stack_settings(args.stack, root))
    environment = stack_config(root, args.stack).environment
    client = aws.client("sagemaker")
    rollback = roll_back_model(
        root,
        args.stack,
        model=args.model,
        to=args.to,
        client=client,
        operator=operator(root),
        reason=args.reason,
        connect_cluster=lambda: cluster_access.cluster_api(
            aws, naming.cluster_name(environment), naming.WORKLOAD_NAMESPACE
        ),
        cloudwatch=aws.client("cloudwatch"),
        now=args.now,
    )
    status = apply_pin_change(
        rollback.change,
        client,
        args.stack,
        aws=aws,
        environment=environment,
        operator=operator(root),
        dry_run=args.dry_run,
        verbs=("recording on", "would record on"),
        deploys=not args.now,
    )
    if status or args.dry_run:
        return status
    for move in rollback.moves:
        progress(f"{move.target}: {move.description}")
        move.run()
    if args.now:
        progress(
            f"{rollback.model}: traffic is going back to version {rollback.version}; "
            f"`mlstack verify {args.stack}` shows when every target serves it, and commit "
            f"{rollback.change.edit.path.name} so the next deploy keeps it"
        )
    return 0


def _stack(args: argparse.Namespace) -> int:
    from infra.operations.git import operator, require_clean
    from infra.operations.pulumi_cli import AutomationStack
    from infra.operations.stack_rollback import roll_back_stack
    from infra.project.layers import layer_named

    root = args.project_dir
    require_clean(root)  # said before the Pulumi CLI is looked for
    target = roll_back_stack(
        root,
        args.stack,
        args.to_update,
        engine=AutomationStack(args.stack, root, layer_named(args.layer)),
        preview=args.dry_run,
        reason=args.reason,
        operator=operator(root),
        on_output=_pulumi_output,
        restore_pins=args.restore_pins,
    )
    done = "previewed" if args.dry_run else "deployed"
    progress(f"{args.stack}: update {target.version}'s commit {target.commit[:12]} {done}")
    if not args.dry_run:
        progress(
            f"next: `mlstack verify {args.stack}`, and revert the change that broke it on your "
            f"branch (`git revert`), or the next deploy from it undoes this rollback"
        )
    return 0


def _pulumi_output(text: str) -> None:
    """A line of the Pulumi CLI's output, or a note about the rollback, as a log line."""
    line = text.rstrip()
    if line.startswith("warning: "):
        log.warning(line)
    elif line.strip():
        log.info(line)
