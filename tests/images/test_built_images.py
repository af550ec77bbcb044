"""The Dockerfiles, built and run by a real engine: the training image trains in SageMaker's
layout, the serving image serves what it trained (to requests, and to a batch transform job's
mini-batches), both as uid 10001 on a read-only root."""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from mlstack_common.artifact import load_model_dir, verify_model_file
from serving.ports import free_port
from tests.images.engine import Engine, EngineUnavailableError
from tests.serving.batch_transform import transform
from tests.serving.conftest import Loopback

pytestmark = pytest.mark.images


def test_the_training_image_trains_in_sagemakers_layout(
    trained_in_container: tuple[Path, str],
) -> None:
    opt_ml, printed = trained_in_container
    model = opt_ml / "model"
    assert sorted(p.name for p in model.iterdir()) == [
        "fastpath.bin", "metadata.json", "model.joblib",
    ]  # fmt: skip
    _, metadata = load_model_dir(model)
    verify_model_file(model, metadata)
    assert metadata.algorithm == "forest"
    assert metadata.classes == ("benign", "malignant")
    assert json.loads(printed)["gate"]["passed"] is True
    report = opt_ml / "output" / "data"
    assert {"model_card.md", "evaluation.json", "baseline_statistics.json"} <= {
        p.name for p in report.iterdir()
    }


def _wait_ready(port: int, engine: Engine, container: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                logs = engine.docker("logs", container).stderr
                raise AssertionError(
                    f"the serving container never answered /ping: {logs}"
                ) from None
            time.sleep(0.2)


def test_the_serving_image_serves_the_model_the_training_image_made(
    engine: Engine,
    images: dict[str, str],
    trained_in_container: tuple[Path, str],
    tmp_path: Path,
) -> None:
    opt_ml, _ = trained_in_container
    port = free_port()
    container = engine.docker(
        "run", "-d", "--network", "host", "--read-only", "--tmpfs", "/tmp",  # noqa: S108 (the container's)
        "-v", f"{opt_ml / 'model'}:/opt/ml/model:ro", "-e", f"MLSTACK_PORT={port}",
        images["serving"],
    ).stdout.strip()  # fmt: skip
    try:
        _wait_ready(port, engine, container)
        rows = [
            line.split(",")[:-1]
            for line in (opt_ml / "input/data/train/breast_cancer.csv")
            .read_text()
            .splitlines()[1:6]
        ]
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps([[float(v) for v in row] for row in rows]).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            served = json.loads(answer.read())
        # As a batch transform job calls the image: its /execution-parameters, then the
        # file's lines (no header) in mini-batches, one output line per input line.
        data = opt_ml / "input/data/train/breast_cancer.csv"
        lines = data.read_text().splitlines()[1:]
        source = tmp_path / "input.csv"
        source.write_text("".join(",".join(line.split(",")[:-1]) + "\n" for line in lines))
        transformed = transform(Loopback(port), source, tmp_path / "output")
        user = engine.docker("exec", container, "id", "-u").stdout.strip()
        engine.docker("stop", "-t", "30", container)
        exit_code = engine.docker("inspect", "-f", "{{.State.ExitCode}}", container).stdout.strip()
    finally:
        with contextlib.suppress(EngineUnavailableError):
            engine.docker("rm", "-f", container)
    pipeline, _ = load_model_dir(opt_ml / "model")
    expected = pipeline.predict_proba(np.asarray(rows, dtype=np.float64))
    assert np.allclose(served["probabilities"], expected, atol=1e-9)
    assert transformed.parameters["BatchStrategy"] == "MULTI_RECORD"
    assert len(transformed.output.read_text().splitlines()) == len(lines)
    assert user == "10001"
    assert exit_code == "0"  # SIGTERM drains and exits cleanly


def test_neither_image_holds_infra_or_the_readme(engine: Engine, images: dict[str, str]) -> None:
    for image, tag in images.items():
        made = "\n".join(engine.history(tag))
        assert "infra" not in made, f"{image}: {made}"
        assert "README" not in made, f"{image}: {made}"
        other = next(name for name in images if name != image)
        assert f"{other}/" not in made, f"{image} copies {other}/: {made}"
        listed = engine.docker("run", "--rm", "--entrypoint", "ls", tag, "/opt/mlstack").stdout
        assert sorted(listed.split()) == ["mlstack_common", image]
