"""What data capture costs the server: requests/s with capture at 10 % and 100 % against off.

    uv run python bench/bench_capture.py [--duration 10] [--repeat 3]

The demo logistic regression (made by the training package), served by mlstack with two
workers from an environment holding only the `serving` extra, driven by `wrk` at concurrency 8
on the same machine (as bench_serving.py does), with single-row and 100-row JSON requests. Each
scenario runs `--repeat` times in alternation, capture off then on, and the median is reported.
The capture goes to an S3 emulator (moto_server) on the same machine, so the emulator's own CPU
use is charged to the capture run: the figure is a pessimistic one. Every request answered is
checked to be in the capture afterwards (at 10 %, about a tenth of them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench_serving import (
    CONCURRENCY,
    SERVERS,
    WORKERS,
    peer_python,
    post,
    process_tree,
    stop,
    train_models,
    wrk,
)
from emulator import running_emulator

from serving.ports import free_port

BUCKET = "bench-capture"


def run(
    model: Path, request_rows: list[list[float]], seconds: int, work: Path, env: dict[str, str]
) -> dict[str, Any]:
    """Start mlstack as bench_serving.py does (with `env` added), warm it up, load it, stop it.

    Besides wrk's figures: the predictions it answered (warm-up included) and the CPU time its
    processes spent from the first answer to their exit, the capture's last writes included,
    per answered request. CPU per request holds still where requests/s swings with whatever
    else the machine runs."""
    server = SERVERS["mlstack"]
    port = free_port()
    launch = server.prepare(model, work, port)
    body = server.body(request_rows)
    process = subprocess.Popen(
        launch.command,
        env={**os.environ, **launch.env, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if post(port, server, body, timeout=2)[0] == 200:
                break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError("mlstack did not start")
        time.sleep(0.05)
    started_cpu = sum(cpu_seconds(pid) for pid in process_tree(process.pid))
    wrk(port, server, body, 2, work)  # warm-up
    result = wrk(port, server, body, seconds, work)
    time.sleep(1.5)  # every worker has published its counts
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
        metrics = response.read().decode()
    result["answered"] = sum(
        float(count)
        for count in re.findall(
            r'^mlstack_requests_total\{route="/invocations",status="200"\} (\S+)$',
            metrics,
            re.MULTILINE,
        )
    )
    # The last capture buffers are written on the way out; the exit status's resource usage
    # holds the workers' CPU time too (the server waits for them).
    os.killpg(process.pid, signal.SIGTERM)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    spent = usage.ru_utime + usage.ru_stime - started_cpu
    result["cpu_us_per_request"] = spent / result["answered"] * 1e6
    return result


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used, its reaped children's included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def captured_records(s3: Any, prefix: str) -> int:
    total = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            total += body.count(b"\n")
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per scenario and setting")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
    peer_python("mlstack", refresh=True)
    with (
        running_emulator(BUCKET) as (emulator, env, s3),
        tempfile.TemporaryDirectory(prefix="mlstack-capture-bench-") as scratch,
    ):
        work = Path(scratch)
        models, rows = train_models(work)
        print(
            f"machine: {platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}"
        )
        print(
            f"load: wrk -t2 -c{CONCURRENCY} -d{args.duration}s, {WORKERS} workers, "
            f"median of {args.repeat} alternating runs\n"
        )
        print(
            "| request | capture | requests/s | p50 ms | p99 ms | errors | captured "
            "| server CPU µs/request | emulator CPU µs/request |"
        )
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for label, request_rows in (("1 row", rows[:1]), ("100 rows", rows[:100])):
            runs: dict[str, list[dict[str, Any]]] = {"off": [], "10 %": [], "100 %": []}
            for attempt in range(args.repeat):
                prefix = f"{len(request_rows)}-{attempt}"
                settings = {
                    "off": env,
                    **{
                        f"{percent} %": {
                            **env,
                            "MLSTACK_CAPTURE_URI": f"s3://{BUCKET}/kubernetes",
                            "MLSTACK_CAPTURE_PERCENT": str(percent),
                            "MLSTACK_CAPTURE_ENDPOINT": f"{prefix}-{percent}",
                        }
                        for percent in (10, 100)
                    },
                }
                for setting, server_env in settings.items():
                    emulator_cpu = cpu_seconds(emulator.pid)
                    result = run(models["logistic"], request_rows, args.duration, work, server_env)
                    emulator_cpu = cpu_seconds(emulator.pid) - emulator_cpu
                    result["emulator_cpu_us_per_request"] = emulator_cpu / result["answered"] * 1e6
                    if setting != "off":
                        endpoint = server_env["MLSTACK_CAPTURE_ENDPOINT"]
                        result["captured"] = captured_records(s3, f"kubernetes/{endpoint}/")
                    runs[setting].append(result)
                    print(f"{label} / {setting}: {json.dumps(result)}", file=sys.stderr)
            for setting, results in runs.items():
                print(_row(label, setting, results))


def _row(label: str, setting: str, results: list[dict[str, Any]]) -> str:
    def median(key: str) -> float:
        return float(statistics.median(r[key] for r in results))

    captured = (
        "n/a"
        if setting == "off"
        else f"{sum(r['captured'] for r in results):,} of "
        f"{sum(r['answered'] for r in results):,.0f} answered"
    )
    return (
        f"| {label} | {setting} | {median('rps'):,.0f} | {median('p50_ms'):.2f} | "
        f"{median('p99_ms'):.2f} | {median('errors'):.0f} | {captured} | "
        f"{median('cpu_us_per_request'):.1f} | {median('emulator_cpu_us_per_request'):.1f} |"
    )


if __name__ == "__main__":
    main()
