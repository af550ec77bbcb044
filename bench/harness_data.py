"""The benchmarks' second dataset: 20 numeric features, 10 of them informative, 5,000 rows.

`make_classification(5000, 20, n_informative=10, random_state=0)`, the data an outside
comparison of model servers trains its models on. Its forest grows full-depth trees over 20
features, unlike the demo's shallow trees over 30 easy ones, so it is the harder case for
forest scoring. Written as CSV with a spec, in the form `mlstack-train --data` reads.
"""

from __future__ import annotations

from pathlib import Path

DATA_FILE = "classification.csv"
SPEC_FILE = "dataset.yaml"
FEATURES = 20
ROWS = 5000


def write_harness_dataset(directory: Path) -> Path:
    """Write the CSV and its spec (feature ranges: the observed ones widened by half the spread,
    as the demo's) into `directory`; returns the CSV's path."""
    from sklearn.datasets import make_classification

    x, y = make_classification(ROWS, FEATURES, n_informative=10, random_state=0)
    names = [f"f{i}" for i in range(FEATURES)]
    lines = [",".join([*names, "label"])]
    lines += [
        ",".join([*(repr(float(v)) for v in row), str(int(label))])
        for row, label in zip(x, y, strict=True)
    ]
    features = []
    for index, name in enumerate(names):
        low, high = float(x[:, index].min()), float(x[:, index].max())
        margin = (high - low) / 2
        low, high = low - margin, high + margin
        features.append(f"  - {{name: {name}, type: numeric, min: {low:.6f}, max: {high:.6f}}}")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / DATA_FILE).write_text("\n".join(lines) + "\n")
    (directory / SPEC_FILE).write_text(
        "target: {name: label, type: categorical}\nfeatures:\n" + "\n".join(features) + "\n"
    )
    return directory / DATA_FILE


def harness_rows(data: Path, count: int) -> list[list[float]]:
    """The first `count` rows' feature values, for request bodies."""
    lines = data.read_text().splitlines()[1 : count + 1]
    return [[float(v) for v in line.split(",")[:-1]] for line in lines]
