"""The images, built once per test run by a real engine (see `engine.py`), and what they made."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.components.image_sources import source_tag
from infra.project import naming
from tests.images.engine import Engine, EngineUnavailableError, base_image, running_engine
from training.demo import write_demo_dataset


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    try:
        with running_engine() as running:
            yield running
    except EngineUnavailableError as error:
        pytest.skip(f"no container engine can run here: {error}")


@pytest.fixture(scope="session")
def images(engine: Engine) -> dict[str, str]:
    """Both images, from their Dockerfiles and the repository root, on the stand-in base, each
    tagged with its content tag (`infra.components.image_sources`) as a deploy tags it: an
    image whose inputs have not changed since the engine last built it is not built again."""
    base = base_image(engine)
    tags = {}
    for image in naming.IMAGES:
        tag = f"mlstack-{image}:{source_tag(image)}"
        if not engine.has_image(tag):
            engine.build(image, tag, base)
        engine.keep_only(f"mlstack-{image}", tag)
        tags[image] = tag
    return tags


@pytest.fixture(scope="session")
def trained_in_container(
    engine: Engine, images: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, str]:
    """`/opt/ml` after the training image's `train` ran on the demo data (SageMaker's layout),
    and what the run printed."""
    opt_ml = tmp_path_factory.mktemp("opt-ml")
    channel = opt_ml / "input" / "data" / "train"
    write_demo_dataset(channel)
    config = opt_ml / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({"algorithm": "forest"}))
    # The image runs as uid 10001, as SageMaker and Kubernetes run it; it must write here.
    for path in [opt_ml, *opt_ml.rglob("*")]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    result = engine.docker(
        "run", "--rm", "--network", "host", "--read-only", "--tmpfs", "/tmp",  # noqa: S108 (the container's)
        "-v", f"{opt_ml}:/opt/ml", images["training"], "train",
        what="the training image's train", timeout=600,
    )  # fmt: skip
    return opt_ml, result.stdout
