"""A server told which registered version to serve: the registry names the model data and the
version; real server processes against a moto_server on 127.0.0.1."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mlstack_common.artifact import load_model_dir, pack
from mlstack_common.exits import ExitStatus
from mlstack_common.registry import ModelRegistry
from tests.aws import Emulator
from tests.logs import log_messages, log_records
from tests.serving.conftest import serve_until_exit, start_server, stop_server

GROUP = "breast-cancer-dev"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/serving@sha256:" + "0" * 64


def _register(emulator: Emulator, model_dir: Path, key: str, approval: str) -> str:
    """Publish and register a model directory as training does; the version's ARN."""
    emulator.client("s3").put_object(Bucket="models", Key=key, Body=pack(model_dir))
    _, metadata = load_model_dir(model_dir)
    registered = ModelRegistry(GROUP, emulator.client("sagemaker")).register(
        serving_image=IMAGE,
        model_data_url=f"s3://models/{key}",
        evaluation_url=f"s3://models/{key}.evaluation.json",
        approval_status=approval,
        description="test",
        metrics=dict(metadata.metrics),
        lineage={"model_sha256": metadata.model_sha256},
        commit="abc",
    )
    return registered.arn


@pytest.fixture
def registry(emulator: Emulator, trained_models: dict[str, Path]) -> dict[str, str]:
    """Version 1 the logistic model, version 2 the forest."""
    emulator.client("s3").create_bucket(Bucket="models")
    emulator.client("sagemaker").create_model_package_group(ModelPackageGroupName=GROUP)
    return {
        "linear": _register(emulator, trained_models["linear"], "linear/model.tar.gz", "Approved"),
        "forest": _register(
            emulator, trained_models["forest"], "forest/model.tar.gz", "PendingManualApproval"
        ),
    }


@pytest.mark.parametrize(
    ("reference", "model", "version"), [("arn", "linear", "1"), ("name", "forest", "2")]
)
def test_the_registry_names_the_model_data_and_the_version(
    emulator: Emulator,
    registry: dict[str, str],
    trained_models: dict[str, Path],
    demo_rows: list[list[float]],
    tmp_path: Path,
    reference: str,
    model: str,
    version: str,
) -> None:
    package = registry[model] if reference == "arn" else f"{GROUP}/{version}"
    server = start_server(None, tmp_path, MLSTACK_MODEL_PACKAGE=package, **emulator.env)
    try:
        _, _, metadata = server.request("GET", "/metadata")
        status, _, body = server.post(json.dumps(demo_rows[:5]).encode())
        _, _, metrics = server.request("GET", "/metrics")
    finally:
        stop_server(server)
    assert json.loads(metadata)["model_version"] == version
    assert f'model_version="{version}"' in metrics.decode()
    pipeline, _ = load_model_dir(trained_models[model])
    probabilities = np.asarray(json.loads(body)["probabilities"])
    assert status == 200
    assert np.allclose(probabilities, pipeline.predict_proba(np.asarray(demo_rows[:5])), atol=1e-9)
    started = next(
        record
        for record in log_records(server.log.read_text(), "mlstack-serve")
        if record["message"] == "serving"
    )
    assert started["model_package"] == registry[model]
    assert started["model_version"] == version
    assert started["approval_status"] == (
        "Approved" if model == "linear" else "PendingManualApproval"
    )


# A registry error is UNREACHABLE in every command: one type (`RegistryError`) covers what the
# registry refuses and failing to reach it.
@pytest.mark.parametrize(
    ("env", "status", "message"),
    [
        (
            {"MLSTACK_MODEL_PACKAGE": f"{GROUP}/7"},
            ExitStatus.UNREACHABLE,
            f"model package group '{GROUP}' has no version 7; versions there: 1, 2",
        ),
        (
            {"MLSTACK_MODEL_PACKAGE": "no-such-group/1"},
            ExitStatus.UNREACHABLE,
            "model package group 'no-such-group' has no version 1; versions there: none",
        ),
        (
            {"MLSTACK_MODEL_PACKAGE": "breast cancer"},
            ExitStatus.UNREACHABLE,
            "model package 'breast cancer': allowed: a model package ARN, or <group>/<version>",
        ),
        (
            {"MLSTACK_MODEL_PACKAGE": f"{GROUP}/1", "MLSTACK_MODEL_URI": "/opt/ml/model"},
            ExitStatus.USAGE,
            "both name a model; allowed: one of them",
        ),
        (
            {"MLSTACK_MODEL_PACKAGE": f"{GROUP}/1", "MLSTACK_MODEL_VERSION": "2"},
            ExitStatus.USAGE,
            f"MLSTACK_MODEL_VERSION = '2', but MLSTACK_MODEL_PACKAGE '{GROUP}/1' is version 1",
        ),
    ],
    ids=["missing version", "missing group", "malformed", "two sources", "another version"],
)
def test_a_reference_the_registry_cannot_satisfy_stops_the_server_with_its_reason(
    emulator: Emulator,
    registry: dict[str, str],
    tmp_path: Path,
    env: dict[str, str],
    status: ExitStatus,
    message: str,
) -> None:
    result = serve_until_exit(env.pop("MLSTACK_MODEL_URI", None), tmp_path, **env, **emulator.env)
    assert result.returncode == status, result.stderr
    assert message in log_messages(result.stderr)
    assert "Traceback" not in result.stderr


def test_model_data_that_is_not_the_registered_model_is_refused(
    emulator: Emulator, registry: dict[str, str], trained_models: dict[str, Path], tmp_path: Path
) -> None:
    # Someone overwrote version 1's model data with another model.
    emulator.client("s3").put_object(
        Bucket="models", Key="linear/model.tar.gz", Body=pack(trained_models["forest"])
    )
    result = serve_until_exit(None, tmp_path, MLSTACK_MODEL_PACKAGE=f"{GROUP}/1", **emulator.env)
    assert result.returncode == ExitStatus.REFUSED, result.stderr
    logged = log_messages(result.stderr)
    assert f"{registry['linear']} records model sha256" in logged
    assert "but its model data s3://models/linear/model.tar.gz holds" in logged
