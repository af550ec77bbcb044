"""Specs, settings and the kinds of task training supports, on small real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_diabetes

from mlstack_common.artifact import load_model_dir
from mlstack_common.exits import ExitStatus
from tests.aws import MODELS_BUCKET, Aws
from tests.logs import log_messages
from training.cli import main
from training.settings import SettingsError, parse_settings
from training.spec import SpecError, load_spec


def spec(target_type: str = "numeric", features: object = None, **extra: object) -> object:
    features = [{"name": "a", "type": "numeric"}] if features is None else features
    return {"target": {"name": "y", "type": target_type}, "features": features, **extra}


def feature(**fields: object) -> list[dict[str, object]]:
    return [{"name": "a", "type": "numeric", **fields}]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"features": feature()}, "target: allowed: {name: <column>"),
        (spec("text"), "target type = 'text'"),
        (spec(features=[]), "features: allowed: a non-empty list"),
        (spec(features=feature(type="date")), "feature 'a': type = 'date'"),
        (spec(features=feature(min=5, max=1)), "min 5.0 > max 1.0"),
        (spec(features=feature(type="categorical")), "categories = []"),
        (spec(features=feature(name="y")), "columns named twice: y"),
        (spec(tolerance=2), "tolerance = 2"),
        (spec(features=feature(nullable="yes")), "nullable = 'yes'"),
        # YAML's .inf would be recorded as a null range; .nan would check nothing.
        (spec(features=feature(max=float("inf"))), "max = inf; allowed: a finite number"),
        (spec(features=feature(min=float("nan"))), "min = nan; allowed: a finite number"),
        # Misspelt keys would otherwise be ignored and the data checked without their rule.
        (spec(tolerence=0.1), "dataset spec: unknown key 'tolerence' (did you mean 'tolerance'?)"),
        (
            spec(features=feature(maximum=3)),
            "feature 'a': unknown key 'maximum' (did you mean 'max'?)",
        ),
        (spec(features=feature(nulable=True)), "unknown key 'nulable' (did you mean 'nullable'?)"),
        (
            {"target": {"name": "y", "type": "numeric", "kind": "x"}, "features": feature()},
            "dataset spec: target: unknown key 'kind'",
        ),
    ],
)
def test_a_malformed_spec_says_which_entry_and_what_is_allowed(
    document: object, message: str
) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(yaml.safe_dump(document))
    assert message in str(caught.value)


def test_settings_parse_from_strings_and_report_every_bad_one() -> None:
    hyperparameters, gate = parse_settings(
        {"algorithm": "linear", "seed": "3", "max_regression": "0.05", "auto_approve": "true"}
    )
    assert (hyperparameters.algorithm, hyperparameters.seed) == ("linear", 3)
    assert (gate.max_regression, gate.auto_approve) == (0.05, True)
    with pytest.raises(SettingsError) as caught:
        parse_settings({"algorithm": "xgboost", "test_size": "0.9", "seed": "-1"})
    message = str(caught.value)
    assert "algorithm = 'xgboost': allowed: one of linear, hgb" in message
    assert "test_size = '0.9': allowed: a number >= 0.05 and <= 0.5" in message
    assert "seed = '-1': allowed: a whole number from 0 to" in message


def write_diabetes(directory: Path) -> pd.DataFrame:
    """scikit-learn's diabetes regression data as diabetes.csv, with its dataset.yaml."""
    bunch = load_diabetes(as_frame=True)
    frame: pd.DataFrame = bunch.frame
    frame.to_csv(directory / "diabetes.csv", index=False)
    spec = {
        "target": {"name": "target", "type": "numeric"},
        "features": [{"name": name, "type": "numeric"} for name in bunch.feature_names],
    }
    (directory / "dataset.yaml").write_text(yaml.safe_dump(spec))
    return frame


def test_regression_trains_on_real_data_with_residual_plots(tmp_path: Path) -> None:
    frame = write_diabetes(tmp_path)
    feature_names = list(frame.columns.drop("target"))
    code = main(
        [
            "--data",
            str(tmp_path / "diabetes.csv"),
            "--output-dir",
            str(tmp_path / "out"),
            "--algorithm",
            "linear",
        ]
    )
    assert code == 0
    model, metadata = load_model_dir(tmp_path / "out" / "model")
    assert metadata.task == "regression"
    assert set(metadata.metrics) == {"rmse", "mae", "r2"}
    assert metadata.metrics["r2"] > 0.3
    assert {"residuals.png", "predicted_vs_actual.png"} <= {
        p.name for p in (tmp_path / "out" / "report").iterdir()
    }
    prediction = model.predict(np.asarray([frame[feature_names].iloc[0]], dtype=np.float64))
    assert prediction.shape == (1,)


def test_a_regression_target_too_large_for_the_metrics_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Errors are squared into the RMSE: past the bound they overflow to infinity.
    frame = write_diabetes(tmp_path)
    frame.loc[6, "target"] = -1e300
    frame.to_csv(tmp_path / "diabetes.csv", index=False)
    code = main(["--data", str(tmp_path / "diabetes.csv"), "--output-dir", str(tmp_path / "out")])
    assert code == ExitStatus.REFUSED
    assert (
        "column 'target': 1 rows are too large in magnitude (first at row 7: '-1e+300'); "
        "allowed: numbers from -1e+38 to 1e+38" in log_messages(capsys.readouterr().err)
    )
    assert not (tmp_path / "out").exists()


def test_categorical_features_train_and_predict_from_plain_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    colours = rng.choice(["red", "green", "blue"], size=300)
    size = rng.normal(10, 3, size=300)
    label = np.where((colours == "red") | (size > 12), "yes", "no")
    lines = [
        "colour,size,label",
        *(f"{c},{s:.3f},{y}" for c, s, y in zip(colours, size, label, strict=True)),
    ]
    (tmp_path / "data.csv").write_text("\n".join(lines) + "\n")
    spec = {
        "target": {"name": "label", "type": "categorical"},
        "features": [
            {"name": "colour", "type": "categorical", "categories": ["red", "green", "blue"]},
            {"name": "size", "type": "numeric"},
        ],
    }
    (tmp_path / "dataset.yaml").write_text(yaml.safe_dump(spec))
    assert (
        main(
            [
                "--data",
                str(tmp_path / "data.csv"),
                "--output-dir",
                str(tmp_path / "out"),
                "--algorithm",
                "linear",
            ]
        )
        == 0
    )
    model, metadata = load_model_dir(tmp_path / "out" / "model")
    assert metadata.features[0].categories == ("red", "green", "blue")
    rows = np.asarray([["red", 5.0], ["blue", 5.0]], dtype=object)
    assert list(model.predict(rows)) == ["yes", "no"]


def test_data_given_as_a_directory_or_s3_prefix_is_its_one_data_file(
    aws: Aws, demo_dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    data, spec_file = demo_dataset
    for key, source in (("demo/breast_cancer.csv", data), ("demo/dataset.yaml", spec_file)):
        aws.s3.put_object(Bucket=MODELS_BUCKET, Key=f"data/{key}", Body=source.read_bytes())
    prefix = f"s3://{MODELS_BUCKET}/data/demo/"
    assert main(["--data", prefix, "--output-dir", str(tmp_path / "s3")]) == 0
    _, metadata = load_model_dir(tmp_path / "s3" / "model")
    assert metadata.data_uri == f"{prefix}breast_cancer.csv"
    assert main(["--data", str(data.parent), "--output-dir", str(tmp_path / "dir")]) == 0


def test_a_data_directory_with_two_data_files_is_refused_naming_them_both(
    demo_dataset: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, spec_file = demo_dataset
    folder = tmp_path / "data"
    folder.mkdir()
    for name in ("a.csv", "b.csv"):
        (folder / name).write_bytes(data.read_bytes())
    (folder / "dataset.yaml").write_bytes(spec_file.read_bytes())
    assert main(["--data", f"{folder}/", "--output-dir", str(tmp_path / "out")]) == (
        ExitStatus.REFUSED
    )
    assert f"--data at {folder}/ holds 2 data files; allowed: exactly one" in log_messages(
        capsys.readouterr().err
    )
