"""Training benchmark: the demo model end to end, and training throughput on 1M rows.

    uv run python bench/bench_training.py [--rows 1000000] [--repeat 3]

1. Demo model: train, evaluate, plot, package, upload and register (S3 and SageMaker under moto,
   in-process), the whole `run_training`, `--repeat` times; the median is reported. Also one
   fresh `python -m training` process, imports included.
2. Throughput: a synthetic 1M-row, 20-feature classification set as Parquet; the full run
   (read, validate, train, evaluate, plot, write) and the pipeline fit alone, in rows/s.

Prints a Markdown table and the machine it ran on; paste both into bench/README.md.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import yaml
from moto import mock_aws

from mlstack_common import storage
from training.dataset import load as load_dataset
from training.demo import write_demo_dataset
from training.model import train
from training.run import TrainingRequest, run_training
from training.settings import Hyperparameters
from training.spec import load_spec

BUCKET, GROUP = "bench-models", "bench-demo"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/serving:bench"


def demo_end_to_end(work: Path, repeat: int) -> list[float]:
    # moto accepts any credentials; these never leave the process.
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106
        AWS_DEFAULT_REGION="us-east-1",
    )
    data, spec = write_demo_dataset(work / "demo")
    timings = []
    with mock_aws():
        storage.s3_client.cache_clear()
        boto3.client("s3").create_bucket(Bucket=BUCKET)
        boto3.client("sagemaker").create_model_package_group(ModelPackageGroupName=GROUP)
        for run in range(repeat):
            started = time.perf_counter()
            outcome = run_training(
                TrainingRequest(
                    data_uri=str(data),
                    spec_uri=str(spec),
                    model_dir=work / f"run{run}" / "model",
                    report_dir=work / f"run{run}" / "report",
                    models_uri=f"s3://{BUCKET}/models",
                    model_package_group=GROUP,
                    serving_image=IMAGE,
                )
            )
            timings.append(time.perf_counter() - started)
            if outcome.registered is None:
                raise RuntimeError("the benchmark run did not register a version")
    storage.s3_client.cache_clear()
    return timings


def cold_process(work: Path) -> float:
    """A fresh `python -m training` on the demo data: imports included, as a job runs it."""
    data, _ = write_demo_dataset(work / "cold")
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "--data",
            str(data),
            "--output-dir",
            str(work / "cold-out"),
        ],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def synthetic(work: Path, rows: int, features: int = 20) -> tuple[Path, Path]:
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(rows, features)).astype(np.float32)
    weights = rng.normal(size=features)
    logits = matrix @ weights + 0.5 * np.sin(matrix[:, 0] * 3)
    names = [f"x{i:02d}" for i in range(features)]
    frame = pd.DataFrame(matrix, columns=names)
    frame["label"] = np.where(logits + rng.normal(size=rows) > 0, "yes", "no")
    data = work / "synthetic.parquet"
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    data.write_bytes(buffer.getvalue())
    spec = work / "dataset.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "target": {"name": "label", "type": "categorical"},
                "features": [{"name": n, "type": "numeric"} for n in names],
            }
        )
    )
    return data, spec


def throughput(work: Path, rows: int) -> tuple[float, float]:
    data, spec = synthetic(work, rows)
    started = time.perf_counter()
    run_training(
        TrainingRequest(
            data_uri=str(data), spec_uri=str(spec), model_dir=work / "m", report_dir=work / "r"
        )
    )
    full = time.perf_counter() - started
    checked = load_dataset(data.read_bytes(), str(data), load_spec(spec.read_text()))
    parsed = load_spec(spec.read_text())
    started = time.perf_counter()
    train(checked, parsed.features, parsed.task, Hyperparameters())
    fit = time.perf_counter() - started
    return rows / full, rows / fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        timings = demo_end_to_end(work, args.repeat)
        cold = cold_process(work)
        full_rate, fit_rate = throughput(work / "synthetic", args.rows)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    rows = [
        (
            f"demo model: train, evaluate, package, register (median of {len(timings)})",
            f"{statistics.median(timings):.2f} s (min {min(timings):.2f}, max {max(timings):.2f})",
        ),
        ("demo model, fresh `python -m training` process (no registry)", f"{cold:.2f} s"),
        (
            f"{args.rows:,} rows, full run (read, validate, train, evaluate, write)",
            f"{full_rate:,.0f} rows/s",
        ),
        (f"{args.rows:,} rows, pipeline fit only", f"{fit_rate:,.0f} rows/s"),
    ]
    print()
    print("| measure | value |")
    print("| --- | --- |")
    for measure, value in rows:
        print(f"| {measure} | {value} |")


if __name__ == "__main__":
    main()
