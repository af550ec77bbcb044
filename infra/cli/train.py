"""`mlstack train ENV --model M --on kubernetes|sagemaker`: a training run now, outside the
schedule."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from infra.cli.operating import add_project_dir, exit_statuses, guarded, progress
from infra.cli.output import write_stdout

ENGINES = ("kubernetes", "sagemaker")


def add_parser(commands: Any) -> None:
    from infra.operations.training_runs import DEFAULT_INSTANCE_TYPE, DEFAULT_VOLUME_GB

    train = commands.add_parser(
        "train",
        help="start a model's training now, on the cluster or as a SageMaker training job",
        description=(
            "`--on kubernetes` creates a Job from the model's training CronJob, as `kubectl "
            "create job --from=cronjob/training-M` does: the scheduled runs' image, data, "
            "role, limits and quality gate, with who started it and why on the Job. "
            "`--on sagemaker` starts a SageMaker training job with the stack's training image "
            "and SageMaker training role: the model's data prefix in the data bucket as its "
            "`train` channel, artifacts to the models bucket, the stack's key on its volume "
            "and output, the stack's maximum runtime; for data that outgrows a pod. Either "
            "prints the run's name; the run registers a version as a scheduled one does."
        ),
        epilog=exit_statuses(),
    )
    train.add_argument("stack", help="the environment")
    train.add_argument("--model", required=True, help="the model (one of mlstack:models)")
    train.add_argument("--on", required=True, choices=ENGINES, help="where the run goes")
    train.add_argument("--reason", default="no reason given", help="why, recorded on the run")
    sagemaker = train.add_argument_group("--on sagemaker only")
    sagemaker.add_argument(
        "--instance-type",
        help=f"the training instance (default {DEFAULT_INSTANCE_TYPE})",
    )
    sagemaker.add_argument(
        "--volume-gb",
        type=int,
        help=f"the instance's encrypted volume, which holds the data (default {DEFAULT_VOLUME_GB})",
    )
    sagemaker.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a training setting as mlstack-train takes it (algorithm=forest, max_iter=500, "
        "...); repeat for more",
    )
    add_project_dir(train)
    train.set_defaults(handler=run, validate=validate, parser=train)


def validate(args: argparse.Namespace) -> None:
    """Refuse what SageMaker or the trainer would refuse later, before anything starts."""
    from infra.config.sections.serving import check_sagemaker_instance
    from training.settings import SettingsError, parse_settings

    if args.on != "sagemaker":
        given = [
            flag
            for flag, value in (
                ("--instance-type", args.instance_type),
                ("--volume-gb", args.volume_gb),
                ("--set", args.set),
            )
            if value
        ]
        if given:
            args.parser.error(
                f"{', '.join(given)}: only with --on sagemaker; a run on the cluster is the "
                "training CronJob's, with its settings"
            )
        return
    if args.instance_type is not None:
        problem = check_sagemaker_instance(args.instance_type)
        if problem:
            args.parser.error(f"--instance-type {args.instance_type}: allowed: {problem}")
    if args.volume_gb is not None and not 1 <= args.volume_gb <= 16384:
        args.parser.error(f"--volume-gb {args.volume_gb}: allowed: 1 to 16384")
    settings: dict[str, str] = {}
    for entry in args.set:
        name, equals, value = entry.partition("=")
        if not equals or not name.strip():
            args.parser.error(f"--set {entry}: allowed: NAME=VALUE, such as algorithm=forest")
        settings[name.strip()] = value.strip()
    try:
        parse_settings(settings)
    except SettingsError as error:
        args.parser.error(f"--set: {error}")
    args.settings = settings


def run(args: argparse.Namespace) -> int:
    return guarded(lambda: _train(args))


def _train(args: argparse.Namespace) -> int:
    from infra.operations.git import operator

    if args.on == "sagemaker":
        return _train_on_sagemaker(args, operator(args.project_dir))
    from infra.operations.cluster_access import cluster_api
    from infra.operations.training_runs import train_on_kubernetes

    name = train_on_kubernetes(
        args.project_dir,
        args.stack,
        args.model,
        connect_cluster=cluster_api,
        operator=operator(args.project_dir),
        reason=args.reason,
        now=datetime.now(UTC),
    )
    write_stdout(name)
    progress(f"started Job mlstack/{name}; follow it: kubectl -n mlstack logs -f job/{name}")
    return 0


def _train_on_sagemaker(args: argparse.Namespace, who: str) -> int:
    from infra.operations.pulumi_cli import AutomationStack
    from infra.operations.training_runs import SageMakerTraining, train_on_sagemaker

    defaults = SageMakerTraining()
    name = train_on_sagemaker(
        args.project_dir,
        args.stack,
        args.model,
        read_outputs=lambda: AutomationStack(args.stack, args.project_dir).outputs(),
        operator=who,
        reason=args.reason,
        now=datetime.now(UTC),
        run=SageMakerTraining(
            instance_type=args.instance_type or defaults.instance_type,
            volume_gb=args.volume_gb or defaults.volume_gb,
            hyperparameters=args.settings,
        ),
    )
    write_stdout(name)
    progress(
        f"started SageMaker training job {name}; follow it: aws sagemaker "
        f"describe-training-job --training-job-name {name} (logs: /aws/sagemaker/TrainingJobs)"
    )
    return 0
