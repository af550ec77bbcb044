"""`mlstack score ENV --model M --input s3://… --output s3://… --on sagemaker|kubernetes`."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from infra.cli.operating import add_project_dir, exit_statuses, guarded, progress
from infra.cli.output import write_stdout

ENGINES = ("sagemaker", "kubernetes")
MAX_PODS = 100
MAX_INSTANCES = 100


def add_parser(commands: Any) -> None:
    from infra.operations.scoring_runs import (
        DEFAULT_INSTANCE_TYPE,
        DEFAULT_INSTANCES,
        DEFAULT_PODS,
    )

    score = commands.add_parser(
        "score",
        help="score a prefix of files with a model version, as a batch transform or on the cluster",
        description=(
            "Input and output are prefixes in the stack's data bucket. `--on sagemaker` runs a "
            "batch transform job of the stack's serving image: every object under --input is "
            "header-less CSV, one row per line, the model's features in order; each gets "
            "<output>/<name>.out, one prediction line per input line. `--on kubernetes` runs "
            "an Indexed Job of `python -m serving.batch` pods that share the files out "
            "(CSV with a header, or Parquet; <output>/<name>.predictions.<csv|parquet>); a "
            "rerun skips the files already scored. The version is the one the stack serves "
            "unless --version names another. Prints the job's name."
        ),
        epilog=exit_statuses(),
    )
    score.add_argument("stack", help="the environment")
    score.add_argument("--model", required=True, help="the model (one of mlstack:models)")
    score.add_argument("--input", required=True, help="s3://<data bucket>/<prefix>/ to score")
    score.add_argument("--output", required=True, help="s3://<data bucket>/<prefix>/ to write")
    score.add_argument("--on", required=True, choices=ENGINES, help="where the scoring runs")
    score.add_argument(
        "--version", type=int, help="the model package version (default: the one served)"
    )
    score.add_argument("--reason", default="no reason given", help="why, recorded on the job")
    sagemaker = score.add_argument_group("--on sagemaker only")
    sagemaker.add_argument(
        "--instance-type", help=f"the transform instances (default {DEFAULT_INSTANCE_TYPE})"
    )
    sagemaker.add_argument(
        "--instances",
        type=int,
        help=f"how many, each taking whole files (default {DEFAULT_INSTANCES})",
    )
    kubernetes = score.add_argument_group("--on kubernetes only")
    kubernetes.add_argument(
        "--pods",
        type=int,
        help=f"pods sharing the files, at most one per file (default {DEFAULT_PODS})",
    )
    add_project_dir(score)
    score.set_defaults(handler=run, validate=validate, parser=score)


def validate(args: argparse.Namespace) -> None:
    from infra.config.sections.serving import check_sagemaker_instance

    other = (
        [("--pods", args.pods)]
        if args.on == "sagemaker"
        else [("--instance-type", args.instance_type), ("--instances", args.instances)]
    )
    given = [flag for flag, value in other if value is not None]
    if given:
        args.parser.error(f"{', '.join(given)}: not with --on {args.on}")
    if args.version is not None and args.version < 1:
        args.parser.error(f"--version {args.version}: allowed: a version number, 1 or more")
    for flag, value, most in (
        ("--pods", args.pods, MAX_PODS),
        ("--instances", args.instances, MAX_INSTANCES),
    ):
        if value is not None and not 1 <= value <= most:
            args.parser.error(f"{flag} {value}: allowed: 1 to {most}")
    if args.instance_type is not None:
        problem = check_sagemaker_instance(args.instance_type)
        if problem:
            args.parser.error(f"--instance-type {args.instance_type}: allowed: {problem}")


def run(args: argparse.Namespace) -> int:
    return guarded(lambda: _score(args))


def _score(args: argparse.Namespace) -> int:
    from infra.operations.git import operator
    from infra.operations.pulumi_cli import AutomationStack
    from infra.operations.scoring_runs import (
        DEFAULT_INSTANCE_TYPE,
        DEFAULT_INSTANCES,
        DEFAULT_PODS,
        ScoringRequest,
        score_on_kubernetes,
        score_on_sagemaker,
    )

    request = ScoringRequest(
        model=args.model, input_uri=args.input, output_uri=args.output, version=args.version
    )
    common: dict[str, Any] = {
        "read_outputs": lambda: AutomationStack(args.stack, args.project_dir).outputs(),
        "operator": operator(args.project_dir),
        "reason": args.reason,
        "now": datetime.now(UTC),
    }
    if args.on == "sagemaker":
        name = score_on_sagemaker(
            args.project_dir,
            args.stack,
            request,
            instance_type=args.instance_type or DEFAULT_INSTANCE_TYPE,
            instances=args.instances or DEFAULT_INSTANCES,
            **common,
        )
        write_stdout(name)
        progress(
            f"started batch transform {name}; follow it: aws sagemaker describe-transform-job "
            f"--transform-job-name {name} (logs: /aws/sagemaker/TransformJobs)"
        )
        return 0
    from infra.operations.cluster_access import cluster_api

    name, pods = score_on_kubernetes(
        args.project_dir,
        args.stack,
        request,
        connect_cluster=cluster_api,
        pods=args.pods or DEFAULT_PODS,
        **common,
    )
    write_stdout(name)
    progress(
        f"started Job mlstack/{name} with {pods} pods; follow it: kubectl -n mlstack get pods "
        f"-l job-name={name}"
    )
    return 0
