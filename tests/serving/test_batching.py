"""Micro-batching with a real model: one large request is scored in chunks, and requests that
arrive meanwhile do not wait for all of it."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from mlstack_common.artifact import load_model_dir
from serving.batching import MicroBatcher
from serving.model import Predictor


def test_a_large_request_is_scored_in_chunks_with_others_in_between(
    trained_models: dict[str, Path], demo_rows: list[list[float]]
) -> None:
    pipeline, metadata = load_model_dir(trained_models["linear"])
    predictor = Predictor.from_pipeline(pipeline, metadata)
    rows = np.asarray(demo_rows[:35], dtype=np.float64)
    batches: list[int] = []
    finished: list[str] = []

    async def scenario() -> tuple[np.ndarray, np.ndarray]:
        batcher = MicroBatcher(
            predictor, max_rows=10, on_batch=lambda matrix: batches.append(len(matrix))
        )

        async def run(name: str, part: np.ndarray) -> np.ndarray:
            result = await batcher.predict(part)
            finished.append(name)
            assert result.probabilities is not None
            return result.probabilities

        large = asyncio.create_task(run("large", rows))
        await asyncio.sleep(0)  # the first chunk is queued
        small = asyncio.create_task(run("small", rows[:1]))
        return await large, await small

    large, small = asyncio.run(scenario())
    expected = predictor.predict(rows).probabilities
    assert expected is not None
    np.testing.assert_allclose(large, expected)
    np.testing.assert_allclose(small, expected[:1])
    assert max(batches) <= 10, "no model call over MLSTACK_MAX_BATCH_ROWS"
    assert sum(batches) == 36
    assert finished == ["small", "large"], "the small request did not wait for the large one"


def test_forests_switch_to_compiled_trees_for_large_calls_without_a_slower_cold_start(
    trained_models: dict[str, Path], demo_rows: list[list[float]], tmp_path: Path
) -> None:
    # In a fresh process: the fast path loads without scikit-learn; the first call above the
    # crossover brings in the pipeline, and both give the pipeline's answers.
    code = f"""
import sys, json
import numpy as np
from pathlib import Path
from serving.model import FOREST_CROSSOVER_ROWS, load_predictor
predictor = load_predictor({str(trained_models["forest"])!r}, Path({str(tmp_path)!r}))
assert predictor.fast and "sklearn" not in sys.modules, "cold start imported scikit-learn"
rows = np.resize(np.asarray({demo_rows[:50]!r}), (FOREST_CROSSOVER_ROWS + 100, 30))
small = predictor.predict(rows[:10]).probabilities
assert "sklearn" not in sys.modules
large = predictor.predict(rows).probabilities
assert "sklearn" in sys.modules
print(json.dumps([small.tolist(), large.tolist()]))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    small, large = json.loads(result.stdout)
    pipeline, _ = load_model_dir(trained_models["forest"])
    rows = np.resize(np.asarray(demo_rows[:50]), (len(large), 30))
    expected = pipeline.predict_proba(rows)
    np.testing.assert_allclose(large, expected, atol=1e-12)
    np.testing.assert_allclose(small, expected[:10], atol=1e-9)
