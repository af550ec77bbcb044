"""The demo dataset: a real one that ships inside scikit-learn, so nothing is downloaded.

Breast cancer Wisconsin (diagnostic): 569 rows, 30 numeric features, a binary target. The
spec's ranges are the observed ones widened by half the spread, which real traffic respects.
"""

from __future__ import annotations

from pathlib import Path

from mlstack_common.artifact import Feature
from training.spec import DatasetSpec, dump_spec

DATA_FILE = "breast_cancer.csv"
SPEC_FILE = "dataset.yaml"
TARGET = "diagnosis"


def write_demo_dataset(directory: Path) -> tuple[Path, Path]:
    """Write the demo CSV and its spec into `directory`; returns (data, spec) paths."""
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.copy()
    frame[TARGET] = [str(bunch.target_names[i]) for i in frame.pop("target")]
    features = []
    for name in bunch.feature_names:
        column = frame[name]
        margin = (column.max() - column.min()) / 2
        features.append(
            Feature(
                name=str(name),
                type="numeric",
                minimum=round(float(max(column.min() - margin, 0.0)), 6),
                maximum=round(float(column.max() + margin), 6),
            )
        )
    spec = DatasetSpec(features=tuple(features), target=TARGET, target_type="categorical")
    directory.mkdir(parents=True, exist_ok=True)
    data_path, spec_path = directory / DATA_FILE, directory / SPEC_FILE
    frame.to_csv(data_path, index=False, float_format="%.6g")
    spec_path.write_text(dump_spec(spec))
    return data_path, spec_path


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "demo-data")
    for path in write_demo_dataset(target):
        print(path)
