"""Micro-batching with a real model: one large request is scored in chunks, and requests that
arrive meanwhile do not wait for all of it."""

from __future__ import annotations

import asyncio
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
            predictor, max_rows=10, on_batch=lambda matrix, _: batches.append(len(matrix))
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
