"""Batch scoring benchmark: a 1M-row CSV on S3 (moto_server) against in-memory predict.

    uv run python bench/bench_batch.py [--rows 1000000] [--chunk-rows 100000]

For the demo logistic regression and a 100-tree random forest (both made by the training
package): `python -m serving.batch` reads the file (local, or from the emulator's S3), scores it
in chunks and writes (or uploads) the predictions. It runs as its own process from an
environment holding only the `serving` extra, as in the image; its peak RSS is reported.
The reference is the same model's `predict_proba` in this process on the same rows already in
memory as one numpy array (scikit-learn, and the numpy fast path the server uses).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_serving import peer_python
from emulator import running_emulator

from mlstack_common.artifact import load_model_dir, pack
from training.demo import write_demo_dataset

BUCKET = "bench-batch"


def synthetic_rows(data: Path, rows: int) -> tuple[list[str], np.ndarray]:
    """The demo rows resampled with a little noise, so every value stays in range."""
    lines = data.read_text().splitlines()
    header = lines[0].split(",")[:-1]
    base = np.asarray([[float(v) for v in line.split(",")[:-1]] for line in lines[1:]])
    rng = np.random.default_rng(0)
    picked = base[rng.integers(0, len(base), size=rows)]
    return header, picked * rng.normal(1.0, 0.01, size=picked.shape)


def run_batch(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and peak RSS (MiB, the kernel's high-water mark) of one batch process, run
    from an environment with only the `serving` extra, as in the image."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [str(peer_python("mlstack")), "-m", "serving.batch", *args],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    peak = 0.0
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except OSError:
            pass
        time.sleep(0.05)
    if process.returncode != 0:
        raise RuntimeError(f"serving.batch failed with {process.returncode}")
    return time.perf_counter() - started, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    options = parser.parse_args()
    peer_python("mlstack", refresh=True)
    with (
        running_emulator(BUCKET) as (_, env, s3),
        tempfile.TemporaryDirectory(prefix="mlstack-batch-bench-") as scratch,
    ):
        measure(Path(scratch), options.rows, options.chunk_rows, {**os.environ, **env}, s3)


def measure(work: Path, rows: int, chunk_rows: int, env: dict[str, str], s3: Any) -> None:
    data, _ = write_demo_dataset(work / "data")
    header, matrix = synthetic_rows(data, rows)
    csv = work / "input" / "scoring.csv"
    csv.parent.mkdir()
    np.savetxt(csv, matrix, delimiter=",", header=",".join(header), comments="", fmt="%.6g")
    size_mib = csv.stat().st_size / (1 << 20)
    s3.upload_file(str(csv), BUCKET, "input/scoring.csv")
    started = time.perf_counter()
    s3.download_file(BUCKET, "input/scoring.csv", str(work / "downloaded.csv"))
    download = time.perf_counter() - started

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"input: {rows:,} rows x {len(header)} features, a {size_mib:.0f} MiB CSV; chunks of")
    print(f"{chunk_rows:,} rows; downloading it alone from moto_server takes {download:.1f} s\n")
    columns = ("model", "where", "batch, end to end", "peak RSS", "in-memory scikit-learn", "ratio")
    print("| " + " | ".join(columns) + " |")
    print("|" + " --- |" * len(columns))
    for name, algorithm in (
        ("logistic regression", "linear"),
        ("random forest, 100 trees", "forest"),
    ):
        out = work / algorithm
        command = [sys.executable, "-m", "training", "--data", str(data), "--algorithm", algorithm]
        subprocess.run([*command, "--output-dir", str(out)], check=True, capture_output=True)
        s3.put_object(Bucket=BUCKET, Key=f"{algorithm}/model.tar.gz", Body=pack(out / "model"))
        pipeline, _ = load_model_dir(out / "model")
        started = time.perf_counter()
        pipeline.predict_proba(matrix)
        in_memory = rows / (time.perf_counter() - started)
        runs = {
            "local files": [
                "--input", str(csv.parent), "--output", str(work / f"out-{algorithm}"),
                "--model", str(out / "model"),
            ],
            "S3 (moto_server)": [
                "--input", f"s3://{BUCKET}/input/", "--output", f"s3://{BUCKET}/out-{algorithm}/",
                "--model", f"s3://{BUCKET}/{algorithm}/model.tar.gz",
            ],
        }  # fmt: skip
        for where, args in runs.items():
            seconds, peak = run_batch([*args, "--chunk-rows", str(chunk_rows)], env)
            rate = rows / seconds
            print(
                f"| {name} | {where} | {rate:,.0f} rows/s ({seconds:.1f} s) | {peak:.0f} MiB | "
                f"{in_memory:,.0f} rows/s | {100 * rate / in_memory:.0f} % |"
            )


if __name__ == "__main__":
    main()
