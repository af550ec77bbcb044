"""Drift of captured traffic against a version's training baseline, end to end on an AWS
emulator (moto_server on 127.0.0.1): the baseline as training writes it, the version in the
registry, traffic in SageMaker's capture format, and `python -m serving.drift` run as the
CronJob runs it. Traffic drawn like the training data shows no drift; a shifted feature is
named, in the report beside the capture and in CloudWatch."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlstack_common.artifact import Feature
from mlstack_common.exits import ExitStatus
from mlstack_common.registry import ModelRegistry
from serving.drift import COMMAND, Thresholds, compare, population_stability_index
from tests.aws import SERVING_IMAGE, Emulator
from tests.logs import log_messages, log_records
from training.report import baseline_statistics

NOW = datetime(2026, 11, 23, 12, 30, tzinfo=UTC)
FEATURES = (Feature(name="age", type="numeric"), Feature(name="plan", type="categorical"))
GROUP = "churn-dev"


def table(rows: int, seed: int, age_shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40 + age_shift, 8, rows),
            "plan": rng.choice(["basic", "plus", "pro"], rows, p=[0.6, 0.3, 0.1]),
        }
    )


def capture_record(frame: pd.DataFrame, when: datetime, index: int) -> dict[str, Any]:
    body = "\n".join(f"{age:.3f},{plan}" for age, plan in frame.itertuples(index=False))
    return {
        "captureData": {
            "endpointInput": {
                "observedContentType": "text/csv",
                "mode": "INPUT",
                "data": body,
                "encoding": "CSV",
            },
            "endpointOutput": {
                "observedContentType": "text/csv",
                "mode": "OUTPUT",
                "data": "0\n" * len(frame),
                "encoding": "CSV",
            },
        },
        "eventMetadata": {"eventId": f"e{index}", "inferenceTime": when.isoformat()},
        "eventVersion": "0",
    }


def seed_world(emulator: Emulator, traffic: pd.DataFrame) -> None:
    s3 = emulator.client("s3")
    for bucket in ("models", "capture"):
        s3.create_bucket(Bucket=bucket)
    baseline = baseline_statistics(table(5000, seed=1), FEATURES)
    s3.put_object(
        Bucket="models",
        Key="churn/runs/r1/baseline_statistics.json",
        Body=json.dumps(baseline).encode(),
    )
    sagemaker = emulator.client("sagemaker")
    sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
    ModelRegistry(GROUP, sagemaker).register(
        serving_image=SERVING_IMAGE,
        model_data_url="s3://models/churn/abc/model.tar.gz",
        evaluation_url="s3://models/churn/runs/r1/evaluation.json",
        approval_status="Approved",
        description="test",
        metrics={"roc_auc": 0.9},
        lineage={"report": "s3://models/churn/runs/r1", "model_sha256": "a" * 64},
        commit="abc",
    )
    # Two hours of traffic in the window, 50 requests of 20 rows each, one captured by the
    # endpoint and one by the server on Kubernetes, and one hour before it that must not count.
    for hours_ago, chunk, target in (
        (1, 0, "sagemaker"),
        (2, 1, "kubernetes"),
        (30, 2, "sagemaker"),
    ):
        when = NOW.replace(minute=0) - timedelta(hours=hours_ago)
        part = traffic.iloc[chunk * 1000 : (chunk + 1) * 1000]
        lines = [
            json.dumps(capture_record(part.iloc[i : i + 20], when, i)) for i in range(0, 1000, 20)
        ]
        s3.put_object(
            Bucket="capture",
            Key=f"{target}/churn-dev/primary/{when:%Y/%m/%d/%H}/capture-{chunk}.jsonl",
            Body="\n".join(lines).encode(),
        )


def drift_job(
    emulator: Emulator, *extra: str, version: int = 1
) -> subprocess.CompletedProcess[str]:
    """`python -m serving.drift` as the drift CronJob's pod runs it."""
    return subprocess.run(
        [
            *(sys.executable, "-m", "serving.drift", "--model-package", f"{GROUP}/{version}"),
            *extra,
            *("--capture", "s3://capture/sagemaker", "--capture", "s3://capture/kubernetes"),
            *("--endpoint", "churn-dev", "--hours", "24"),
            *("--now", NOW.isoformat()),
        ],
        env=emulator.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run_drift(emulator: Emulator, *extra: str, exit_code: int = 0) -> dict[str, Any]:
    result = drift_job(emulator, *extra)
    assert result.returncode == exit_code, result.stderr
    log_records(result.stderr, COMMAND)
    report: dict[str, Any] = json.loads(result.stdout)
    return report


@pytest.mark.parametrize(
    ("age_shift", "drifted"), [(0.0, []), (24.0, ["age"])], ids=["as trained", "age shifted"]
)
def test_drift_of_captured_traffic_is_found_and_named_only_when_it_is_there(
    emulator: Emulator, age_shift: float, drifted: list[str]
) -> None:
    seed_world(emulator, table(3000, seed=2, age_shift=age_shift))
    report = run_drift(emulator)
    # Both targets' capture counts; the hour 30 hours back is outside the window.
    assert report["requests"] == 100
    assert report["rows"] == 2000
    assert report["drifted_features"] == drifted
    age = next(f for f in report["features"] if f["name"] == "age")
    if drifted:
        assert age["psi"] > 1
        assert age["out_of_range_share"] > Thresholds().out_of_range_share
        assert any("outside the training range" in reason for reason in age["reasons"])
    else:
        assert age["psi"] < 0.05
    # The report lies beside the capture; the figures are in CloudWatch for the alarms.
    written = emulator.client("s3").get_object(
        Bucket="capture", Key="sagemaker/churn-dev/drift/2026-11-23T12.json"
    )
    assert json.loads(written["Body"].read())["drifted_features"] == drifted
    metrics = emulator.client("cloudwatch").list_metrics(Namespace="mlstack/Drift")["Metrics"]
    assert {
        (m["MetricName"], {d["Name"]: d["Value"] for d in m["Dimensions"]}["Feature"])
        for m in metrics
    } >= {("PopulationStabilityIndex", "age"), ("OutOfRangeShare", "plan")}


def test_retraining_that_cannot_start_fails_the_run_after_the_report(emulator: Emulator) -> None:
    seed_world(emulator, table(3000, seed=2, age_shift=24.0))
    result = drift_job(emulator, "--retrain-cronjob", "training-churn")
    assert result.returncode == ExitStatus.UNREACHABLE, result.stderr
    assert "retraining could not be started" in log_messages(result.stderr)
    report = json.loads(result.stdout)
    assert report["drifted_features"] == ["age"]
    assert "not in a Kubernetes pod" in report["retraining"]["error"]
    written = emulator.client("s3").get_object(
        Bucket="capture", Key="sagemaker/churn-dev/drift/2026-11-23T12.json"
    )
    assert json.loads(written["Body"].read())["retraining"] == report["retraining"]


def test_a_version_without_a_training_report_is_refused_with_one_log_line(
    emulator: Emulator,
) -> None:
    seed_world(emulator, table(3000, seed=2))
    ModelRegistry(GROUP, emulator.client("sagemaker")).register(
        serving_image=SERVING_IMAGE,
        model_data_url="s3://models/churn/def/model.tar.gz",
        evaluation_url="s3://models/churn/runs/r2/evaluation.json",
        approval_status="Approved",
        description="registered by hand, without training's lineage",
        metrics={"roc_auc": 0.9},
        lineage={"model_sha256": "b" * 64},
        commit="abc",
    )
    result = drift_job(emulator, version=2)
    assert result.returncode == ExitStatus.REFUSED
    [logged] = log_records(result.stderr, COMMAND)
    assert logged["level"] == "ERROR"
    assert logged["message"].endswith("names no training report to compare with")
    assert result.stdout == ""


def test_without_drift_nothing_is_retrained(emulator: Emulator) -> None:
    seed_world(emulator, table(3000, seed=2))
    report = run_drift(emulator, "--retrain-cronjob", "training-churn")
    assert report["drifted_features"] == []
    assert "retraining" not in report


def test_an_unseen_category_and_missing_values_count_against_their_feature() -> None:
    baseline = baseline_statistics(table(5000, seed=1), FEATURES)
    rows = [[40.0, "enterprise"]] * 30 + [[None, "basic"]] * 20 + [[41.0, "basic"]] * 50
    by_name = {f.name: f for f in compare(baseline, rows, Thresholds())}
    assert by_name["plan"].out_of_range_share == pytest.approx(0.3)
    assert by_name["age"].missing_share == pytest.approx(0.2)
    assert any("missing" in reason for reason in by_name["age"].reasons)


def test_the_index_is_zero_for_equal_shares_and_grows_with_the_shift() -> None:
    assert population_stability_index([0.5, 0.5], [0.5, 0.5]) == 0
    small = population_stability_index([0.5, 0.5], [0.45, 0.55])
    large = population_stability_index([0.5, 0.5], [0.1, 0.9])
    assert 0 < small < 0.1 < large


def test_the_stack_alarms_on_the_namespace_the_job_publishes_to() -> None:
    from infra.documents.monitoring import DRIFT_NAMESPACE
    from serving.drift import METRIC_NAMESPACE

    assert DRIFT_NAMESPACE == METRIC_NAMESPACE
