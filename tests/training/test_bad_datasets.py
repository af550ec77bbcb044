"""Bad datasets stop the run before anything is published: non-zero exit, the column named,
the models bucket and the registry untouched."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from mlstack_common.exits import ExitStatus
from tests.aws import SERVING_IMAGE, Aws
from tests.logs import log_messages
from training.cli import main

Corrupt = Callable[[pd.DataFrame], pd.DataFrame]


@pytest.fixture
def refused(
    aws: Aws, demo_dataset: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Callable[[Corrupt], str]:
    """Run training on a corrupted copy of the demo data; returns the messages it logged on
    stderr, after checking it refused and published nothing."""
    data, spec = demo_dataset

    def run(corrupt: Corrupt) -> str:
        frame = pd.read_csv(data, dtype=str, keep_default_na=False)
        bad = tmp_path / "bad.csv"
        bad.write_text(corrupt(frame).to_csv(index=False))
        code = main(
            [
                "--data", str(bad), "--spec", str(spec), "--output-dir", str(tmp_path / "out"),
                "--models-uri", aws.models_uri, "--model-package-group", aws.group,
                "--serving-image", SERVING_IMAGE,
            ]
        )  # fmt: skip
        err = log_messages(capsys.readouterr().err)
        assert code == ExitStatus.REFUSED, err
        assert aws.model_objects() == []
        assert aws.versions() == []
        assert not (tmp_path / "out" / "model" / "model.joblib").exists()
        return err

    return run


def test_a_missing_column_is_named(refused: Callable[[Corrupt], str]) -> None:
    err = refused(lambda f: f.drop(columns=["mean radius"]))
    assert "column 'mean radius': missing from the data; the spec requires it" in err


def test_an_extra_column_is_named_with_the_allowed_ones(refused: Callable[[Corrupt], str]) -> None:
    err = refused(lambda f: f.assign(patient_id="x"))
    assert "column 'patient_id': not in the spec; allowed columns: mean radius, " in err


def test_text_in_a_numeric_column_is_counted_and_located(refused: Callable[[Corrupt], str]) -> None:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[[4, 9, 30], "mean texture"] = ["n/a", "12,5", "inf"]
        return frame

    err = refused(corrupt)
    assert "column 'mean texture': 3 rows are not finite numbers (first at row 5: 'n/a')" in err


def test_missing_target_values_are_counted(refused: Callable[[Corrupt], str]) -> None:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[[2, 3], "diagnosis"] = ""
        return frame

    assert "column 'diagnosis': target missing in 2 rows (first at row 3)" in refused(corrupt)


def test_a_single_class_cannot_train_a_classifier(refused: Callable[[Corrupt], str]) -> None:
    err = refused(lambda f: f[f["diagnosis"] == "benign"])
    assert "column 'diagnosis': a single class ('benign') in 357 rows" in err


def test_out_of_range_values_above_the_tolerance(refused: Callable[[Corrupt], str]) -> None:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[:9, "mean area"] = "-5"
        return frame

    err = refused(corrupt)
    assert (
        "column 'mean area': 10 rows (1.8%) outside [0.0, 3679.75], above the tolerance of 0%"
        in err
    )


def test_an_empty_file_is_refused(refused: Callable[[Corrupt], str]) -> None:
    assert "dataset: no rows (an empty file or only a header)" in refused(lambda f: f.iloc[0:0])


def test_missing_feature_values_need_a_nullable_feature(refused: Callable[[Corrupt], str]) -> None:
    def corrupt(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[7, "worst symmetry"] = ""
        return frame

    err = refused(corrupt)
    assert "column 'worst symmetry': 1 rows have no value (first at row 8)" in err
    assert "not mark it nullable" in err


def test_too_few_rows_to_hold_out_a_test_set(refused: Callable[[Corrupt], str]) -> None:
    err = refused(lambda f: pd.concat([f.head(5), f.tail(5)]))
    assert "dataset: 10 rows; at least 20 are needed" in err


def test_every_problem_is_reported_in_one_run(refused: Callable[[Corrupt], str]) -> None:
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
