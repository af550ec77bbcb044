"""Which engine scores a random forest on the request path, measured on one core.

For four forests trained with `mlstack-train --algorithm forest`'s settings (the demo forest,
and 100 full-depth trees on 5,000 synthetic rows of 20 features: two classes, three classes,
regression), each engine is timed at 1-1,000 rows per call and on one 100,000-row chunk (batch
scoring), and its answers compared with scikit-learn's on the same rows and on rows sitting on
the forest's thresholds (and one float32 or float64 step either side), where an engine that
compares in another precision than scikit-learn answers differently. The engines:

- numpy walk (before): every tree walked at once in numpy, as the server did until now;
- numpy walk, compacted: the same, dropping each (row, tree) once it reaches its leaf;
- scikit-learn: the fitted pipeline's predict_proba / predict;
- onnxruntime, skl2onnx: skl2onnx's conversion (DoubleTensorType input) run by ONNX Runtime;
- treelite: treelite.sklearn.import_model, scored by treelite.gtil.predict;
- onnxruntime, TreeEnsemble 5: the fast path's forest engine (mlstack_common.forest_engine).

`--probes` adds each engine's import time, load time and memory (a fresh process each, on the
two-class forest); `--sizes` the installed size of each library with its dependencies (fresh
virtualenvs, as bench/bench_size.py builds them).

Run, with the engines that are not in the project's environment added to a throwaway one:
    OMP_NUM_THREADS=1 uv run --with treelite --with skl2onnx --with onnx \\
        python bench/bench_forest_engines.py --probes --sizes
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# One thread, as a serving worker runs; set before numpy loads its thread pools.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # see mlstack_common/forest_engine.py

import numpy as np  # noqa: E402 (after the thread settings)

Engine = Callable[[np.ndarray], np.ndarray]
SIZES = (1, 10, 100, 200, 500, 1000)
CHUNK = 100_000
PROBE_ROWS = 800
CHOSEN = "onnxruntime, TreeEnsemble 5"


@dataclass
class Forest:
    """A fitted forest pipeline, its fast path and rows like the ones it was trained on."""

    name: str
    pipeline: Any
    compiled: Any
    rows: np.ndarray
    classifier: bool


def _per_call_ms(evaluate: Engine, rows: np.ndarray) -> float:
    """The best of five 0.1 s windows: the machine is shared, and the least disturbed window is
    the closest to what the engine costs."""
    evaluate(rows)
    best = float("inf")
    for _ in range(5):
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < 0.1:
            evaluate(rows)
            calls += 1
        best = min(best, (time.perf_counter() - started) / calls * 1000)
    return best


def _demo_forest(scratch: Path) -> Forest:
    from mlstack_common.artifact import load_model_dir
    from mlstack_common.fastpath import compile_pipeline
    from training.cli import main as train
    from training.demo import write_demo_dataset

    data, _ = write_demo_dataset(scratch / "data")
    out = scratch / "out"
    with contextlib.redirect_stdout(io.StringIO()):  # its summary is not part of the report
        train(["--data", str(data), "--output-dir", str(out), "--algorithm", "forest"])
    pipeline, metadata = load_model_dir(out / "model")
    rows = np.loadtxt(data, delimiter=",", skiprows=1, usecols=range(len(metadata.features)))
    compiled = compile_pipeline(pipeline, metadata)
    return Forest("demo (569 rows, 30 features, 2 classes)", pipeline, compiled, rows, True)


def _synthetic_forest(task: str) -> Forest:
    from sklearn.datasets import make_classification, make_regression

    from mlstack_common.artifact import Feature, ModelMetadata, Task
    from mlstack_common.fastpath import compile_pipeline
    from training.model import build_pipeline
    from training.settings import Hyperparameters

    x: np.ndarray
    y: np.ndarray
    if task == "regression":
        x, y = make_regression(5000, 20, random_state=0)
    else:
        classes = 3 if task == "multiclass" else 2
        x, y = make_classification(5000, 20, n_informative=10, n_classes=classes, random_state=0)
    features = tuple(
        Feature(name=f"x{i}", type="numeric", minimum=float(low), maximum=float(high))
        for i, (low, high) in enumerate(zip(x.min(axis=0), x.max(axis=0), strict=True))
    )
    kind: Task = "regression" if task == "regression" else "classification"
    pipeline = build_pipeline(kind, features, Hyperparameters(algorithm="forest")).fit(x, y)
    classes_ = tuple(str(c) for c in getattr(pipeline, "classes_", ()))
    metadata = ModelMetadata(
        model_name=task, task=kind, features=features, target="y", classes=classes_
    )
    compiled = compile_pipeline(pipeline, metadata)
    name = f"{task} (5,000 rows, 20 features, full depth)"
    return Forest(name, pipeline, compiled, x, task != "regression")


def _preprocess(arrays: dict[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
    filled = np.where(np.isnan(rows), arrays["fill"], rows)
    values: np.ndarray = (filled - arrays["mean"]) / arrays["scale"]
    return values


def numpy_walk(arrays: dict[str, np.ndarray], classifier: bool) -> Engine:
    """The walk the server used before the forest engine: every (row, tree) one step a level."""

    def evaluate(rows: np.ndarray) -> np.ndarray:
        values = _preprocess(arrays, rows).astype(np.float32).astype(np.float64)
        index = np.arange(len(values))[:, None]
        node = np.broadcast_to(arrays["roots"], (len(values), len(arrays["roots"]))).copy()
        for _ in range(int(arrays["depth"][0])):
            feature = arrays["feature"][node]
            left = values[index, feature] <= arrays["threshold"][node]
            node = np.where(left, arrays["left"][node], arrays["right"][node])
        mean: np.ndarray = arrays["leaf"][node].mean(axis=1)
        return mean if classifier else mean[:, 0]

    return evaluate


def compacted_walk(arrays: dict[str, np.ndarray], classifier: bool) -> Engine:
    """The numpy walk on a shrinking set: a (row, tree) leaves it at its leaf, so the work is
    the sum of path lengths, not rows x trees x the deepest path."""
    count = len(arrays["left"])
    splits = arrays["left"] != np.arange(count)
    children = np.empty(2 * count, dtype=np.intp)
    children[0::2], children[1::2] = arrays["left"], arrays["right"]
    feature = arrays["feature"].astype(np.intp)
    threshold, roots, leaf = arrays["threshold"], arrays["roots"], arrays["leaf"]

    def evaluate(rows: np.ndarray) -> np.ndarray:
        values = _preprocess(arrays, rows).astype(np.float32).astype(np.float64)
        width, trees = values.shape[1], len(roots)
        flat = values.ravel()
        node = np.tile(roots, len(values)).astype(np.intp)
        base = np.repeat(np.arange(len(values)) * width, trees)
        position = np.arange(len(node))
        reached = np.empty(len(node), dtype=np.intp)
        while len(node):
            node = children[2 * node + (flat[base + feature[node]] > threshold[node])]
            done = ~splits[node]
            reached[position[done]] = node[done]
            keep = ~done
            node, base, position = node[keep], base[keep], position[keep]
        mean: np.ndarray = leaf[reached.reshape(len(values), trees)].mean(axis=1)
        return mean if classifier else mean[:, 0]

    return evaluate


def skl2onnx_engine(forest: Forest) -> Engine | str | None:
    """skl2onnx's own conversion of the estimator, the preprocessing kept in numpy. It emits
    ai.onnx.ml TreeEnsembleClassifier/Regressor, whose outputs are float32 whatever the input
    (onnx/defs/traditionalml/defs.cc), so it cannot be exact to 1e-9; timed for comparison.
    A string says why there is no engine."""
    if importlib.util.find_spec("skl2onnx") is None:
        return None
    from mlstack_common.forest_engine import import_onnxruntime

    to_onnx = importlib.import_module("skl2onnx").to_onnx
    double = importlib.import_module("skl2onnx.common.data_types").DoubleTensorType

    onnxruntime = import_onnxruntime()
    estimator = forest.pipeline.steps[-1][1]
    width = forest.rows.shape[1]
    options = {id(estimator): {"zipmap": False}} if forest.classifier else None
    model = to_onnx(
        estimator,
        initial_types=[("rows", double([None, width]))],
        target_opset={"": 18, "ai.onnx.ml": 3},
        options=options,
    )
    settings = onnxruntime.SessionOptions()
    settings.intra_op_num_threads = settings.inter_op_num_threads = 1
    try:
        session = onnxruntime.InferenceSession(model.SerializeToString(), settings)
    except Exception as error:  # noqa: BLE001 (reported in the table)
        return f"ONNX Runtime refuses its model: {str(error).splitlines()[0][-120:]}"
    output = session.get_outputs()[-1].name
    arrays = forest.compiled.arrays

    def evaluate(rows: np.ndarray) -> np.ndarray:
        values = _preprocess(arrays, rows).astype(np.float32).astype(np.float64)
        (scores,) = session.run([output], {"rows": values})
        return (
            np.asarray(scores, dtype=np.float64)
            .reshape(len(rows), -1)
            .squeeze(axis=None if forest.classifier else 1)
        )

    return evaluate


def treelite_engine(forest: Forest) -> Engine | None:
    """treelite 4's importer and its only predictor, gtil (the compiler moved to tl2cgen)."""
    if importlib.util.find_spec("treelite") is None:
        return None
    treelite = importlib.import_module("treelite")
    importlib.import_module("treelite.gtil")
    importlib.import_module("treelite.sklearn")
    model = treelite.sklearn.import_model(forest.pipeline.steps[-1][1])
    arrays = forest.compiled.arrays

    def evaluate(rows: np.ndarray) -> np.ndarray:
        values = _preprocess(arrays, rows).astype(np.float32).astype(np.float64)
        scores = treelite.gtil.predict(model, values, nthread=1)
        return (
            np.asarray(scores).reshape(len(rows), -1).squeeze(axis=None if forest.classifier else 1)
        )

    return evaluate


def engines(forest: Forest) -> tuple[dict[str, Engine], dict[str, str]]:
    """The engines that run on this forest, and why any other did not."""
    arrays = forest.compiled.arrays
    pipeline = forest.pipeline
    found: dict[str, Engine | str | None] = {
        "numpy walk (before)": numpy_walk(arrays, forest.classifier),
        "numpy walk, compacted": compacted_walk(arrays, forest.classifier),
        "scikit-learn": pipeline.predict_proba if forest.classifier else pipeline.predict,
        "onnxruntime, skl2onnx": skl2onnx_engine(forest),
        "treelite": treelite_engine(forest),
        CHOSEN: forest.compiled.evaluate,
    }
    ready = {name: engine for name, engine in found.items() if callable(engine)}
    refused = {name: why for name, why in found.items() if isinstance(why, str)}
    return ready, refused


def report_forest(forest: Forest) -> None:
    from mlstack_common.fastpath import threshold_edge_rows

    found, refused = engines(forest)
    reference = found["scikit-learn"]
    nodes = len(forest.compiled.arrays["left"])
    depth = forest.compiled.arrays["depth"][0]
    print(f"\n### {forest.name}: {nodes:,} nodes, deepest tree {depth}")
    print("\nms per call, one thread (best of five 0.1 s windows)\n")
    print("| rows per call | " + " | ".join(found) + " |")
    print("| --- |" + " --- |" * len(found))
    for size in SIZES:
        rows = np.resize(forest.rows, (size, forest.rows.shape[1]))
        times = [_per_call_ms(engine, rows) for engine in found.values()]
        print(f"| {size:,} | " + " | ".join(f"{t:.2f}" for t in times) + " |")
    chunk = np.resize(forest.rows, (CHUNK, forest.rows.shape[1]))
    chunk_times = []
    for name, engine in found.items():
        if name.startswith("numpy walk"):  # gigabytes of rows x trees temporaries
            chunk_times.append("not run")
            continue
        best = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            engine(chunk)
            best = min(best, time.perf_counter() - started)
        chunk_times.append(f"{best * 1000:,.0f}")
    print(f"| {CHUNK:,} (batch chunk) | " + " | ".join(chunk_times) + " |")
    rows = np.resize(forest.rows, (1000, forest.rows.shape[1]))
    edges = threshold_edge_rows(forest.compiled.arrays, rows, count=2000)
    print(f"\nmax abs difference from scikit-learn ({len(rows):,} rows | {len(edges):,} rows on")
    print("or one step from a threshold)\n")
    print("| engine | rows | threshold-edge rows |")
    print("| --- | --- | --- |")
    for name, engine in found.items():
        differences = [
            float(np.max(np.abs(engine(part) - reference(part)))) for part in (rows, edges)
        ]
        print(f"| {name} | " + " | ".join(f"{d:.1e}" for d in differences) + " |")
    for name, why in refused.items():
        print(f"| {name} | {why} | |")


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def probe(engine: str, directory: Path) -> None:
    """In a fresh process: import the engine, load the forest as a server would, score
    PROBE_ROWS rows; print the times and the resident memory after each step as JSON."""
    rows = np.load(directory / "rows.npy")
    before = _rss_mib()
    started = time.perf_counter()
    if engine == "scikit-learn":
        import joblib

        for module in ("sklearn.compose", "sklearn.ensemble", "sklearn.impute", "sklearn.pipeline"):
            importlib.import_module(module)  # what unpickling the pipeline imports
        imported = time.perf_counter()
        pipeline = joblib.load(directory / "model.joblib")
        evaluate: Engine = pipeline.predict_proba
    elif engine == CHOSEN:
        from mlstack_common.forest_engine import import_onnxruntime

        import_onnxruntime()
        from mlstack_common.fastpath import CompiledModel

        imported = time.perf_counter()
        evaluate = CompiledModel.from_bytes((directory / "fastpath.bin").read_bytes()).evaluate
    elif engine == "treelite":
        treelite = importlib.import_module("treelite")
        importlib.import_module("treelite.gtil")
        imported = time.perf_counter()
        model = treelite.Model.deserialize_bytes((directory / "treelite.bin").read_bytes())
        arrays = dict(np.load(directory / "arrays.npz"))
        evaluate = lambda r: treelite.gtil.predict(  # noqa: E731
            model, _preprocess(arrays, r).astype(np.float32).astype(np.float64), nthread=1
        )
    else:
        imported = time.perf_counter()
        arrays = dict(np.load(directory / "arrays.npz"))
        evaluate = numpy_walk(arrays, classifier=True)
    loaded = time.perf_counter()
    after_load = _rss_mib()
    evaluate(rows)
    print(
        json.dumps(
            {
                "import_s": imported - started,
                "load_s": loaded - imported,
                "loaded_mib": after_load - before,
                "scored_mib": _rss_mib() - before,
            }
        )
    )


def report_probes(forest: Forest, scratch: Path) -> None:
    import joblib

    directory = scratch / "probe"
    directory.mkdir()
    joblib.dump(forest.pipeline, directory / "model.joblib")
    (directory / "fastpath.bin").write_bytes(forest.compiled.to_bytes())
    np.savez(directory / "arrays.npz", **forest.compiled.arrays)
    np.save(directory / "rows.npy", np.resize(forest.rows, (PROBE_ROWS, forest.rows.shape[1])))
    names = ["numpy walk (before)", "scikit-learn", CHOSEN]
    if importlib.util.find_spec("treelite") is not None:
        treelite = importlib.import_module("treelite")
        importlib.import_module("treelite.sklearn")
        model = treelite.sklearn.import_model(forest.pipeline.steps[-1][1])
        (directory / "treelite.bin").write_bytes(model.serialize_bytes())
        names.append("treelite")
    print(f"\n### Import, load and memory: {forest.name}, a fresh process each\n")
    print("Memory is the growth of the process's RSS over numpy alone: after import and load,")
    print(f"then after scoring {PROBE_ROWS} rows once.\n")
    print("| engine | import s | load s | RSS after load MiB | RSS after scoring MiB |")
    print("| --- | --- | --- | --- | --- |")
    for name in names:
        result = subprocess.run(
            [sys.executable, __file__, "--probe", name, str(directory)],
            capture_output=True,
            text=True,
            check=True,
        )
        got = json.loads(result.stdout.splitlines()[-1])
        print(
            f"| {name} | {got['import_s']:.2f} | {got['load_s']:.2f} | "
            f"{got['loaded_mib']:.0f} | {got['scored_mib']:.0f} |"
        )


def report_sizes(scratch: Path) -> None:
    from bench_size import measure

    def pinned(*packages: str) -> list[str]:
        return [f"{p}=={importlib.metadata.version(p)}" for p in packages]

    environments = {
        "numpy alone": pinned("numpy"),
        "onnxruntime": pinned("numpy", "onnxruntime"),
        "treelite": pinned("numpy", "treelite"),
        "scikit-learn": pinned("numpy", "scikit-learn"),
        "skl2onnx + onnx + onnxruntime": pinned("numpy", "skl2onnx", "onnx", "onnxruntime"),
    }
    print("\n### Installed size, with dependencies (fresh virtualenvs)\n")
    print("| environment | site-packages MiB | largest packages (MiB) |")
    print("| --- | --- | --- |")
    for name, packages in environments.items():
        try:
            _, size, largest = measure(name, packages, scratch)
        except (importlib.metadata.PackageNotFoundError, subprocess.CalledProcessError) as error:
            print(f"| {name} | not measured: {error} | |")
            continue
        parts = ", ".join(f"{package} {mib:.0f}" for package, mib in largest)
        print(f"| {name} | {size:.0f} | {parts} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--probes", action="store_true", help="import, load time and memory")
    parser.add_argument("--sizes", action="store_true", help="installed size of each library")
    parser.add_argument("--probe", nargs=2, metavar=("ENGINE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe[0], Path(args.probe[1]))
        return
    import sklearn

    sklearn.set_config(assume_finite=True)  # as the server runs scikit-learn
    versions = [f"Python {sys.version.split()[0]}"]
    for package in ("numpy", "scikit-learn", "onnxruntime", "skl2onnx", "onnx", "treelite"):
        try:
            versions.append(f"{package} {importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{package} not installed")
    print(", ".join(versions) + ", OMP_NUM_THREADS=1")
    with tempfile.TemporaryDirectory() as scratch:
        forests = [_demo_forest(Path(scratch))]
        forests += [_synthetic_forest(task) for task in ("binary", "multiclass", "regression")]
        for forest in forests:
            report_forest(forest)
        if args.probes:
            report_probes(forests[1], Path(scratch))
        if args.sizes:
            report_sizes(Path(scratch))


if __name__ == "__main__":
    main()
