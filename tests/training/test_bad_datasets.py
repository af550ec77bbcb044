"""Bad datasets stop the run before anything is published: non-zero exit, the column named,
the models bucket and the registry untouched."""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pytest
import yaml

from mlstack_common.artifact import Feature, load_model_dir
from mlstack_common.exits import ExitStatus
from tests.aws import SERVING_IMAGE, Aws
from tests.logs import log_messages
from training.cli import main
from training.dataset import MAX_MAGNITUDE
from training.demo import TARGET
from training.errors import StatisticsError
from training.report import baseline_statistics
from training.settings import ALGORITHMS

Corrupt = Callable[[pd.DataFrame], pd.DataFrame]


class Refused(Protocol):
    def __call__(
        self, corrupt: Corrupt, *, spec: Path | None = None, parquet: bool = False
    ) -> str: ...


def edited_spec(
    spec: Path,
    directory: Path,
    *,
    unbounded: Sequence[str] = (),
    nullable: Sequence[str] = (),
    tolerance: float | None = None,
) -> Path:
    """A copy of `spec` with the declared ranges of `unbounded` removed, `nullable` marked so
    and `tolerance` set, as a user would edit it."""
    document = yaml.safe_load(spec.read_text())
    for entry in document["features"]:
        if entry["name"] in unbounded:
            del entry["min"], entry["max"]
        if entry["name"] in nullable:
            entry["nullable"] = True
    if tolerance is not None:
        document["tolerance"] = tolerance
    path = directory / "edited.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def as_parquet(frame: pd.DataFrame, path: Path) -> None:
    """`frame` (text cells, as read) written as Parquet with float feature columns, as a
    dataframe library would store them."""
    features = {name: "float64" for name in frame.columns if name != TARGET}
    buffer = io.BytesIO()
    frame.replace("", None).astype(features).to_parquet(buffer)
    path.write_bytes(buffer.getvalue())


@pytest.fixture
def refused(
    aws: Aws, demo_dataset: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Refused:
    """Run training on a corrupted copy of the demo data (as CSV, or Parquet), against the demo
    spec or `spec`; returns the messages it logged on stderr, after checking it refused and
    published and wrote nothing."""
    data, demo_spec = demo_dataset

    def run(corrupt: Corrupt, *, spec: Path | None = None, parquet: bool = False) -> str:
        frame = corrupt(pd.read_csv(data, dtype=str, keep_default_na=False))
        bad = tmp_path / ("bad.parquet" if parquet else "bad.csv")
        if parquet:
            as_parquet(frame, bad)
        else:
            bad.write_text(frame.to_csv(index=False))
        code = main(
            [
                "--data", str(bad), "--spec", str(spec or demo_spec),
                "--output-dir", str(tmp_path / "out"),
                "--models-uri", aws.models_uri, "--model-package-group", aws.group,
                "--serving-image", SERVING_IMAGE,
            ]
        )  # fmt: skip
        err = log_messages(capsys.readouterr().err)
        assert code == ExitStatus.REFUSED, err
        assert aws.model_objects() == []
        assert aws.versions() == []
        assert not (tmp_path / "out" / "model" / "model.joblib").exists()
        assert not (tmp_path / "out" / "report" / "baseline_statistics.json").exists()
        return err

    return run


def test_a_missing_column_is_named(refused: Refused) -> None:
    err = refused(lambda f: f.drop(columns=["mean radius"]))
    assert "column 'mean radius': missing from the data; the spec requires it" in err


def test_an_extra_column_is_named_with_the_allowed_ones(refused: Refused) -> None:
    err = refused(lambda f: f.assign(patient_id="x"))
    assert "column 'patient_id': not in the spec; allowed columns: mean radius, " in err


def test_text_in_a_numeric_column_is_counted_and_located(refused: Refused) -> None:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[[4, 9, 30], "mean texture"] = ["n/a", "12,5", "inf"]
        return frame

    err = refused(corrupt)
    assert "column 'mean texture': 3 rows are not finite numbers (first at row 5: 'n/a')" in err


def test_missing_target_values_are_counted(refused: Refused) -> None:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[[2, 3], "diagnosis"] = ""
        return frame

    assert "column 'diagnosis': target missing in 2 rows (first at row 3)" in refused(corrupt)


def test_a_single_class_cannot_train_a_classifier(refused: Refused) -> None:
    err = refused(lambda f: f[f["diagnosis"] == "benign"])
    assert "column 'diagnosis': a single class ('benign') in 357 rows" in err


def test_out_of_range_values_above_the_tolerance(refused: Refused) -> None:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[:9, "mean area"] = "-5"
        return frame

    err = refused(corrupt)
    assert (
        "column 'mean area': 10 rows (1.8%) outside [0.0, 3679.75], above the tolerance of 0%"
        in err
    )


def test_an_empty_file_is_refused(refused: Refused) -> None:
    assert "dataset: no rows (an empty file or only a header)" in refused(lambda f: f.iloc[0:0])


def test_missing_feature_values_need_a_nullable_feature(refused: Refused) -> None:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[7, "worst symmetry"] = ""
        return frame

    err = refused(corrupt)
    assert "column 'worst symmetry': 1 rows have no value (first at row 8)" in err
    assert "not mark it nullable" in err


def test_too_few_rows_to_hold_out_a_test_set(refused: Refused) -> None:
    err = refused(lambda f: pd.concat([f.head(5), f.tail(5)]))
    assert "dataset: 10 rows; at least 20 are needed" in err


def test_every_problem_is_reported_in_one_run(refused: Refused) -> None:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[0, "mean texture"] = "abc"
        frame.loc[1, "diagnosis"] = ""
        return frame

    err = refused(corrupt)
    assert "invalid dataset (2 problems)" in err


def test_a_malformed_csv_is_refused_with_the_parser_message(
    aws: Aws, demo_dataset: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, spec = demo_dataset
    bad = tmp_path / "bad.csv"
    bad.write_text('a,b\n1,2\n3,"unterminated\n')
    code = main(["--data", str(bad), "--spec", str(spec), "--output-dir", str(tmp_path / "o")])
    assert code == ExitStatus.REFUSED
    assert "bad.csv is not readable CSV" in log_messages(capsys.readouterr().err)


def test_parquet_is_read_and_checked_like_csv(
    demo_dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    data, spec = demo_dataset
    frame = pd.read_csv(data)
    parquet = tmp_path / "data.parquet"
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    parquet.write_bytes(buffer.getvalue())
    assert (
        main(["--data", str(parquet), "--spec", str(spec), "--output-dir", str(tmp_path / "o")])
        == 0
    )


def set_cells(column: str, cells: dict[int, str]) -> Corrupt:
    """Put each text at its row index (0-based; the messages count rows from 1) of `column`."""

    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        for index, text in cells.items():
            frame.loc[index, column] = text
        return frame

    return corrupt


TOO_LARGE = "rows are too large in magnitude (first at row"


@pytest.mark.parametrize(
    ("cells", "parquet", "message"),
    [
        pytest.param({3: "1e308"}, False, f"1 {TOO_LARGE} 4: '1e308')", id="csv"),
        pytest.param({3: "1e308"}, True, f"1 {TOO_LARGE} 4: 1e+308)", id="parquet"),
        # Each end is finite, but max - min (a histogram's span) would overflow.
        pytest.param({1: "-1e308", 4: "1e308"}, False, f"2 {TOO_LARGE} 2: '-1e308')", id="ends"),
        pytest.param({3: "1.0000001e38"}, False, f"1 {TOO_LARGE} 4: '1.0000001e38')", id="edge"),
    ],
)
def test_a_value_too_large_for_the_statistics_is_refused_with_the_bound(
    refused: Refused,
    demo_dataset: tuple[Path, Path],
    tmp_path: Path,
    cells: dict[int, str],
    parquet: bool,
    message: str,
) -> None:
    spec = edited_spec(demo_dataset[1], tmp_path, unbounded=["mean area"])
    err = refused(set_cells("mean area", cells), spec=spec, parquet=parquet)
    assert f"column 'mean area': {message}; allowed: numbers from -1e+38 to 1e+38" in err


def test_a_declared_range_with_a_tolerance_does_not_let_a_huge_value_through(
    refused: Refused, demo_dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    # One row outside [0, 3679.75] is within a 1% tolerance; its magnitude is not.
    spec = edited_spec(demo_dataset[1], tmp_path, tolerance=0.01)
    err = refused(set_cells("mean area", {3: "1e308"}), spec=spec)
    assert "invalid dataset (1 problem)" in err
    assert f"column 'mean area': 1 {TOO_LARGE} 4: '1e308')" in err


def test_a_nullable_feature_still_needs_a_value_in_some_row(
    refused: Refused, demo_dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    spec = edited_spec(demo_dataset[1], tmp_path, nullable=["worst symmetry"])
    err = refused(lambda f: f.assign(**{"worst symmetry": ""}), spec=spec)
    assert (
        "column 'worst symmetry': all 569 rows have no value; nullable allows missing values, "
        "not a feature without any" in err
    )


def nulls(value: Any, path: str = "") -> list[str]:
    """Where `value` (parsed JSON) holds a null."""
    if value is None:
        return [path]
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in nulls(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [found for i, item in enumerate(value) for found in nulls(item, f"{path}[{i}]")]
    return []


def strict_json(text: str) -> Any:
    """`text` parsed as strict JSON: NaN and Infinity are not JSON and fail the test."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in what should be strict JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_values_at_the_bound_train_and_every_recorded_statistic_is_a_number(
    demo_dataset: tuple[Path, Path], tmp_path: Path, algorithm: str
) -> None:
    data, spec = demo_dataset
    frame = set_cells("mean area", {1: "-1e38", 4: "1e38"})(
        pd.read_csv(data, dtype=str, keep_default_na=False)
    )
    frame.to_csv(tmp_path / "data.csv", index=False)
    edited = edited_spec(spec, tmp_path, unbounded=["mean area"])
    out = tmp_path / "out"
    arguments = ["--spec", str(edited), "--output-dir", str(out), "--algorithm", algorithm]
    assert main(["--data", str(tmp_path / "data.csv"), *arguments]) == 0
    baseline = strict_json((out / "report" / "baseline_statistics.json").read_text())
    assert nulls(baseline) == []
    area = baseline["features"]["mean area"]
    assert (area["min"], area["max"]) == (-MAX_MAGNITUDE, MAX_MAGNITUDE)
    assert all(math.isfinite(area[name]) for name in ("mean", "std"))
    _, metadata = load_model_dir(out / "model")
    served = {feature.name: feature for feature in metadata.features}["mean area"]
    assert (served.minimum, served.maximum) == (-1e38, 1e38)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([1.0] * 20 + [1e308], "feature 'x': std is inf; allowed: finite statistics only"),
        (
            [-1e308, *[1.0] * 20, 1e308],
            "feature 'x': the range -1e+308 to 1e+308 is wider than a float holds",
        ),
    ],
)
def test_the_baseline_refuses_to_record_a_statistic_that_is_not_finite(
    values: list[float], message: str
) -> None:
    # The dataset's bound keeps such values from the command line; this is the last check
    # before a null would be written beside the model, so it is called directly.
    with pytest.raises(StatisticsError) as caught:
        baseline_statistics(
            pd.DataFrame({"x": np.asarray(values)}), [Feature(name="x", type="numeric")]
        )
    assert message in str(caught.value)
