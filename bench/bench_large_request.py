"""How long the largest request the body limit allows holds a serving worker from other requests.

One worker (so every request meets the large one), each model the training package can serve
through the fast path or scikit-learn: while one client sends a JSON body just under
`MLSTACK_MAX_BODY_BYTES` (6 MiB, about 20,000 rows of the demo data's 30 features), another
sends single-row requests back to back on its own connection. Reported: the large request's
time, and the slowest single-row answer while it was in flight, i.e. the longest the worker was
unavailable to anyone else. Chunking (`MLSTACK_MAX_BATCH_ROWS`) is what keeps the second small.

    uv run python bench/bench_large_request.py
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from serving.ports import free_port
from serving.settings import ServingSettings
from training.demo import write_demo_dataset

MODELS = {"logistic": "linear", "forest (100 trees)": "forest", "gradient boosting": "hgb"}


def largest_body(rows: list[list[float]], limit: int) -> tuple[bytes, int]:
    """As many rows (the demo rows, repeated) as fit in `limit` bytes of JSON."""
    encoded = [json.dumps(row) for row in rows]
    parts: list[str] = []
    size = 2
    while True:
        row = encoded[len(parts) % len(encoded)]
        if size + len(row) + 1 > limit:
            break
        parts.append(row)
        size += len(row) + 1
    return ("[" + ",".join(parts) + "]").encode(), len(parts)


def post(connection: http.client.HTTPConnection, body: bytes) -> int:
    connection.request("POST", "/invocations", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    return response.status


def measure(
    model: Path, body: bytes, probe: bytes, work: Path, max_batch_rows: int
) -> dict[str, float]:
    port = free_port()
    env = {
        **os.environ,
        "MLSTACK_MODEL_URI": str(model),
        "MLSTACK_PORT": str(port),
        "MLSTACK_HOST": "127.0.0.1",
        "MLSTACK_WORKERS": "1",
        "MLSTACK_MAX_BATCH_ROWS": str(max_batch_rows),
        "MLSTACK_WORK_DIR": str(work / f"serving-{port}"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                if post(connection, probe) == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.05)
        large = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        post(large, body)  # warm-up: the first large call may load scikit-learn's trees
        done = threading.Event()
        waits: list[float] = []

        def probe_loop() -> None:
            while not done.is_set():
                started = time.perf_counter()
                if post(connection, probe) != 200:
                    raise RuntimeError("a single-row request failed")
                waits.append(time.perf_counter() - started)

        prober = threading.Thread(target=probe_loop)
        prober.start()
        time.sleep(0.2)
        started = time.perf_counter()
        status = post(large, body)
        elapsed = time.perf_counter() - started
        done.set()
        prober.join()
        if status != 200:
            raise RuntimeError(f"the large request got {status}")
        return {"large_s": elapsed, "slowest_probe_s": max(waits), "probes": len(waits)}
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-body-bytes", type=int, default=ServingSettings.max_body_bytes)
    parser.add_argument(
        "--max-batch-rows",
        default=f"{ServingSettings.max_batch_rows},1000000",
        help="comma-separated MLSTACK_MAX_BATCH_ROWS values to compare (1000000: no chunking)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlstack-bench-") as scratch:
        work = Path(scratch)
        data, _ = write_demo_dataset(work / "data")
        rows = [
            [float(v) for v in line.split(",")[:-1]] for line in data.read_text().splitlines()[1:]
        ]
        body, count = largest_body(rows, args.max_body_bytes)
        probe = json.dumps(rows[:1]).encode()
        machine = f"{platform.machine()}, {os.cpu_count()} cores"
        print(f"machine: {machine}, Python {platform.python_version()}")
        print(f"largest request: {count:,} rows, {len(body):,} bytes")
        print(f"(MLSTACK_MAX_BODY_BYTES {args.max_body_bytes:,})\n")
        print("| model | MLSTACK_MAX_BATCH_ROWS | large request s | slowest other request s |")
        print("| --- | --- | --- | --- |")
        for title, algorithm in MODELS.items():
            command = [
                sys.executable,
                "-m",
                "training",
                "--data",
                str(data),
                "--algorithm",
                algorithm,
            ]
            subprocess.run(
                [*command, "--output-dir", str(work / algorithm)], check=True, capture_output=True
            )
            for batch_rows in map(int, args.max_batch_rows.split(",")):
                result = measure(work / algorithm / "model", body, probe, work, batch_rows)
                print(
                    f"| {title} | {batch_rows:,} | {result['large_s']:.2f} | "
                    f"{result['slowest_probe_s']:.3f} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
