"""Where `mlstack plan` gets its answers about pinned model versions, and saying which.

The program resolves pins through boto3 (`infra.config.pinned_versions`). Offline, that registry is
either an emulator the user names (`--registry-endpoint`, e.g. the demo's moto_server), or an
in-process moto seeded with recorded answers (`--registry-answers FILE`) or, without either,
with placeholders that take every pinned version as Approved. The program's code is the same in
all three; only the registry behind boto3 differs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.project import naming
from mlstack_common.registry import APPROVED, METRIC_PREFIX, MODEL_SHA256_PROPERTY

PLACEHOLDER_IMAGE = "offline.invalid/serving@sha256:" + "0" * 64
ANSWER_FIELDS = ("status", "model_data_url", "model_sha256", "metrics")


class RegistryAnswersError(ValueError):
    """A recorded answers file that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class RecordedVersion:
    status: str
    model_data_url: str
    model_sha256: str
    metrics: Mapping[str, float]


def placeholder(group: str, version: int) -> RecordedVersion:
    return RecordedVersion(
        status=APPROVED,
        model_data_url=f"s3://offline-placeholder/{group}/{version}/model.tar.gz",
        model_sha256="0" * 64,
        metrics={},
    )


def load_answers(path: Path) -> dict[str, dict[int, RecordedVersion]]:
    """`{group: {version: {status, model_data_url, model_sha256, metrics}}}` from YAML."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise RegistryAnswersError(f"--registry-answers {path}: {error}") from error
    if not isinstance(raw, dict):
        raise RegistryAnswersError(
            f"--registry-answers {path}: allowed: a mapping of model package group to versions"
        )
    answers: dict[str, dict[int, RecordedVersion]] = {}
    for group, versions in raw.items():
        answers[str(group)] = {}
        for version, fields in (versions or {}).items():
            where = f"--registry-answers {path}: {group} version {version}"
            if not isinstance(version, int) or not isinstance(fields, dict):
                raise RegistryAnswersError(f"{where}: allowed: a version number mapped to fields")
            unknown = sorted(set(fields) - set(ANSWER_FIELDS))
            if unknown or "status" not in fields:
                raise RegistryAnswersError(
                    f"{where}: fields {unknown or 'without status'}; allowed: {ANSWER_FIELDS}"
                )
            default = placeholder(str(group), version)
            answers[str(group)][version] = RecordedVersion(
                status=str(fields["status"]),
                model_data_url=str(fields.get("model_data_url", default.model_data_url)),
                model_sha256=str(fields.get("model_sha256", default.model_sha256)),
                metrics={k: float(v) for k, v in (fields.get("metrics") or {}).items()},
            )
    return answers


@contextmanager
def offline_registry(
    environment: str,
    pins: Mapping[str, int],
    region: str,
    *,
    endpoint: str | None = None,
    answers_file: Path | None = None,
) -> Iterator[str]:
    """The registry the program's boto3 calls reach for the block's duration; yields a line
    saying which it is."""
    if endpoint:
        with _environment(_emulator_environment(endpoint)):
            yield f"model versions: asked of the registry at {endpoint}"
        return
    from moto import mock_aws

    answers = load_answers(answers_file) if answers_file else {}
    with _environment(_emulator_environment(None)), mock_aws():
        _seed(region, answers, environment, pins, placeholders=answers_file is None)
        yield (
            f"model versions: recorded answers in {answers_file}"
            if answers_file
            else "model versions: offline placeholders, every pinned version taken as Approved "
            "(--registry-answers FILE or --registry-endpoint URL checks them)"
        )


def _seed(
    region: str,
    answers: dict[str, dict[int, RecordedVersion]],
    environment: str,
    pins: Mapping[str, int],
    *,
    placeholders: bool,
) -> None:
    import boto3

    if placeholders:
        for model, version in pins.items():
            group = naming.model_package_group(model, environment)
            answers.setdefault(group, {})[version] = placeholder(group, version)
    client: Any = boto3.client("sagemaker", region_name=region or "us-east-1")
    for group, versions in answers.items():
        client.create_model_package_group(ModelPackageGroupName=group)
        # SageMaker numbers versions in order: versions not recorded are Rejected fillers.
        for number in range(1, max(versions, default=0) + 1):
            recorded = versions.get(number) or RecordedVersion("Rejected", "", "", {})
            properties: dict[str, Any] = {
                f"{METRIC_PREFIX}{name}": f"{value:.6g}" for name, value in recorded.metrics.items()
            }
            if recorded.model_sha256:
                properties[MODEL_SHA256_PROPERTY] = recorded.model_sha256
            container: dict[str, Any] = {"Image": PLACEHOLDER_IMAGE}
            if recorded.model_data_url:
                container["ModelDataUrl"] = recorded.model_data_url
            client.create_model_package(
                ModelPackageGroupName=group,
                InferenceSpecification={
                    "Containers": [container],
                    "SupportedContentTypes": ["application/json"],
                    "SupportedResponseMIMETypes": ["application/json"],
                },
                ModelApprovalStatus=recorded.status,
                CustomerMetadataProperties=properties,
            )


def _emulator_environment(endpoint: str | None) -> dict[str, str]:
    """Credentials no real account accepts, and (with an endpoint) where SageMaker calls go."""
    values = {
        "AWS_ACCESS_KEY_ID": "offline",
        "AWS_SECRET_ACCESS_KEY": "offline",
        "AWS_SESSION_TOKEN": "offline",
    }
    if endpoint:
        values["AWS_ENDPOINT_URL_SAGEMAKER"] = endpoint
    return values


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in (*values, "AWS_PROFILE")}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
