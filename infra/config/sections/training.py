"""The keys of when and how training runs, and what it is tracked with."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.reader import Reader, one_of
from infra.config.sections.formats import check_cron


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """When and how training runs, and whether passing versions are approved automatically."""

    schedule: str
    max_runtime_minutes: int
    auto_approve: bool
    mlflow_server_size: str
    """A SageMaker managed MLflow tracking server of this size (Small, Medium, Large) records
    training's runs; empty: none."""


MLFLOW_SERVER_SIZES = ("Small", "Medium", "Large")


def check_mlflow_server_size(value: str) -> str | None:
    if value == "" or value in MLFLOW_SERVER_SIZES:
        return None
    return f"{one_of(MLFLOW_SERVER_SIZES)} (SageMaker's sizes, capitalised), or empty for none"


def read_training(read: Reader) -> TrainingConfig:
    return TrainingConfig(
        schedule=read.string("trainingSchedule", check_cron),
        max_runtime_minutes=read.integer("trainingMaxRuntimeMinutes", 1, 4320),
        auto_approve=read.boolean("autoApproveModels"),
        mlflow_server_size=read.string("mlflowServerSize", check_mlflow_server_size),
    )
