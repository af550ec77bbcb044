"""Reading a training dataset (CSV or Parquet) and checking it against its spec.

Every problem is found before anything is trained, and each names the column, what is wrong
and how many rows; a bad dataset never reaches the models bucket or the registry.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.spec import DatasetSpec

MIN_ROWS = 20
MIN_ROWS_PER_CLASS = 2
PARQUET_MAGIC = b"PAR1"
MAX_MAGNITUDE = 1e38
"""The largest magnitude a numeric value (feature or regression target) may have.

Below float32's largest finite value (3.4e38), which the forest algorithm casts its inputs to
(scikit-learn's `sklearn/ensemble/_forest.py`, `DTYPE`), so every algorithm takes the same
data; and small enough that what training computes in float64 stays finite for any row count
memory can hold: a variance sums squared deviations of at most (2e38)^2 = 4e76 each, which
overflows float64 (1.8e308) only past 1e231 rows. A larger value (1e308 in one row) made the
drift baseline's standard deviation infinite, written as null."""


@dataclass(frozen=True)
class DatasetProblem:
    """One thing wrong with a dataset."""

    column: str
    problem: str
    rows: int = 0

    def __str__(self) -> str:
        where = f"column {self.column!r}" if self.column else "dataset"
        return f"{where}: {self.problem}"


class DatasetError(ValueError):
    """The dataset does not match its spec; `problems` lists every mismatch."""

    def __init__(self, problems: list[DatasetProblem]) -> None:
        self.problems = problems
        count = len(problems)
        lines = [f"invalid dataset ({count} problem{'s' if count != 1 else ''}):"]
        lines += [f"  - {problem}" for problem in problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Dataset:
    """A checked dataset: features in spec order with their declared types, and the target."""

    features: pd.DataFrame
    target: pd.Series
    sha256: str

    @property
    def rows(self) -> int:
        return len(self.target)


def read_table(data: bytes, name: str) -> pd.DataFrame:
    """CSV (header row) or Parquet, by extension or content. CSV cells are read as text, so that
    type problems are found by validation with their row numbers, not by the parser."""
    is_parquet = name.endswith((".parquet", ".pq")) or data[:4] == PARQUET_MAGIC
    try:
        if is_parquet:
            return pd.read_parquet(io.BytesIO(data))
        if not data.strip():
            return pd.DataFrame()
        return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""])
    except (ValueError, OSError, pd.errors.ParserError) as error:
        kind = "Parquet" if is_parquet else "CSV"
        raise DatasetError(
            [DatasetProblem("", f"{name} is not readable {kind}: {error}")]
        ) from error


def _first(values: pd.Series, mask: pd.Series) -> str:
    index = int(np.flatnonzero(mask.to_numpy())[0])
    value = values.iloc[index]
    # A Parquet column gives numpy scalars, whose repr is `np.float64(1e+308)`; show `1e+308`.
    shown = value.item() if isinstance(value, np.generic) else value
    return f"first at row {index + 1}: {shown!r}"


def _numeric(column: pd.Series, name: str, problems: list[DatasetProblem]) -> pd.Series:
    present = column.notna()
    numbers = pd.to_numeric(column, errors="coerce").astype("float64")
    bad = present & (numbers.isna() | ~np.isfinite(numbers.fillna(0.0)))
    if bad.any():
        problems.append(
            DatasetProblem(
                name,
                f"{int(bad.sum())} rows are not finite numbers ({_first(column, bad)})",
                int(bad.sum()),
            )
        )
    huge = present & ~bad & (numbers.abs() > MAX_MAGNITUDE)
    if huge.any():
        problems.append(
            DatasetProblem(
                name,
                f"{int(huge.sum())} rows are too large in magnitude ({_first(column, huge)}); "
                f"allowed: numbers from {-MAX_MAGNITUDE:g} to {MAX_MAGNITUDE:g}",
                int(huge.sum()),
            )
        )
    return numbers


def _share(count: int, rows: int) -> str:
    return f"{count} rows ({100 * count / rows:.1f}%)"


def validate(frame: pd.DataFrame, spec: DatasetSpec, sha256: str = "") -> Dataset:
    """Check `frame` against `spec`; raises `DatasetError` with every problem found."""
    problems: list[DatasetProblem] = []
    rows = len(frame)
    if rows == 0:
        raise DatasetError([DatasetProblem("", "no rows (an empty file or only a header)")])
    expected = set(spec.columns)
    for name in spec.columns:
        if name not in frame.columns:
            problems.append(DatasetProblem(name, "missing from the data; the spec requires it"))
    for name in frame.columns:
        if name not in expected:
            problems.append(
                DatasetProblem(
                    str(name),
                    "not in the spec; allowed columns: " + ", ".join(spec.columns),
                )
            )
    if problems:
        raise DatasetError(problems)
    if rows < MIN_ROWS:
        problems.append(
            DatasetProblem(
                "", f"{rows} rows; at least {MIN_ROWS} are needed to hold out a test set"
            )
        )

    typed: dict[str, pd.Series] = {}
    for feature in spec.features:
        column = frame[feature.name]
        missing = column.isna()
        if missing.any() and not feature.nullable:
            problems.append(
                DatasetProblem(
                    feature.name,
                    f"{int(missing.sum())} rows have no value (first at row "
                    f"{int(np.flatnonzero(missing.to_numpy())[0]) + 1}); the spec does not "
                    "mark it nullable",
                    int(missing.sum()),
                )
            )
        elif missing.all():
            # Nothing to learn from, and no statistics for the drift baseline to hold.
            problems.append(
                DatasetProblem(
                    feature.name,
                    f"all {rows} rows have no value; nullable allows missing values, not a "
                    "feature without any",
                    rows,
                )
            )
        if feature.type == "numeric":
            values = _numeric(column, feature.name, problems)
            outside = 0
            if feature.minimum is not None:
                outside += int((values < feature.minimum).sum())
            if feature.maximum is not None:
                outside += int((values > feature.maximum).sum())
            if outside > spec.tolerance * rows:
                problems.append(
                    DatasetProblem(
                        feature.name,
                        f"{_share(outside, rows)} outside [{feature.minimum}, {feature.maximum}], "
                        f"above the tolerance of {100 * spec.tolerance:g}%",
                        outside,
                    )
                )
            typed[feature.name] = values
        else:
            values = column.astype("string").astype(object).where(column.notna(), None)
            unknown = values.notna() & ~values.isin(feature.categories)
            if int(unknown.sum()) > spec.tolerance * rows:
                problems.append(
                    DatasetProblem(
                        feature.name,
                        f"{_share(int(unknown.sum()), rows)} hold a category not in the spec "
                        f"({_first(column, unknown)}); allowed: {', '.join(feature.categories)}",
                        int(unknown.sum()),
                    )
                )
            typed[feature.name] = values

    target = frame[spec.target]
    no_target = target.isna()
    if no_target.any():
        problems.append(
            DatasetProblem(
                spec.target,
                f"target missing in {int(no_target.sum())} rows (first at row "
                f"{int(np.flatnonzero(no_target.to_numpy())[0]) + 1})",
                int(no_target.sum()),
            )
        )
    if spec.task == "regression":
        labels = _numeric(target, spec.target, problems)
    else:
        labels = target.astype("string").astype(object)
        counts = labels[labels.notna()].value_counts()
        if len(counts) < 2:
            only = ", ".join(repr(c) for c in counts.index) or "none"
            problems.append(
                DatasetProblem(
                    spec.target,
                    f"a single class ({only}) in {rows} rows; classification needs at least two",
                    rows,
                )
            )
        rare = counts[counts < MIN_ROWS_PER_CLASS]
        if len(counts) >= 2 and len(rare):
            problems.append(
                DatasetProblem(
                    spec.target,
                    f"classes with fewer than {MIN_ROWS_PER_CLASS} rows: "
                    + ", ".join(f"{label!r} ({n})" for label, n in rare.items()),
                    int(rare.sum()),
                )
            )
    if problems:
        raise DatasetError(problems)
    features = pd.DataFrame(typed, columns=[f.name for f in spec.features])
    return Dataset(features=features, target=labels.reset_index(drop=True), sha256=sha256)


def load(data: bytes, name: str, spec: DatasetSpec) -> Dataset:
    """Read and check a dataset; its sha256 is of the bytes as stored, for lineage."""
    return validate(read_table(data, name), spec, hashlib.sha256(data).hexdigest())
