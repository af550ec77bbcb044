"""Serving benchmark: mlstack against MLflow, MLServer, BentoML and SageMaker's scikit-learn stack.

    uv run python bench/bench_serving.py [--duration 10] [--servers mlstack,mlflow,...]

Every server gets the same fitted scikit-learn pipelines (made by `python -m training`) and the
same request bytes, on 127.0.0.1, with two workers each (one per core), while `wrk` (Debian's
package; installed if missing and running as root) drives them from the same machine at
concurrency 8. Scenarios: the demo logistic regression with single-row and 100-row JSON
requests, and a 100-tree random forest with single-row requests. For each: requests/s, p50,
p99, errors (non-2xx and socket errors), cold start (process start to the first successful
prediction), memory once warm (PSS of the whole process tree, and RSS of its largest process)
and the installed size of the server's environment.

Peers are installed in their own virtual environments under bench/.peers (uv, pinned versions)
on first use. The SageMaker scikit-learn container is not on PyPI; its serving module (the
default input/predict/output functions over sagemaker-containers, gunicorn with gevent
workers) is rebuilt in bench/peers/sagemaker_sklearn_app.py without the nginx in front of it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from serving.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
PEERS_DIR = ROOT / "bench" / ".peers"
PEER_SOURCES = ROOT / "bench" / "peers"
SKLEARN = "scikit-learn==1.9.1"
PEER_PACKAGES = {
    # mlstack runs from an environment with only its `serving` extra, as in its image.
    "mlstack": [f"{ROOT}[serving]"],
    "mlflow": ["mlflow==3.17.2", SKLEARN],
    "mlserver": ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", SKLEARN],
    "bentoml": ["bentoml==1.4.39", SKLEARN],
    "sagemaker-sklearn": [
        "sagemaker-containers==2.8.6.post2",
        "gunicorn==23.0.0",
        "gevent==25.5.1",
        # sagemaker-containers' generated protobuf code predates protobuf 4.
        "protobuf==3.20.3",
        "setuptools==75.8.0",  # it imports pkg_resources
        # Flask 1.1, which it pins, needs the Jinja2 / Werkzeug of its time.
        "jinja2==3.0.3",
        "itsdangerous==2.0.1",
        "markupsafe==2.0.1",
        "werkzeug==2.0.3",
        SKLEARN,
    ],
}
WORKERS = 2
CONCURRENCY = 8


def peer_python(name: str, refresh: bool = False) -> Path:
    """The server's interpreter, creating its environment on first use (or when `refresh`)."""
    venv = PEERS_DIR / name
    marker = venv / ".installed"
    if refresh or not marker.exists():
        if not (venv / "bin" / "python").exists():
            subprocess.run(["uv", "venv", "-q", "--python", "3.11", str(venv)], check=True)
        python = str(venv / "bin" / "python")
        install = [
            "uv",
            "pip",
            "install",
            "-q",
            "--python",
            python,
            "--reinstall-package",
            "mlstack",
        ]
        subprocess.run([*install, *PEER_PACKAGES[name]], check=True)
        marker.write_text(" ".join(PEER_PACKAGES[name]))
    return venv / "bin" / "python"


@dataclass
class Launch:
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


@dataclass
class Server:
    """How to start one server on a model, and what a request to it looks like."""

    name: str
    prepare: Callable[[Path, Path, int], Launch]
    path: str
    body: Callable[[list[list[float]]], bytes]
    environment: Callable[[], Path]
    """The virtual environment it runs from (its installed size is reported)."""
    content_type: str = "application/json"


def _mlstack(model: Path, work: Path, port: int) -> Launch:
    return Launch(
        [str(peer_python("mlstack")), "-m", "serving", "serve"],
        {
            "MLSTACK_MODEL_URI": str(model),
            "MLSTACK_PORT": str(port),
            "MLSTACK_HOST": "127.0.0.1",
            "MLSTACK_WORKERS": str(WORKERS),
            "MLSTACK_WORK_DIR": str(work / f"mlstack-{port}"),
        },
    )


def _mlflow(model: Path, work: Path, port: int) -> Launch:
    python = peer_python("mlflow")
    saved = work / "mlflow-model"
    if not saved.exists():
        subprocess.run(
            [
                str(python),
                "-c",
                "import sys, joblib, mlflow.sklearn; "
                "mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2], "
                "serialization_format='cloudpickle')",
                str(model / "model.joblib"),
                str(saved),
            ],
            check=True,
            capture_output=True,
        )
    return Launch(
        [
            str(python.parent / "mlflow"),
            "models",
            "serve",
            "-m",
            str(saved),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "--env-manager",
            "local",
            "-w",
            str(WORKERS),
        ],
        # MLflow starts uvicorn by name, so its environment's bin must come first on PATH.
        {"PATH": f"{python.parent}:{os.environ.get('PATH', '')}"},
    )


def _mlserver(model: Path, work: Path, port: int) -> Launch:
    python = peer_python("mlserver")
    folder = work / f"mlserver-{port}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(model / "model.joblib", folder / "model.joblib")
    (folder / "model-settings.json").write_text(
        json.dumps(
            {
                "name": "model",
                "implementation": "mlserver_sklearn.SKLearnModel",
                "parameters": {"uri": "./model.joblib"},
            }
        )
    )
    (folder / "settings.json").write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "http_port": port,
                "grpc_port": free_port(),
                "metrics_port": free_port(),
                # MLServer 1.7's parallel inference pool fails to start on Python 3.11
                # ("no current event loop"), so it serves from one process.
                "parallel_workers": 0,
            }
        )
    )
    return Launch([str(python.parent / "mlserver"), "start", str(folder)])


def _bentoml(model: Path, work: Path, port: int) -> Launch:
    python = peer_python("bentoml")
    folder = work / "bentoml"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(PEER_SOURCES / "bentoml_service.py", folder / "service.py")
    return Launch(
        [
            str(python.parent / "bentoml"),
            "serve",
            "service:Model",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        {
            "MODEL_PATH": str(model / "model.joblib"),
            "BENTOML_WORKERS": str(WORKERS),
            "BENTOML_HOME": str(work / "bentoml-home"),
        },
        folder,
    )


def _sagemaker(model: Path, work: Path, port: int) -> Launch:
    python = peer_python("sagemaker-sklearn")
    return Launch(
        [
            str(python.parent / "gunicorn"),
            "-k",
            "gevent",
            "-w",
            str(WORKERS),
            "--worker-connections",
            str(1000 * WORKERS),
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            str(PEER_SOURCES),
            "--log-level",
            "warning",
            "sagemaker_sklearn_app:main",
        ],
        {"SM_MODEL_DIR": str(model)},
    )


SERVERS = {
    "mlstack": Server(
        "mlstack",
        _mlstack,
        "/invocations",
        lambda rows: json.dumps(rows).encode(),
        environment=lambda: PEERS_DIR / "mlstack",
    ),
    "mlflow": Server(
        "mlflow",
        _mlflow,
        "/invocations",
        lambda rows: json.dumps({"inputs": rows}).encode(),
        environment=lambda: PEERS_DIR / "mlflow",
    ),
    "mlserver": Server(
        "mlserver",
        _mlserver,
        "/v2/models/model/infer",
        lambda rows: json.dumps(
            {
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [len(rows), len(rows[0])],
                        "datatype": "FP64",
                        "data": rows,
                    }
                ]
            }
        ).encode(),
        environment=lambda: PEERS_DIR / "mlserver",
    ),
    "bentoml": Server(
        "bentoml",
        _bentoml,
        "/predict",
        lambda rows: json.dumps({"rows": rows}).encode(),
        environment=lambda: PEERS_DIR / "bentoml",
    ),
    "sagemaker-sklearn": Server(
        "sagemaker-sklearn",
        _sagemaker,
        "/invocations",
        lambda rows: json.dumps(rows).encode(),
        environment=lambda: PEERS_DIR / "sagemaker-sklearn",
    ),
}


def post(port: int, server: Server, body: bytes, timeout: float = 5) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{server.path}",
        data=body,
        headers={"Content-Type": server.content_type},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def process_tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def memory(root: int) -> tuple[float, float]:
    """(PSS of the whole tree, RSS of its largest process), in MiB."""
    pss_total, rss_max = 0, 0
    for pid in process_tree(root):
        try:
            fields = dict(
                line.split(":", 1)
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]
            )
        except OSError:
            continue
        pss_total += int(fields["Pss"].split()[0])
        rss_max = max(rss_max, int(fields["Rss"].split()[0]))
    return pss_total / 1024, rss_max / 1024


def installed_mib(environment: Path) -> float:
    site = next(environment.glob("lib/python3*/site-packages"))
    total = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    return total / (1 << 20)


def wrk(port: int, server: Server, body: bytes, seconds: int, work: Path) -> dict[str, float]:
    script = work / "request.lua"
    text = body.decode()
    script.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "{server.content_type}"\n'
        f"wrk.body = [==[{text}]==]\n"
    )
    result = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{CONCURRENCY}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}{server.path}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    out = result.stdout

    def latency(percentile: str) -> float:
        match = re.search(rf"{percentile}%\s+([\d.]+)(us|ms|s)", out)
        if not match:
            return float("nan")
        value, unit = float(match[1]), match[2]
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    requests = re.search(r"(\d+) requests in", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]),  # type: ignore[index]
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "errors": float(
            (int(non_2xx[1]) if non_2xx else 0)
            + (sum(map(int, sockets.groups())) if sockets else 0)
        ),
        "requests": float(requests[1]) if requests else 0.0,
    }


def measure(
    server: Server, model: Path, rows: list[list[float]], seconds: int, work: Path
) -> dict[str, Any]:
    port = free_port()
    launch = server.prepare(model, work, port)
    body = server.body(rows)
    log = (work / f"{server.name}-{port}.log").open("wb")
    started = time.monotonic()
    process = subprocess.Popen(
        launch.command,
        env={**os.environ, **launch.env},
        cwd=launch.cwd,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{server.name} exited: see {log.name}")
            if time.monotonic() - started > 180:
                raise RuntimeError(f"{server.name} did not answer within 180 s")
            try:
                status, answer = post(port, server, body, timeout=2)
            except OSError:
                time.sleep(0.02)
                continue
            if status == 200:
                cold = time.monotonic() - started
                break
            time.sleep(0.02)
        wrk(port, server, body, 2, work)  # warm-up
        result = wrk(port, server, body, seconds, work)
        pss, rss = memory(process.pid)
        return {
            **result,
            "cold_start_s": cold,
            "pss_mib": pss,
            "largest_rss_mib": rss,
            "sample": answer[:120].decode(errors="replace"),
        }
    finally:
        stop(process)
        log.close()


def stop(process: subprocess.Popen[bytes]) -> None:
    """End the server's whole process group (some servers leave helpers behind)."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def bare_uvicorn_rss(model: Path, work: Path) -> float:
    """RSS of a bare uvicorn + scikit-learn process holding the same model, once warm."""
    port = free_port()
    app = work / "bare_app.py"
    app.write_text(
        "import joblib, json, numpy as np\n"
        f"model = joblib.load({str(model / 'model.joblib')!r})\n"
        "async def app(scope, receive, send):\n"
        "    body = b''\n"
        "    while True:\n"
        "        message = await receive()\n"
        "        body += message.get('body', b'')\n"
        "        if not message.get('more_body'): break\n"
        "    rows = np.asarray(json.loads(body))\n"
        "    out = json.dumps(model.predict_proba(rows).tolist()).encode()\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': out})\n"
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=work,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        start_new_session=True,
    )
    bare = Server("bare", _mlstack, "/", lambda rows: json.dumps(rows).encode(), Path.cwd)
    try:
        for _ in range(600):
            try:
                if post(port, bare, json.dumps([[14.0] * 30]).encode())[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        wrk(port, bare, json.dumps([[14.0] * 30]).encode(), 3, work)
        return memory(process.pid)[1]
    finally:
        stop(process)


def train_models(work: Path) -> tuple[dict[str, Path], list[list[float]]]:
    """The benchmark's models, made by the training package from the demo data."""
    from training.demo import write_demo_dataset

    data, _ = write_demo_dataset(work / "data")
    models = {}
    for name, algorithm in (("logistic", "linear"), ("forest", "forest")):
        command = [sys.executable, "-m", "training", "--data", str(data), "--algorithm", algorithm]
        subprocess.run(
            [*command, "--output-dir", str(work / name)], check=True, capture_output=True
        )
        models[name] = work / name / "model"
    rows = [[float(v) for v in line.split(",")[:-1]] for line in data.read_text().splitlines()[1:]]
    return models, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per scenario")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument(
        "--scenarios",
        default="",
        help="comma-separated: logistic-1, logistic-100, forest-1, forest-100; default all",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
    names = args.servers.split(",")
    for name in names:
        peer_python(name, refresh=name == "mlstack")
    with tempfile.TemporaryDirectory(prefix="mlstack-bench-") as scratch:
        work = Path(scratch)
        models, rows = train_models(work)
        scenarios = {
            "logistic-1": ("logistic, 1 row", models["logistic"], rows[:1]),
            "logistic-100": ("logistic, 100 rows", models["logistic"], rows[:100]),
            "forest-1": ("random forest (100 trees), 1 row", models["forest"], rows[:1]),
            "forest-100": ("random forest (100 trees), 100 rows", models["forest"], rows[:100]),
        }
        chosen = args.scenarios.split(",") if args.scenarios else list(scenarios)
        unknown = sorted(set(chosen) - set(scenarios))
        if unknown:
            parser.error(f"--scenarios: unknown {unknown}; allowed: {list(scenarios)}")
        results: dict[str, dict[str, dict[str, Any]]] = {}
        for key in chosen:
            scenario, model, request_rows = scenarios[key]
            results[scenario] = {}
            for name in names:
                try:
                    results[scenario][name] = measure(
                        SERVERS[name], model, request_rows, args.duration, work
                    )
                except (RuntimeError, subprocess.CalledProcessError) as error:
                    results[scenario][name] = {"failed": str(error)}
                print(
                    f"{scenario} / {name}: {results[scenario][name]}", file=sys.stderr, flush=True
                )
        bare = bare_uvicorn_rss(models["logistic"], work)
        sizes = {name: installed_mib(SERVERS[name].environment()) for name in names}
    report(results, bare, sizes, args.duration)


COLUMNS = (
    "server", "requests/s", "p50 ms", "p99 ms", "errors", "cold start s",
    "PSS MiB (all processes)", "largest RSS MiB", "installed MiB",
)  # fmt: skip


def _row(name: str, r: dict[str, Any], installed: float) -> str:
    if "failed" in r:
        return f"| {name} | failed: {r['failed']} |" + " |" * (len(COLUMNS) - 2)
    cells = [
        name, f"{r['rps']:,.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['errors']:.0f}",
        f"{r['cold_start_s']:.2f}", f"{r['pss_mib']:.0f}", f"{r['largest_rss_mib']:.0f}",
        f"{installed:.0f}",
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def report(
    results: dict[str, dict[str, dict[str, Any]]],
    bare: float,
    sizes: dict[str, float],
    seconds: int,
) -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"load: wrk -t2 -c{CONCURRENCY} -d{seconds}s on the same machine; {WORKERS} workers each")
    for scenario, servers in results.items():
        print(f"\n### {scenario}\n")
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + " --- |" * len(COLUMNS))
        for name, result in servers.items():
            print(_row(name, result, sizes.get(name, 0.0)))
    print(f"\nbare uvicorn + scikit-learn holding the logistic model, warm: RSS {bare:.0f} MiB")


if __name__ == "__main__":
    main()
