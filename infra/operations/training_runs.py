"""Starting a model's training now, outside its schedule, on the engine the stack runs it on:
the cluster's training CronJob, as `kubectl create job --from=cronjob/training-<model>` would,
so the run has exactly the scheduled runs' image, data, role and limits."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from infra import naming
from infra.manifests.training import training_name
from infra.operations.aws_access import StackAws, stack_aws
from infra.operations.errors import RefusedError, UnreachableError
from infra.operations.promotion import check_model, stack_config
from infra.stackfiles import load_stack_settings
from serving.cluster_api import ClusterApi, ClusterApiError
from serving.retrain import start_training

ClusterConnector = Callable[[StackAws, str, str], ClusterApi]


def manual_job_name(model: str, when: datetime) -> str:
    return f"{training_name(model)}-manual-{when:%Y%m%d%H%M%S}"


def train_on_kubernetes(
    root: Path,
    stack: str,
    model: str,
    *,
    connect_cluster: ClusterConnector,
    operator: str,
    reason: str,
    now: datetime,
) -> str:
    """The name of the Job started from `model`'s training CronJob in `stack`."""
    config = stack_config(root, stack)
    check_model(config, model)
    if not (config.cluster.enabled and config.training.schedule):
        raise RefusedError(
            f"{stack} has no training CronJob to start a run from: it takes the cluster "
            "(mlstack:cluster) and a schedule (mlstack:trainingSchedule)"
        )
    api = connect_cluster(
        stack_aws(load_stack_settings(stack, root)),
        naming.cluster_name(config.environment),
        naming.WORKLOAD_NAMESPACE,
    )
    try:
        name, _ = start_training(
            api,
            naming.WORKLOAD_NAMESPACE,
            training_name(model),
            manual_job_name(model, now),
            f"started by {operator} with mlstack train: {reason}",
        )
    except ClusterApiError as error:
        raise UnreachableError(str(error)) from error
    return name
