"""Where a forest is scored faster by scikit-learn's compiled trees than by the numpy fast path.

Trains the demo forest (100 trees), then times one call of each engine at growing row counts on
one thread, as a serving worker runs. `serving.model.FOREST_CROSSOVER_ROWS` comes from this.
Run: `OMP_NUM_THREADS=1 uv run python bench/bench_forest_crossover.py`.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mlstack_common.artifact import load_model_dir, read_fast_path, read_metadata
from mlstack_common.fastpath import CompiledModel
from training.cli import main as train
from training.demo import write_demo_dataset

SIZES = (10, 100, 200, 500, 1000, 5000)


def _per_call_ms(evaluate: Callable[[np.ndarray], np.ndarray], rows: np.ndarray) -> float:
    evaluate(rows)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < 0.5:
        evaluate(rows)
        calls += 1
    return (time.perf_counter() - started) / calls * 1000


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        data, _ = write_demo_dataset(Path(scratch) / "data")
        out = Path(scratch) / "out"
        train(["--data", str(data), "--output-dir", str(out), "--algorithm", "forest"])
        model_dir = out / "model"
        fast_path = read_fast_path(model_dir, read_metadata(model_dir))
        if fast_path is None:
            raise SystemExit("the demo forest has no fast path: nothing to compare")
        numpy_walk = CompiledModel.from_bytes(fast_path).evaluate
        pipeline, _ = load_model_dir(model_dir)
        demo = np.loadtxt(data, delimiter=",", skiprows=1, usecols=range(30))
    print("| rows per call | numpy walk ms | scikit-learn ms |")
    print("| --- | --- | --- |")
    for size in SIZES:
        rows = np.resize(demo, (size, demo.shape[1]))
        walk, compiled = _per_call_ms(numpy_walk, rows), _per_call_ms(pipeline.predict_proba, rows)
        print(f"| {size:,} | {walk:.2f} | {compiled:.2f} |")


if __name__ == "__main__":
    main()
