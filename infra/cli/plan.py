"""`mlstack plan STACK`: what a stack declares, evaluated offline under Pulumi's mock runtime."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from infra.cli.output import write_stdout
from infra.config.errors import ConfigError
from infra.config.schema import NAMESPACE
from infra.config.stackfiles import StackFileError
from infra.project.layers import LAYERS, layer_named
from infra.project.paths import PROJECT_ROOT, known_stacks
from mlstack_common.exits import ExitStatus, exit_status_help

log = logging.getLogger("mlstack.cli")
EXIT_HELP = exit_status_help(
    ExitStatus.OK,
    ExitStatus.REFUSED,
    ExitStatus.USAGE,
    details={
        ExitStatus.OK: "clean",
        ExitStatus.REFUSED: "policy violations",
        ExitStatus.USAGE: "the stack could not be evaluated (bad config; a stack file that is "
        "missing, unreadable or not YAML; the output closed before the plan was written)",
    },
)


def add_parser(commands: Any) -> None:
    plan = commands.add_parser(
        "plan",
        help="print the resources a stack declares, offline (no Pulumi CLI, no credentials)",
        description=(
            "Run the environment's Pulumi programs for STACK - the platform layer, then the "
            "workloads layer, which reads the platform's outputs - under Pulumi's mock runtime "
            "with the values of Pulumi.yaml and Pulumi.STACK.yaml, print every declared "
            "resource with its inputs, and check each layer against the policy rules."
        ),
        epilog=EXIT_HELP,
    )
    plan.add_argument("stack", help=f"stack name (with a stack file: {', '.join(known_stacks())})")
    plan.add_argument("--json", action="store_true", help="print JSON instead of a tree")
    plan.add_argument(
        "--layer",
        choices=[layer.name for layer in LAYERS],
        help="only this layer (default: both; the workloads still read the platform's outputs)",
    )
    plan.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one config value for this plan, e.g. --set gpuNodeGroup=true",
    )
    plan.add_argument(
        "--k8s-yaml",
        type=Path,
        metavar="DIR",
        help="also write every Kubernetes object as YAML, one file each, into DIR",
    )
    plan.add_argument(
        "--snapshot",
        action="store_true",
        help="write the plan to its committed snapshots, infra/snapshots/LAYER/STACK.txt (`make "
        "snapshots` refreshes every stack's), and say which resources changed, instead of "
        "printing it",
    )
    registry = plan.add_mutually_exclusive_group()
    registry.add_argument(
        "--registry-endpoint",
        metavar="URL",
        help="resolve the pinned model versions against the registry at URL (an emulator, "
        "such as the moto_server of `mlstack demo --keep`)",
    )
    registry.add_argument(
        "--registry-answers",
        type=Path,
        metavar="FILE",
        help="resolve them from recorded answers: YAML of group -> version -> status, "
        "model_data_url, model_sha256, metrics (default: every pinned version taken as "
        "Approved, with placeholder model data)",
    )
    plan.set_defaults(handler=run, validate=validate, parser=plan)


def validate(args: argparse.Namespace) -> None:
    if args.snapshot and (args.set or args.registry_answers or args.registry_endpoint or args.json):
        args.parser.error(
            "--snapshot records the stack as its files declare it: it takes no --set, --json "
            "or registry option"
        )


def run(args: argparse.Namespace) -> int:
    import gc

    try:
        return _plan(args)
    finally:
        # The mock runtime leaves event loops behind; collected at interpreter exit, after
        # their self-pipes, asyncio prints "Exception ignored ... Invalid file descriptor".
        gc.collect()


def _plan(args: argparse.Namespace) -> int:
    import pulumi

    from infra.config.stack import load_config
    from infra.config.stackfiles import load_stack_settings
    from infra.offline.plan import render_json, render_tree
    from infra.offline.registry import offline_registry
    from infra.offline.runner import run_program
    from mlstack_policy.rules import evaluate

    try:
        overrides = overrides_from(args.set)
        config = load_config({**load_stack_settings(args.stack).values, **overrides})
        with offline_registry(
            config.environment,
            config.serving.model_versions,
            config.region,
            endpoint=args.registry_endpoint,
            answers_file=args.registry_answers,
        ) as registry:
            program_run = run_program(
                args.stack,
                overrides=overrides,
                layers=[layer_named(args.layer)] if args.layer else LAYERS,
            )
    except (StackFileError, ConfigError, pulumi.RunError, ValueError) as error:
        return _fail(args.stack, str(error), ExitStatus.USAGE)
    stack = {"stack": args.stack}
    if config.serving.model_versions:
        log.info(str(registry), extra=stack)
    if args.k8s_yaml is not None:
        from infra.offline.k8s_yaml import write_objects

        written = write_objects(program_run, args.k8s_yaml)
        log.info(f"{len(written)} Kubernetes objects in {args.k8s_yaml}", extra=stack)
    violations = [v for run in program_run.runs for v in evaluate(run.resources)]
    verdict = ExitStatus.REFUSED if violations else ExitStatus.OK
    if args.snapshot:
        _write_snapshot(args.stack, program_run, violations)
        return verdict
    text = (
        render_json(program_run, violations) if args.json else render_tree(program_run, violations)
    )
    if not write_stdout(text):
        return _fail(
            args.stack,
            "the output was closed before the plan was written in full",
            ExitStatus.USAGE,
        )
    return verdict


def _fail(stack: str, message: str, status: ExitStatus) -> int:
    log.error(message, extra={"stack": stack, "exit_status": int(status)})
    return status


def _write_snapshot(stack: str, program_run: Any, violations: Any) -> None:
    from infra.offline.snapshot import compare, render_snapshot, snapshot_file

    for run in program_run.runs:
        path = snapshot_file(stack, run.layer.name)
        text = render_snapshot(run, violations)
        committed = path.read_text(encoding="utf-8") if path.is_file() else ""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        changes = compare(committed, text)
        log.info(f"{path.relative_to(PROJECT_ROOT)}: {changes.describe()}", extra={"stack": stack})


def overrides_from(assignments: Sequence[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs as `pulumi config set` takes them; VALUE is read as YAML (3, true, [a])."""
    overrides: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key:
            raise StackFileError(f"--set {assignment!r}: expected KEY=VALUE")
        full_key = key if ":" in key else f"{NAMESPACE}:{key}"
        try:
            overrides[full_key] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError as error:
            raise StackFileError(f"--set {assignment!r}: the value is not valid YAML") from error
    return overrides
