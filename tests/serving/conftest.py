"""Real serving processes on 127.0.0.1, serving models the training package produced."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from serving.ports import free_port
from training.cli import main as train


@dataclass
class Loopback:
    """A server listening on 127.0.0.1 (a process here, or a container on the host network)."""

    port: int

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            return (
                response.status,
                {k.lower(): v for k, v in response.getheaders()},
                response.read(),
            )
        finally:
            connection.close()

    def post(
        self, body: bytes, content_type: str = "application/json", **headers: str
    ) -> tuple[int, dict[str, str], bytes]:
        return self.request("POST", "/invocations", body, {"Content-Type": content_type, **headers})


@dataclass
class Server(Loopback):
    """A running `python -m serving serve` and a way to talk to it."""

    process: subprocess.Popen[bytes]
    log: Path


def _model_env(model_uri: str | None) -> dict[str, str]:
    """This environment, with MLSTACK_MODEL_URI set only when a model location is given (a
    server told MLSTACK_MODEL_PACKAGE instead must not see one)."""
    env = {k: v for k, v in os.environ.items() if k != "MLSTACK_MODEL_URI"}
    return env if model_uri is None else {**env, "MLSTACK_MODEL_URI": model_uri}


def _spawn(
    model_uri: str | None, port: int, work_dir: Path, output: Any, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "serving", "serve"],
        env={
            **_model_env(model_uri),
            "MLSTACK_PORT": str(port),
            "MLSTACK_HOST": "127.0.0.1",
            "MLSTACK_WORK_DIR": str(work_dir / "work"),
            "MLSTACK_WORKERS": "1",
            **env,
        },
        stdout=output,
        stderr=subprocess.STDOUT,
    )


def start_server(model_uri: str | None, work_dir: Path, **env: str) -> Server:
    port = free_port()
    log = work_dir / "server.log"
    with log.open("wb") as output:
        process = _spawn(model_uri, port, work_dir, output, env)
    server = Server(port, process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited {process.returncode}: {log.read_text()}")
        try:
            if server.request("GET", "/ping")[0] == 200:
                return server
        except OSError:
            pass
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"server not ready in 60 s: {log.read_text()}")


def serve_until_exit(
    model_uri: str | None, work_dir: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run a server expected to stop by itself (it refuses to start, or gives up)."""
    return subprocess.run(
        [sys.executable, "-m", "serving", "serve"],
        env={
            **_model_env(model_uri),
            "MLSTACK_PORT": str(free_port()),
            "MLSTACK_HOST": "127.0.0.1",
            "MLSTACK_WORK_DIR": str(work_dir),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def stop_server(server: Server) -> int:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    return server.process.returncode


@pytest.fixture(scope="session")
def trained_models(
    tmp_path_factory: pytest.TempPathFactory, demo_dataset: tuple[Path, Path]
) -> dict[str, Path]:
    """Model directories made by the training package: the real round trip."""
    root = tmp_path_factory.mktemp("models")
    data, _ = demo_dataset
    models = {}
    for name, algorithm in (("linear", "linear"), ("boosting", "hgb"), ("forest", "forest")):
        assert (
            train(["--data", str(data), "--output-dir", str(root / name), "--algorithm", algorithm])
            == 0
        )
        models[name] = root / name / "model"
    # Regression, and a model with a categorical and a nullable feature.
    rng = np.random.default_rng(1)
    colour = rng.choice(["red", "green", "blue"], size=200)
    size = rng.normal(10, 2, size=200)
    price = np.where(colour == "red", 5.0, 1.0) + 0.5 * size + rng.normal(0, 0.1, size=200)
    mixed = root / "mixed-data"
    mixed.mkdir()
    (mixed / "data.csv").write_text(
        "colour,size,price\n"
        + "".join(
            f"{c},{'' if i % 17 == 0 else f'{s:.3f}'},{p:.3f}\n"
            for i, (c, s, p) in enumerate(zip(colour, size, price, strict=True))
        )
    )
    (mixed / "dataset.yaml").write_text(
        yaml.safe_dump(
            {
                "target": {"name": "price", "type": "numeric"},
                "features": [
                    {
                        "name": "colour",
                        "type": "categorical",
                        "categories": ["red", "green", "blue"],
                    },
                    {"name": "size", "type": "numeric", "min": 0, "max": 30, "nullable": True},
                ],
            }
        )
    )
    assert (
        train(
            [
                "--data",
                str(mixed / "data.csv"),
                "--output-dir",
                str(root / "mixed"),
                "--algorithm",
                "linear",
            ]
        )
        == 0
    )
    models["mixed"] = root / "mixed" / "model"
    return models


def _serving(
    name: str, models: dict[str, Path], factory: pytest.TempPathFactory
) -> Iterator[Server]:
    server = start_server(str(models[name]), factory.mktemp(f"{name}-server"))
    yield server
    stop_server(server)


@pytest.fixture(scope="module")
def linear_server(
    trained_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from _serving("linear", trained_models, tmp_path_factory)


@pytest.fixture(scope="module")
def mixed_server(
    trained_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from _serving("mixed", trained_models, tmp_path_factory)


@pytest.fixture(scope="session")
def demo_rows(demo_dataset: tuple[Path, Path]) -> list[list[float]]:
    lines = demo_dataset[0].read_text().splitlines()[1:]
    return [[float(v) for v in line.split(",")[:-1]] for line in lines]
