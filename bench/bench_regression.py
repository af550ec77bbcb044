"""The server now against the server at an earlier commit, on this machine, in one run.

    uv run python bench/bench_regression.py --base 7103a08 [--rounds 3] [--duration 4]

Each side is its own tree (the earlier commit from `git archive`, the current one as checked
out, uncommitted changes included) run by this environment's interpreter, so the comparison is
of the code alone. Each side trains its models with its own `python -m training` on the same
data and serves them with its own `python -m serving serve`; both servers stay up, and `wrk`
drives them in alternation (base, current, base, ...) so that a drift in the machine's speed
meets both alike. Printed: each round's requests/s per side and the medians, with the ratio.

Scenarios: the 20-feature data of bench/harness_data.py, logistic regression and random
forest, 1 and 100 rows per request; one worker each by default (`--workers`), where the
per-request cost shows most.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_serving import SERVERS, post, stop, wrk
from harness_data import harness_rows, write_harness_dataset

from serving.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = {
    "logistic-1": ("linear", 1),
    "logistic-100": ("linear", 100),
    "forest-1": ("forest", 1),
    "forest-100": ("forest", 100),
}


def checkout(revision: str, into: Path) -> Path:
    """The tree of `revision`, written under `into`."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", revision],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    tree = into / commit
    tree.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit], check=True, capture_output=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def train(tree: Path, data: Path, algorithm: str, output: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "training", "--data", str(data), "--algorithm", algorithm,
         "--output-dir", str(output)],
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
        check=True,
        capture_output=True,
    )  # fmt: skip
    return output / "model"


def start(tree: Path, model: Path, work: Path, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    log = (work / f"serve-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", "serve"],
        cwd=tree,
        env={
            **os.environ,
            "PYTHONPATH": str(tree),
            "MLSTACK_MODEL_URI": str(model),
            "MLSTACK_HOST": "127.0.0.1",
            "MLSTACK_PORT": str(port),
            "MLSTACK_WORKERS": str(workers),
            "MLSTACK_WORK_DIR": str(work / f"serve-{port}"),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    return process, port


def ready(process: subprocess.Popen[bytes], port: int, body: bytes) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited")
        try:
            if post(port, SERVERS["mlstack"], body, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"the server on port {port} did not answer within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the earlier commit (any git revision)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=4, help="seconds of load per run")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = parser.parse_args()
    chosen = args.scenarios.split(",")
    unknown = sorted(set(chosen) - set(SCENARIOS))
    if unknown:
        parser.error(f"--scenarios: unknown {unknown}; allowed: {list(SCENARIOS)}")
    with tempfile.TemporaryDirectory(prefix="mlstack-regression-") as scratch:
        work = Path(scratch)
        data = write_harness_dataset(work / "data")
        sides = {"base": checkout(args.base, work / "trees"), "current": ROOT}
        results: dict[str, dict[str, list[float]]] = {}
        for key in chosen:
            algorithm, count = SCENARIOS[key]
            body = json.dumps(harness_rows(data, count)).encode()
            servers = {}
            try:
                for side, tree in sides.items():
                    model = train(tree, data, algorithm, work / side / algorithm)
                    servers[side] = start(tree, model, work, args.workers)
                for process, port in servers.values():
                    ready(process, port, body)
                    wrk(port, SERVERS["mlstack"], body, 1, work)  # warm-up
                results[key] = {side: [] for side in sides}
                for _ in range(args.rounds):
                    for side, (_, port) in servers.items():
                        outcome = wrk(port, SERVERS["mlstack"], body, args.duration, work)
                        if outcome["errors"]:
                            raise RuntimeError(f"{side}: {outcome['errors']:.0f} errors")
                        results[key][side].append(outcome["rps"])
                print(f"{key}: {results[key]}", file=sys.stderr, flush=True)
            finally:
                for process, _ in servers.values():
                    stop(process)
    report(args, results)


def report(args: argparse.Namespace, results: dict[str, dict[str, list[float]]]) -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"load: wrk -t2 -c8 -d{args.duration}s, {args.rounds} rounds alternating; "
        f"{args.workers} worker(s); base {args.base}"
    )
    print("\n| scenario | base requests/s | current requests/s | base median | current median "
          "| current / base |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for key, sides in results.items():
        base, current = statistics.median(sides["base"]), statistics.median(sides["current"])
        print(
            f"| {key} | {' / '.join(f'{v:,.0f}' for v in sides['base'])} "
            f"| {' / '.join(f'{v:,.0f}' for v in sides['current'])} "
            f"| {base:,.0f} | {current:,.0f} | {current / base:.2f} |"
        )


if __name__ == "__main__":
    main()
