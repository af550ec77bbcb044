"""Batch scoring: chunked, resumable per file, from local paths and S3 (moto)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving.artifact import pack
from serving.batch import main
from serving.model import load_predictor
from tests.aws import MODELS_BUCKET, Aws


@pytest.fixture
def scoring_frame(demo_dataset: tuple[Path, Path]) -> pd.DataFrame:
    frame = pd.read_csv(demo_dataset[0]).drop(columns=["diagnosis"])
    frame.insert(0, "customer", [f"c{i:04d}" for i in range(len(frame))])
    return frame


def expected(model: Path, frame: pd.DataFrame, tmp_path: Path) -> np.ndarray:
    predictor = load_predictor(str(model), tmp_path / "expected")
    probabilities = predictor.predict(
        frame[list(predictor.metadata.feature_names)].to_numpy()
    ).probabilities
    assert probabilities is not None
    return probabilities


def test_csv_and_parquet_are_scored_in_chunks_beside_their_ids(
    trained_models: dict[str, Path], scoring_frame: pd.DataFrame, tmp_path: Path
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    scoring_frame.to_csv(inputs / "a.csv", index=False)
    scoring_frame.to_parquet(inputs / "b.parquet", index=False)
    code = main(
        [
            "--input",
            str(inputs),
            "--output",
            str(tmp_path / "out"),
            "--model",
            str(trained_models["linear"]),
            "--id-column",
            "customer",
            "--chunk-rows",
            "50",
        ]
    )
    assert code == 0
    want = expected(trained_models["linear"], scoring_frame, tmp_path)
    for scored in (
        pd.read_csv(tmp_path / "out" / "a.predictions.csv"),
        pd.read_parquet(tmp_path / "out" / "b.predictions.parquet"),
    ):
        assert list(scored["id"]) == list(scoring_frame["customer"])
        assert np.allclose(scored[["probability_benign", "probability_malignant"]].to_numpy(), want)
        assert set(scored["prediction"]) <= {"benign", "malignant"}


def test_a_rerun_skips_finished_files_and_redoes_missing_ones_on_s3(
    aws: Aws,
    trained_models: dict[str, Path],
    scoring_frame: pd.DataFrame,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    aws.s3.put_object(
        Bucket=MODELS_BUCKET, Key="model/model.tar.gz", Body=pack(trained_models["linear"])
    )
    for name, part in (("first.csv", scoring_frame[:300]), ("second.csv", scoring_frame[300:])):
        aws.s3.put_object(
            Bucket=MODELS_BUCKET, Key=f"scoring/{name}", Body=part.to_csv(index=False).encode()
        )
    args = [
        "--input",
        f"s3://{MODELS_BUCKET}/scoring/",
        "--output",
        f"s3://{MODELS_BUCKET}/predictions",
        "--model",
        f"s3://{MODELS_BUCKET}/model/model.tar.gz",
        "--chunk-rows",
        "100",
    ]
    assert main(args) == 0
    first = aws.s3.get_object(Bucket=MODELS_BUCKET, Key="predictions/first.predictions.csv")[
        "Body"
    ].read()
    aws.s3.delete_object(Bucket=MODELS_BUCKET, Key="predictions/second.predictions.csv")
    capsys.readouterr()
    assert main(args) == 0
    progress = capsys.readouterr().err
    assert '"file":"first.csv","done":true,"skipped":true' in progress
    assert '"file":"second.csv","done":true,"skipped":false,"rows":269' in progress
    second = aws.s3.get_object(Bucket=MODELS_BUCKET, Key="predictions/second.predictions.csv")[
        "Body"
    ].read()
    scored = pd.concat([pd.read_csv(io.BytesIO(first)), pd.read_csv(io.BytesIO(second))])
    assert len(scored) == len(scoring_frame)
    assert list(scored["id"]) == list(range(1, 301)) + list(range(1, 270))


def test_a_bad_value_stops_that_file_with_its_row_and_writes_no_partial_output(
    trained_models: dict[str, Path],
    scoring_frame: pd.DataFrame,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    frame = scoring_frame.astype({"worst area": object})
    frame.loc[420, "worst area"] = "n/a"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    code = main(
        [
            "--input",
            str(tmp_path / "bad.csv"),
            "--output",
            str(tmp_path / "out"),
            "--model",
            str(trained_models["linear"]),
            "--chunk-rows",
            "100",
        ]
    )
    assert code == 1
    assert "bad.csv: column 'worst area'" in capsys.readouterr().err
    assert not (tmp_path / "out" / "bad.predictions.csv").exists()


def test_a_missing_feature_column_is_named(
    trained_models: dict[str, Path],
    scoring_frame: pd.DataFrame,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scoring_frame.drop(columns=["mean radius"]).to_csv(tmp_path / "x.csv", index=False)
    code = main(
        [
            "--input",
            str(tmp_path / "x.csv"),
            "--output",
            str(tmp_path / "o"),
            "--model",
            str(trained_models["linear"]),
        ]
    )
    assert code == 1
    assert (
        "x.csv: no column 'mean radius'; the model needs mean radius, mean texture"
        in capsys.readouterr().err
    )
