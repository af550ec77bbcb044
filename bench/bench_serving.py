"""Serving benchmark: mlstack against MLflow, MLServer, BentoML, SageMaker's scikit-learn stack
and the HTTP floor.

    uv run python bench/bench_serving.py [--duration 10] [--repeat 2] [--servers mlstack,...]
        [--scenarios logistic-1,harness-forest-100,...]

Every server gets the same fitted scikit-learn pipelines (made by `python -m training`) and the
same request bytes, on 127.0.0.1, with two workers each (one per core), while `wrk` (Debian's
package; installed if missing and running as root) drives them from the same machine at
concurrency 8. Two more rows stand beside them: `mlstack-1`, mlstack with one worker, and
`http-floor`, one uvicorn worker configured as mlstack's (uvloop, httptools, no access log,
lifespan off) whose app reads the body and answers 200 `{}` without looking at it: the fastest
any server on this HTTP stack can be, so what separates mlstack-1 from it is mlstack's own work.

Scenarios (`--scenarios`, default all), each a model and a request size:
- on the demo data (30 features, 569 rows): `logistic-1`, `logistic-100`, `forest-1`,
  `forest-100` (logistic regression, random forest of 100 trees);
- on bench/harness_data.py's `make_classification(5000, 20, n_informative=10)`:
  `harness-logistic-1`, `harness-logistic-100`, `harness-forest-1`, `harness-forest-100`
  (its forest grows 100 full-depth trees).
Requests carry the dataset's first 1 or 100 rows.

Method: in each scenario, `--repeat` rounds; each round runs every server in turn (so a drift in
the machine's speed meets them all alike), and each run starts the server, waits for its first
successful prediction (cold start), warms it with 2 s of load, measures `--duration` seconds and
stops it, so nothing else is running while one is measured. The table shows, per server, the
median of its runs for requests/s, p50, p99, cold start and memory once warm (PSS of the whole
process tree, and RSS of its largest process), the errors of all runs summed (non-2xx and
socket errors), and the installed size of the server's environment. Below each table: mlstack
over the best peer by requests/s, and, for single-row requests, mlstack and mlstack-1 as a share
of http-floor's requests/s.

Peers are installed in their own virtual environments under bench/.peers (uv, pinned versions)
on first use; mlstack, mlstack-1 and http-floor share one holding only mlstack's `serving`
extra, as in its image, reinstalled from this tree at every run. The SageMaker scikit-learn
container is not on PyPI; its serving module (the default input/predict/output functions over
sagemaker-containers, gunicorn with gevent workers) is rebuilt in
bench/peers/sagemaker_sklearn_app.py without the nginx in front of it.
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
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from harness_data import harness_rows, write_harness_dataset

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
PEERS = ("mlflow", "mlserver", "bentoml", "sagemaker-sklearn")
"""The other projects' servers, against the best of which mlstack is compared."""
WORKERS = 2
CONCURRENCY = 8
WARM_UP_SECONDS = 2


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
    environment: str
    """The environment under bench/.peers it runs from (its installed size is reported)."""
    content_type: str = "application/json"


def _mlstack_with(workers: int) -> Callable[[Path, Path, int], Launch]:
    """mlstack's own `serve` command with `workers` processes answering."""

    def prepare(model: Path, work: Path, port: int) -> Launch:
        return Launch(
            [str(peer_python("mlstack")), "-m", "serving", "serve"],
            {
                "MLSTACK_MODEL_URI": str(model),
                "MLSTACK_PORT": str(port),
                "MLSTACK_HOST": "127.0.0.1",
                "MLSTACK_WORKERS": str(workers),
                "MLSTACK_WORK_DIR": str(work / f"mlstack-{port}"),
            },
        )

    return prepare


# uvicorn configured as serving/server.py configures it, minus what only a real server needs
# (the header deadline, draining). The body is read to its end, as any server must; the
# content-length header spares uvicorn's chunked encoding, which it picks when a response
# declares no length (uvicorn/protocols/http/httptools_impl.py, RequestResponseCycle.send).
FLOOR_APP = '''\
"""The HTTP floor: uvicorn as mlstack runs it, with an app that does no work."""

import sys

import uvicorn

FOUND = (200, [(b"content-type", b"application/json"), (b"content-length", b"2")], b"{}")
NOT_FOUND = (404, [(b"content-length", b"0")], b"")


async def app(scope, receive, send):
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    found = scope["method"] == "POST" and scope["path"] == "/invocations"
    status, headers, body = FOUND if found else NOT_FOUND
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


uvicorn.run(
    app, host="127.0.0.1", port=int(sys.argv[1]), loop="uvloop", http="httptools",
    lifespan="off", access_log=False, log_level="warning", proxy_headers=False,
    server_header=False,
)
'''


def _http_floor(model: Path, work: Path, port: int) -> Launch:
    app = work / "http_floor.py"
    app.write_text(FLOOR_APP)
    return Launch([str(peer_python("mlstack")), str(app), str(port)])


def _mlflow(model: Path, work: Path, port: int) -> Launch:
    python = peer_python("mlflow")
    saved = work / f"mlflow-{model.parent.name}"
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


def _rows_json(rows: list[list[float]]) -> bytes:
    return json.dumps(rows).encode()


SERVERS = {
    "mlstack": Server("mlstack", _mlstack_with(WORKERS), "/invocations", _rows_json, "mlstack"),
    "mlstack-1": Server("mlstack-1", _mlstack_with(1), "/invocations", _rows_json, "mlstack"),
    "http-floor": Server("http-floor", _http_floor, "/invocations", _rows_json, "mlstack"),
    "mlflow": Server(
        "mlflow",
        _mlflow,
        "/invocations",
        lambda rows: json.dumps({"inputs": rows}).encode(),
        "mlflow",
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
        "mlserver",
    ),
    "bentoml": Server(
        "bentoml", _bentoml, "/predict", lambda rows: json.dumps({"rows": rows}).encode(), "bentoml"
    ),
    "sagemaker-sklearn": Server(
        "sagemaker-sklearn", _sagemaker, "/invocations", _rows_json, "sagemaker-sklearn"
    ),
}


@dataclass(frozen=True)
class Scenario:
    """One model and one request size."""

    title: str
    dataset: str
    """`demo` (training.demo's data) or `harness` (bench/harness_data.py's)."""
    algorithm: str
    """`python -m training --algorithm`."""
    rows: int
    """Rows per request: the dataset's first ones."""


MODELS = {
    # scenario key prefix: (dataset, algorithm, what it is)
    "logistic": ("demo", "linear", "logistic regression, demo data (30 features)"),
    "forest": ("demo", "forest", "random forest (100 trees), demo data (30 features)"),
    "harness-logistic": ("harness", "linear", "logistic regression, 20 features"),
    "harness-forest": ("harness", "forest", "random forest (100 full-depth trees, 20 features)"),
}
SCENARIOS = {
    f"{prefix}-{rows}": Scenario(f"{what}, {rows} row{'s' * (rows > 1)}", dataset, algorithm, rows)
    for prefix, (dataset, algorithm, what) in MODELS.items()
    for rows in (1, 100)
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
                raise RuntimeError(f"{server.name} exited: {last_line(Path(log.name))}")
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
        wrk(port, server, body, WARM_UP_SECONDS, work)
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


def last_line(log: Path) -> str:
    """The log's last line, for a failure's one-line report (the scratch folder goes away)."""
    lines = log.read_text(errors="replace").strip().splitlines()
    return lines[-1][:300] if lines else f"nothing in its log {log.name}"


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
    bare = replace(SERVERS["mlstack"], name="bare", path="/")
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


def train(data: Path, algorithm: str, output: Path) -> Path:
    """A model made by the training package, as a user makes one; returns its model folder."""
    command = [sys.executable, "-m", "training", "--data", str(data), "--algorithm", algorithm]
    subprocess.run([*command, "--output-dir", str(output)], check=True, capture_output=True)
    return output / "model"


def train_models(work: Path) -> tuple[dict[str, Path], list[list[float]]]:
    """The demo data's logistic regression and forest, and the data's rows."""
    from training.demo import write_demo_dataset

    data, _ = write_demo_dataset(work / "data")
    models = {
        name: train(data, algorithm, work / name)
        for name, algorithm in (("logistic", "linear"), ("forest", "forest"))
    }
    rows = [[float(v) for v in line.split(",")[:-1]] for line in data.read_text().splitlines()[1:]]
    return models, rows


class Workbench:
    """The run's datasets and models in its scratch folder, each made when first needed."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self._data: dict[str, Path] = {}
        self._models: dict[tuple[str, str], Path] = {}

    def data(self, dataset: str) -> Path:
        if dataset not in self._data:
            # Each in its own folder: both write their spec as dataset.yaml beside the CSV.
            folder = self.work / f"{dataset}-data"
            if dataset == "demo":
                from training.demo import write_demo_dataset

                self._data[dataset] = write_demo_dataset(folder)[0]
            else:
                self._data[dataset] = write_harness_dataset(folder)
        return self._data[dataset]

    def model(self, dataset: str, algorithm: str) -> Path:
        key = (dataset, algorithm)
        if key not in self._models:
            output = self.work / f"{dataset}-{algorithm}"
            self._models[key] = train(self.data(dataset), algorithm, output)
        return self._models[key]


def run_scenario(
    scenario: Scenario, names: list[str], repeat: int, seconds: int, bench: Workbench
) -> dict[str, list[dict[str, Any]]]:
    """Every server's runs, `repeat` rounds of each server in turn."""
    model = bench.model(scenario.dataset, scenario.algorithm)
    rows = harness_rows(bench.data(scenario.dataset), scenario.rows)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for round_ in range(repeat):
        for name in names:
            try:
                outcome = measure(SERVERS[name], model, rows, seconds, bench.work)
            except (RuntimeError, subprocess.CalledProcessError) as error:
                outcome = {"failed": str(error)}
            runs[name].append(outcome)
            print(
                f"{scenario.title} / {name} / run {round_ + 1}: {outcome}",
                file=sys.stderr,
                flush=True,
            )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of load per run")
    parser.add_argument("--repeat", type=int, default=2, help="runs per server and scenario")
    parser.add_argument(
        "--servers", default=",".join(SERVERS), help=f"comma-separated, of {', '.join(SERVERS)}"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, of {', '.join(SCENARIOS)}",
    )
    args = parser.parse_args()
    names, chosen = args.servers.split(","), args.scenarios.split(",")
    choices: tuple[tuple[str, list[str], dict[str, Any]], ...] = (
        ("--servers", names, SERVERS),
        ("--scenarios", chosen, SCENARIOS),
    )
    for option, values, allowed in choices:
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            parser.error(f"{option}: unknown {unknown}; allowed: {list(allowed)}")
    if args.duration < 1 or args.repeat < 1:
        parser.error(f"--duration and --repeat must be at least 1: {args.duration}, {args.repeat}")
    if shutil.which("wrk") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
    environments = dict.fromkeys(SERVERS[name].environment for name in names)
    for environment in environments:
        peer_python(environment, refresh=environment == "mlstack")
    with tempfile.TemporaryDirectory(prefix="mlstack-bench-") as scratch:
        bench = Workbench(Path(scratch))
        results = {
            key: run_scenario(SCENARIOS[key], names, args.repeat, args.duration, bench)
            for key in chosen
        }
        bare = bare_uvicorn_rss(bench.model("demo", "linear"), bench.work)
    sizes = {env: installed_mib(PEERS_DIR / env) for env in environments}
    report(results, bare, sizes, args.duration, args.repeat)


COLUMNS = (
    "server", "requests/s", "each run", "p50 ms", "p99 ms", "errors", "cold start s",
    "PSS MiB (all processes)", "largest RSS MiB", "installed MiB",
)  # fmt: skip
MEDIANS = ("rps", "p50_ms", "p99_ms", "cold_start_s", "pss_mib", "largest_rss_mib")


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Medians of the runs that finished (errors summed), or None when none did."""
    done = [run for run in runs if "failed" not in run]
    if not done:
        return None
    summary: dict[str, Any] = {key: statistics.median(run[key] for run in done) for key in MEDIANS}
    summary["errors"] = sum(run["errors"] for run in done)
    summary["each_rps"] = [run["rps"] for run in done]
    return summary


def _row(name: str, runs: list[dict[str, Any]], installed: float) -> str:
    r = summarise(runs)
    if r is None:
        return f"| {name} | failed |" + " |" * (len(COLUMNS) - 2)
    cells = [
        name, f"{r['rps']:,.0f}", " / ".join(f"{v:,.0f}" for v in r["each_rps"]),
        f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['errors']:.0f}",
        f"{r['cold_start_s']:.2f}", f"{r['pss_mib']:.0f}", f"{r['largest_rss_mib']:.0f}",
        f"{installed:.0f}",
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def comparisons(scenario: Scenario, servers: dict[str, list[dict[str, Any]]]) -> list[str]:
    """mlstack against the best peer, and (single rows) against the HTTP floor, by requests/s."""
    rps = {name: r["rps"] for name, runs in servers.items() if (r := summarise(runs))}
    lines = []
    peers = {name: rps[name] for name in PEERS if name in rps}
    if "mlstack" in rps and peers:
        best = max(peers, key=peers.__getitem__)
        lines.append(
            f"- mlstack over the best peer ({best}): {rps['mlstack']:,.0f} / "
            f"{peers[best]:,.0f} = {rps['mlstack'] / peers[best]:.1f}x"
        )
    if scenario.rows == 1 and "http-floor" in rps:
        floor = rps["http-floor"]
        lines += [
            f"- {name} at {100 * rps[name] / floor:.0f} % of http-floor's {floor:,.0f}/s"
            for name in ("mlstack", "mlstack-1")
            if name in rps
        ]
    for name, runs in servers.items():
        failed = [run["failed"] for run in runs if "failed" in run]
        if failed:
            lines.append(f"- {name}: {len(failed)} of {len(runs)} runs failed: {failed[0]}")
    return lines


def report(
    results: dict[str, dict[str, list[dict[str, Any]]]],
    bare: float,
    sizes: dict[str, float],
    seconds: int,
    repeat: int,
) -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(
        f"load: wrk -t2 -c{CONCURRENCY} on the same machine, {seconds} s x {repeat} per server "
        f"after a {WARM_UP_SECONDS} s warm-up each, servers alternating; medians (errors: all "
        f"runs); {WORKERS} workers each, one for mlstack-1, http-floor and mlserver"
    )
    for key, servers in results.items():
        scenario = SCENARIOS[key]
        print(f"\n### {scenario.title} (`{key}`)\n")
        print("| " + " | ".join(COLUMNS) + " |")
        print("|" + " --- |" * len(COLUMNS))
        for name, runs in servers.items():
            print(_row(name, runs, sizes.get(SERVERS[name].environment, 0.0)))
        lines = comparisons(scenario, servers)
        if lines:
            print("\n" + "\n".join(lines))
    print(f"\nbare uvicorn + scikit-learn holding the logistic model, warm: RSS {bare:.0f} MiB")


if __name__ == "__main__":
    main()
