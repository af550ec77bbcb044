"""Training end to end under moto: register, gate against the approved version, determinism."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image

from mlstack_common.artifact import MODEL_FILE, load_model_dir, pack, read_metadata
from mlstack_common.exits import ExitStatus
from tests.aws import SERVING_IMAGE, Aws
from tests.logs import log_messages
from training.cli import main


def train(data: Path, out: Path, aws: Aws, *extra: str) -> int:
    return main(
        [
            "--data", str(data),
            "--output-dir", str(out),
            "--models-uri", aws.models_uri,
            "--model-package-group", aws.group,
            "--serving-image", SERVING_IMAGE,
            *extra,
        ]
    )  # fmt: skip


def test_two_versions_are_registered_and_the_second_is_gated_against_the_approved_first(
    aws: Aws, demo_dataset: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSTACK_GIT_COMMIT", "0123456789abcdef")
    data, _ = demo_dataset
    assert train(data, tmp_path / "v1", aws) == 0
    [first] = aws.versions()
    assert first["ModelApprovalStatus"] == "PendingManualApproval"
    aws.sagemaker.update_model_package(
        ModelPackageArn=first["ModelPackageArn"], ModelApprovalStatus="Approved"
    )

    assert train(data, tmp_path / "v2", aws, "--algorithm", "linear") == 0
    first, second = aws.versions()
    assert (first["ModelPackageVersion"], second["ModelPackageVersion"]) == (1, 2)
    evaluation = json.loads((tmp_path / "v2" / "report" / "evaluation.json").read_text())
    assert evaluation["approved_version"] == first["ModelPackageArn"]
    # The approved version was scored on the second run's hold-out set, not copied from its record.
    assert evaluation["approved_metrics"]["roc_auc"] == pytest.approx(
        float(first["CustomerMetadataProperties"]["metric.roc_auc"]), abs=1e-5
    )
    assert any("vs the approved version" in reason for reason in evaluation["gate"]["reasons"])

    for version, run in ((first, "v1"), (second, "v2")):
        lineage = version["CustomerMetadataProperties"]
        assert lineage["data_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
        assert lineage["git_commit"] == "0123456789abcdef"
        assert version["MetadataProperties"]["CommitId"] == "0123456789abcdef"
        assert float(lineage["metric.roc_auc"]) > 0.9
        container = version["InferenceSpecification"]["Containers"][0]
        assert container["Image"] == SERVING_IMAGE
        assert version["InferenceSpecification"]["SupportedContentTypes"] == [
            "application/json",
            "text/csv",
        ]
        metadata = read_metadata(tmp_path / run / "model")
        assert lineage["model_sha256"] == metadata.model_sha256
        key = container["ModelDataUrl"].removeprefix("s3://mlstack-models-test/")
        stored = aws.s3.get_object(Bucket="mlstack-models-test", Key=key)["Body"].read()
        assert stored == pack(tmp_path / run / "model")
        evaluation_uri = version["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]
        prefix = evaluation_uri.removeprefix("s3://mlstack-models-test/").rsplit("/", 1)[0]
        published = {k.rsplit("/", 1)[-1] for k in aws.model_objects() if k.startswith(prefix)}
        assert {"evaluation.json", "model_card.md", "roc_curve.png",
                "precision_recall_curve.png", "confusion_matrix.png",
                "baseline_statistics.json", "dataset_spec.yaml"} <= published  # fmt: skip
        card = aws.s3.get_object(Bucket="mlstack-models-test", Key=f"{prefix}/model_card.md")
        text = card["Body"].read().decode()
        assert f"version {version['ModelPackageVersion']}" in text
        assert "roc_auc" in text


def test_same_data_and_seed_give_identical_metrics_and_model_file(
    demo_dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    data, _ = demo_dataset
    outputs = []
    for run in ("a", "b"):
        assert main(["--data", str(data), "--output-dir", str(tmp_path / run)]) == 0
        model_dir = tmp_path / run / "model"
        outputs.append(
            (
                read_metadata(model_dir).metrics,
                hashlib.sha256((model_dir / MODEL_FILE).read_bytes()).hexdigest(),
                pack(model_dir),
            )
        )
    assert outputs[0] == outputs[1]
    model, metadata = load_model_dir(tmp_path / "a" / "model")
    assert list(model.classes_) == list(metadata.classes) == ["benign", "malignant"]


def test_a_version_worse_than_the_approved_one_is_refused_and_not_registered(
    aws: Aws, demo_dataset: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = demo_dataset
    assert train(data, tmp_path / "good", aws) == 0
    [good] = aws.versions()
    aws.sagemaker.update_model_package(
        ModelPackageArn=good["ModelPackageArn"], ModelApprovalStatus="Approved"
    )
    objects = aws.model_objects()
    weak = ("--max-iter", "1", "--max-leaf-nodes", "2", "--max-regression", "0.0001")
    assert train(data, tmp_path / "weak", aws, *weak) == ExitStatus.GATE
    assert "worse than the approved version" in log_messages(capsys.readouterr().err)
    assert len(aws.versions()) == 1
    assert aws.model_objects() == objects
    card = (tmp_path / "weak" / "report" / "model_card.md").read_text()
    assert "not registered: the quality gate refused it" in card


def test_a_refused_version_is_kept_as_rejected_when_config_says_so(
    aws: Aws, demo_dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    data, _ = demo_dataset
    # Registered for the record, but still a refusal: a CI job must not read it as a success.
    run = ("--min-improvement", "0.9", "--keep-rejected")
    assert train(data, tmp_path / "run", aws, *run) == ExitStatus.GATE
    [version] = aws.versions()
    assert version["ModelApprovalStatus"] == "Rejected"
    assert "less than the required 0.9" in version["ModelPackageDescription"]


def test_auto_approve_registers_a_passing_version_as_approved(
    aws: Aws, demo_dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    data, _ = demo_dataset
    assert train(data, tmp_path / "run", aws, "--auto-approve") == 0
    assert [v["ModelApprovalStatus"] for v in aws.versions()] == ["Approved"]


def test_plots_exist_and_show_what_their_titles_say(
    demo_dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    data, _ = demo_dataset
    assert main(["--data", str(data), "--output-dir", str(tmp_path)]) == 0
    expected = {
        "roc_curve.png": "ROC curve",
        "precision_recall_curve.png": "Precision-recall curve",
        "confusion_matrix.png": "Confusion matrix",
    }
    for name, title in expected.items():
        with Image.open(tmp_path / "report" / name) as image:
            assert image.info["Title"] == title
            assert image.size == (600, 500)
            colours = image.convert("L").getcolors(maxcolors=1 << 16) or []
            assert len(colours) > 10, f"{name} looks blank"
    card = (tmp_path / "report" / "model_card.md").read_text()
    assert all(f"![{name}]({name})" in card for name in expected)


def test_a_retrain_that_yields_the_same_model_keeps_each_versions_report(
    aws: Aws, demo_dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    data, _ = demo_dataset
    assert train(data, tmp_path / "v1", aws) == 0
    assert train(data, tmp_path / "v2", aws) == 0
    first, second = aws.versions()
    container = [v["InferenceSpecification"]["Containers"][0] for v in (first, second)]
    assert container[0]["ModelDataUrl"] == container[1]["ModelDataUrl"], "same bytes, one key"
    reports = [v["CustomerMetadataProperties"]["report"] for v in (first, second)]
    assert reports[0] != reports[1]
    for version, report in zip((first, second), reports, strict=True):
        key = report.removeprefix("s3://mlstack-models-test/") + "/model_card.md"
        card = aws.s3.get_object(Bucket="mlstack-models-test", Key=key)["Body"].read().decode()
        assert f"version {version['ModelPackageVersion']}" in card


def test_only_the_files_this_run_wrote_are_published(
    aws: Aws, demo_dataset: tuple[Path, Path], tmp_path: Path
) -> None:
    data, _ = demo_dataset
    stale = tmp_path / "run" / "report" / "residuals.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from an earlier run")
    assert train(data, tmp_path / "run", aws) == 0
    assert not [k for k in aws.model_objects() if k.endswith("residuals.png")]


def test_nothing_is_published_for_a_group_that_does_not_exist(
    aws: Aws, demo_dataset: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, _ = demo_dataset
    code = main(
        ["--data", str(data), "--output-dir", str(tmp_path / "run"),
         "--models-uri", aws.models_uri, "--model-package-group", "no-such-group",
         "--serving-image", SERVING_IMAGE]
    )  # fmt: skip
    assert code == ExitStatus.UNREACHABLE
    assert "model package group 'no-such-group' cannot be used" in log_messages(
        capsys.readouterr().err
    )
    assert aws.model_objects() == []


def test_a_failed_registration_removes_the_report_it_uploaded(
    aws: Aws, demo_dataset: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Extends moto: SageMaker refusing CreateModelPackage after the group check passed (a
    # throttle, a quota, a policy change in between).
    from moto.sagemaker.models import SageMakerModelBackend

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise ValueError("ModelPackage quota exceeded")

    monkeypatch.setattr(SageMakerModelBackend, "create_model_package", refuse)
    data, _ = demo_dataset
    assert train(data, tmp_path / "run", aws) == ExitStatus.UNREACHABLE
    assert aws.versions() == []
    left = aws.model_objects()
    # The content-addressed model stays for the next run of the same model; no report does.
    assert [key.rsplit("/", 1)[-1] for key in left] == ["model.tar.gz"]


def test_a_model_of_other_features_is_not_gated_against_the_approved_one(
    aws: Aws, demo_dataset: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, spec = demo_dataset
    assert train(data, tmp_path / "v1", aws, "--auto-approve") == 0
    # Another dataset in the same group: the first ten features only.
    spec_document = yaml.safe_load(spec.read_text())
    spec_document["features"] = spec_document["features"][:10]
    other = tmp_path / "other"
    other.mkdir()
    (other / "dataset.yaml").write_text(yaml.safe_dump(spec_document))
    kept = [f["name"] for f in spec_document["features"]] + ["diagnosis"]
    frame = pd.read_csv(data)[kept]
    frame.to_csv(other / "data.csv", index=False)
    assert train(other / "data.csv", tmp_path / "v2", aws) == ExitStatus.GATE
    assert "not comparable with the approved version: features added: none" in (
        log_messages(capsys.readouterr().err)
    )
    assert len(aws.versions()) == 1
    assert train(other / "data.csv", tmp_path / "v3", aws, "--accept-schema-change") == 0
    assert len(aws.versions()) == 2


def test_a_class_too_rare_to_hold_out_is_refused_with_its_count(
    aws: Aws, demo_dataset: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, spec = demo_dataset
    frame = pd.read_csv(data)
    frame.loc[frame.index[:3], "diagnosis"] = "rare"
    rare = tmp_path / "rare"
    rare.mkdir()
    frame.to_csv(rare / "data.csv", index=False)
    (rare / "dataset.yaml").write_text(spec.read_text())
    assert train(rare / "data.csv", tmp_path / "run", aws) == ExitStatus.REFUSED
    err = log_messages(capsys.readouterr().err)
    assert "too few rows of class 'rare' (3 rows) to hold one out" in err
    assert "at least 5 rows per class with test_size=0.2" in err
    assert aws.model_objects() == []


def test_a_missing_data_file_is_named_as_the_data_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--data", str(tmp_path / "nope.csv"), "--output-dir", str(tmp_path / "out")])
    assert code == ExitStatus.REFUSED
    assert f"data file {tmp_path / 'nope.csv'} does not exist" in log_messages(
        capsys.readouterr().err
    )
