"""Batch scoring: chunked, resumable per file, sharded, from local paths and S3 (moto)."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlstack_common.artifact import pack
from mlstack_common.exits import ExitStatus
from serving import batch
from serving.batch import main, shard
from serving.model import load_predictor
from tests.aws import MODELS_BUCKET, Aws
from tests.logs import log_messages, log_records


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
    files = {
        record["file"]: (record["skipped"], record["rows"])
        for record in log_records(capsys.readouterr().err, batch.COMMAND)
        if record["message"] == "scored"
    }
    assert files == {"first.csv": (True, 0), "second.csv": (False, 269)}
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
    assert code == ExitStatus.REFUSED
    assert "bad.csv: column 'worst area'" in log_messages(capsys.readouterr().err)
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
    assert code == ExitStatus.REFUSED
    assert "x.csv: no column 'mean radius'; the model needs mean radius, mean texture" in (
        log_messages(capsys.readouterr().err)
    )


def test_a_file_that_is_not_what_its_name_says_is_refused_without_a_traceback(
    trained_models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "x.parquet").write_text("a,b\n1,2\n")
    code = main(
        ["--input", str(tmp_path / "x.parquet"), "--output", str(tmp_path / "o"),
         "--model", str(trained_models["linear"])]
    )  # fmt: skip
    assert code == ExitStatus.REFUSED
    err = capsys.readouterr().err
    assert "x.parquet: not readable as Parquet: " in log_messages(err)
    assert "Traceback" not in err


@pytest.mark.parametrize("shards", range(1, 12))
def test_the_shards_split_every_listing_into_shares_that_cover_each_file_once(shards: int) -> None:
    for files in range(30):
        listing = [f"s3://data/scoring/part-{n:03d}.csv" for n in range(files)]
        # Each process lists for itself; the order a store answers in must not matter.
        shares = [shard(list(reversed(listing)), shards, index) for index in range(shards)]
        scored = [name for share in shares for name in share]
        assert sorted(scored) == listing, (files, shards)
        assert len(scored) == len(set(scored)), (files, shards)
        assert max(map(len, shares)) - min(map(len, shares)) <= 1, (files, shards)
        if files < shards:
            assert shares[files:] == [[]] * (shards - files)


def _scorer(*args: str, **env: str) -> subprocess.Popen[str]:
    """`python -m serving.batch` as a shell or a pod starts it."""
    environment = {k: v for k, v in os.environ.items() if k != batch.SHARD_INDEX_ENV}
    return subprocess.Popen(
        [sys.executable, "-m", "serving.batch", *args],
        env={**environment, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finished(process: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """The log records of a scorer that succeeded."""
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    return log_records(err, batch.COMMAND)


def test_sharded_processes_score_each_file_once_and_together_match_one_unsharded_run(
    trained_models: dict[str, Path], scoring_frame: pd.DataFrame, tmp_path: Path
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for number in range(7):
        scoring_frame[number * 80 : (number + 1) * 80].to_csv(
            inputs / f"part-{number}.csv", index=False
        )
    scoring_frame[:50].to_parquet(inputs / "extra.parquet", index=False)
    common = ["--input", str(inputs), "--model", str(trained_models["linear"])]
    # Three pods of an Indexed Job (their index in the environment), and one process told its
    # index on the command line, all at once.
    processes = [
        _scorer(*common, "--output", str(tmp_path / "sharded"), "--shards", "4",
                **{batch.SHARD_INDEX_ENV: str(index)})
        for index in range(3)
    ] + [_scorer(*common, "--output", str(tmp_path / "sharded"), "--shards", "4",
                 "--shard-index", "3")]  # fmt: skip
    whole = _scorer(*common, "--output", str(tmp_path / "whole"))
    scored_by: dict[str, list[int]] = {}
    for index, process in enumerate(processes):
        records = _finished(process)
        for record in records:
            if record.get("done") and not record["skipped"]:
                scored_by.setdefault(record["file"], []).append(index)
        assert records[-1]["shard"] == f"{index}/4"
    _finished(whole)
    names = sorted(p.name for p in inputs.iterdir())
    assert sorted(scored_by) == names
    assert all(len(pods) == 1 for pods in scored_by.values()), scored_by
    sharded = {p.name: p.read_bytes() for p in (tmp_path / "sharded").iterdir()}
    unsharded = {p.name: p.read_bytes() for p in (tmp_path / "whole").iterdir()}
    assert len(unsharded) == len(names)
    assert sharded == unsharded


def test_more_shards_than_files_leaves_the_extra_shards_nothing_to_do(
    trained_models: dict[str, Path], scoring_frame: pd.DataFrame, tmp_path: Path
) -> None:
    scoring_frame.to_csv(tmp_path / "only.csv", index=False)
    args = ["--input", str(tmp_path / "only.csv"), "--output", str(tmp_path / "out"),
            "--model", str(trained_models["linear"]), "--shards", "3"]  # fmt: skip
    records = _finished(_scorer(*args, **{batch.SHARD_INDEX_ENV: "2"}))
    assert records[-1]["files"] == 0
    assert records[-1]["listed"] == 1
    assert not (tmp_path / "out").exists()
    records = _finished(_scorer(*args, **{batch.SHARD_INDEX_ENV: "0"}))
    assert records[-1]["files"] == 1
    assert (tmp_path / "out" / "only.predictions.csv").exists()


@pytest.mark.parametrize(
    ("arguments", "index", "message"),
    [
        (["--shards", "3", "--shard-index", "3"], None, "--shard-index 3: allowed: 0 to 2"),
        (["--shards", "3", "--shard-index", "-1"], None, "--shard-index -1: allowed: 0 to 2"),
        (["--shards", "0"], None, "--shards 0: allowed: 1 or more"),
        (["--shards", "4"], "4", "JOB_COMPLETION_INDEX = '4': allowed: 0 to 3 (--shards 4)"),
        (["--shards", "4"], "one", "JOB_COMPLETION_INDEX = 'one': allowed: 0 to 3"),
        (["--shards", "2"], None, "--shards 2 needs --shard-index or JOB_COMPLETION_INDEX"),
        # An Indexed Job's pod that forgot --shards would score every file in every pod.
        ([], "1", "JOB_COMPLETION_INDEX = '1': allowed: 0 to 0 (--shards 1)"),
    ],
)
def test_a_bad_shard_is_refused_with_exit_2_naming_what_is_allowed(
    arguments: list[str],
    index: str | None,
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv(batch.SHARD_INDEX_ENV, raising=False)
    if index is not None:
        monkeypatch.setenv(batch.SHARD_INDEX_ENV, index)
    with pytest.raises(SystemExit) as stopped:
        main(["--input", str(tmp_path), "--output", str(tmp_path / "out"), *arguments])
    assert stopped.value.code == 2
    assert message in capsys.readouterr().err
