"""`mlstack train ENV --model M --on kubernetes`: a training run now, outside the schedule."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from infra.cli.operating import add_project_dir, exit_statuses, guarded, progress
from infra.cli.output import write_stdout

ENGINES = ("kubernetes",)


def add_parser(commands: Any) -> None:
    train = commands.add_parser(
        "train",
        help="start a model's training now, on the engine the stack trains it on",
        description=(
            "`--on kubernetes` creates a Job from the model's training CronJob, as `kubectl "
            "create job --from=cronjob/training-M` does: the scheduled runs' image, data, "
            "role, limits and quality gate, with who started it and why on the Job. It prints "
            "the Job's name; the run registers a version as a scheduled one does. "
            + exit_statuses()
        ),
    )
    train.add_argument("stack", help="the environment")
    train.add_argument("--model", required=True, help="the model (one of mlstack:models)")
    train.add_argument("--on", required=True, choices=ENGINES, help="where the run goes")
    train.add_argument("--reason", default="no reason given", help="why, recorded on the Job")
    add_project_dir(train)
    train.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return guarded("train", lambda: _train(args))


def _train(args: argparse.Namespace) -> int:
    from infra.operations.cluster_access import cluster_api
    from infra.operations.git import operator
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
