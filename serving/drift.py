"""Drift: live traffic of a model version compared with the data it was trained on.

The captured requests of the last window (SageMaker's capture format, JSON lines under
`<capture>/<endpoint>/<variant>/yyyy/mm/dd/hh/`, from a SageMaker endpoint or the server on
Kubernetes, or both: each `--capture` prefix is read) are compared, feature by feature, with the
version's `baseline_statistics.json` (written by training beside its model card): population
stability index over the baseline's own histogram bins or categories, the share of values
outside the training range, and the share of missing values. The report is written beside the
capture and each feature's figures go to CloudWatch, where the drift alarms watch them.

Run as `python -m serving.drift` (the stack's drift CronJob does): it prints the report as one
JSON line and exits 0 whether or not there is drift; drift is the report's and the alarms' news,
not a failed job. With `--retrain-cronjob`, drift also starts the model's training
(serving/retrain.py); a retraining that cannot be started fails the run, after the report.
Failures are JSON log lines on stderr (`mlstack_common.logs`); exit statuses are those of
`mlstack_common.exits`, as `EXIT_HELP` lists them.
"""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import logging
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from mlstack_common import storage
from mlstack_common.exits import ExitStatus, exit_status_help
from mlstack_common.logs import configure_logging
from mlstack_common.registry import RegistryError, resolve_reference, sagemaker_client
from serving.codec import CSV, JSON, json_rows, media_type

COMMAND = "python -m serving.drift"
log = logging.getLogger("mlstack.serving.drift")
EXIT_HELP = exit_status_help(
    ExitStatus.OK,
    ExitStatus.REFUSED,
    ExitStatus.USAGE,
    ExitStatus.UNREACHABLE,
    details={
        ExitStatus.OK: "the report is written, whether or not there is drift",
        ExitStatus.REFUSED: "the version names no training report to compare with",
        ExitStatus.USAGE: "bad arguments",
        ExitStatus.UNREACHABLE: "the registry, storage or CloudWatch could not be reached or "
        "failed, or the retraining could not be started (after the report)",
    },
)
METRIC_NAMESPACE = "mlstack/Drift"
BASELINE_FILE = "baseline_statistics.json"
REPORT_PROPERTY = "report"
"""The version's customer metadata naming its training report prefix."""
EPSILON = 1e-4
"""Share given to an empty bin, so the index stays finite."""


class NoBaselineError(ValueError):
    """The version names no training report, so there is nothing to compare with."""


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    psi: float = 0.2
    """0.1-0.2 is a moderate shift, above 0.2 a significant one (the usual reading)."""
    out_of_range_share: float = 0.05
    missing_share_increase: float = 0.05


@dataclass(frozen=True, kw_only=True)
class FeatureDrift:
    name: str
    type: str
    psi: float
    out_of_range_share: float
    missing_share: float
    baseline_missing_share: float
    reasons: list[str] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return bool(self.reasons)


def population_stability_index(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Σ (actual - expected) · ln(actual / expected) over the bins, empty bins at EPSILON."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, EPSILON), max(a, EPSILON)
        total += (a - e) * math.log(a / e)
    return total


def _shares(counts: Sequence[int]) -> list[float]:
    n = sum(counts)
    return [c / n for c in counts] if n else [0.0] * len(counts)


def _is_missing(value: Any) -> bool:
    if value is None or value == "":
        return True
    return isinstance(value, float) and math.isnan(value)


def _numeric(values: Sequence[Any], baseline: Mapping[str, Any]) -> tuple[float, float]:
    """PSI over the baseline's histogram edges (values past the ends fall in the end bins)
    and the share of values outside the training range."""
    edges: list[float] = baseline["histogram"]["edges"]
    counts = [0] * (len(edges) - 1)
    outside = 0
    numbers = []
    for value in values:
        try:
            numbers.append(float(value))
        except (TypeError, ValueError):
            outside += 1  # not a number at all: certainly not in the training range
    for number in numbers:
        if number < baseline["min"] or number > baseline["max"]:
            outside += 1
        index = next((i for i, edge in enumerate(edges[1:-1]) if number < edge), len(counts) - 1)
        counts[index] += 1
    psi = population_stability_index(baseline["histogram"]["shares"], _shares(counts))
    return psi, outside / len(values) if values else 0.0


def _categorical(values: Sequence[Any], baseline: Mapping[str, Any]) -> tuple[float, float]:
    """PSI over the baseline's categories plus one bin for unseen ones, whose share is the
    out-of-range share."""
    categories = list(baseline["categories"])
    counts = [0] * (len(categories) + 1)
    for value in values:
        text = str(value)
        counts[categories.index(text) if text in categories else -1] += 1
    expected = [*baseline["categories"].values(), 0.0]
    actual = _shares(counts)
    return population_stability_index(expected, actual), actual[-1] if values else 0.0


def compare(
    baseline: Mapping[str, Any], rows: Sequence[Sequence[Any]], thresholds: Thresholds
) -> list[FeatureDrift]:
    """Each baseline feature (in the baseline's order, which is the model's) against the
    values in `rows`."""
    results = []
    for index, (name, stats) in enumerate(baseline["features"].items()):
        column = [row[index] if index < len(row) else None for row in rows]
        present = [value for value in column if not _is_missing(value)]
        missing = 1 - len(present) / len(column) if column else 0.0
        if stats["type"] == "numeric":
            psi, outside = _numeric(present, stats)
        else:
            psi, outside = _categorical(present, stats)
        reasons = []
        if psi > thresholds.psi:
            reasons.append(f"population stability index {psi:.3f} > {thresholds.psi}")
        if outside > thresholds.out_of_range_share:
            reasons.append(
                f"{outside:.1%} of values outside the training range "
                f"(> {thresholds.out_of_range_share:.0%})"
            )
        if missing - stats["missing_share"] > thresholds.missing_share_increase:
            reasons.append(
                f"{missing:.1%} missing, {stats['missing_share']:.1%} in training "
                f"(+{thresholds.missing_share_increase:.0%} allowed)"
            )
        results.append(
            FeatureDrift(
                name=name,
                type=stats["type"],
                psi=round(psi, 6),
                out_of_range_share=round(outside, 6),
                missing_share=round(missing, 6),
                baseline_missing_share=stats["missing_share"],
                reasons=reasons,
            )
        )
    return results


def _request_rows(record: Mapping[str, Any], names: Sequence[str]) -> list[list[Any]]:
    """The rows of one captured request, in feature order; a request that cannot be read as
    rows contributes none (the server refused it, and drift is about what it answered)."""
    captured = record.get("captureData", {}).get("endpointInput", {})
    data = captured.get("data", "")
    body = base64.b64decode(data) if captured.get("encoding") == "BASE64" else data.encode()
    kind = media_type(captured.get("observedContentType"))
    try:
        if kind == CSV:
            return [row for row in csv.reader(io.StringIO(body.decode())) if row]
        if kind == JSON:
            rows = json_rows(orjson.loads(body))
            return [[row.get(n) for n in names] if isinstance(row, dict) else row for row in rows]
    except (ValueError, TypeError):
        return []
    return []


def hour_prefixes(
    capture: str, endpoint: str, variant: str, end: datetime, hours: int
) -> list[str]:
    """The capture prefixes of the `hours` whole hours before `end`."""
    last = end.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return [
        storage.join(
            capture, endpoint, variant, (last - timedelta(hours=h)).strftime("%Y/%m/%d/%H")
        )
        + "/"
        for h in range(hours, 0, -1)
    ]


def captured_records(prefixes: Iterable[str]) -> list[dict[str, Any]]:
    records = []
    for prefix in prefixes:
        bucket, key = storage.split_s3(prefix)
        paginator = storage.s3_client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket, Prefix=key):
            for item in page.get("Contents", []):
                text = storage.read_bytes(f"s3://{bucket}/{item['Key']}").decode()
                records += [json.loads(line) for line in text.splitlines() if line.strip()]
    return records


@dataclass(frozen=True, kw_only=True)
class DriftReport:
    model_package: str
    endpoint: str
    variant: str
    window_start: str
    window_end: str
    requests: int
    rows: int
    features: list[FeatureDrift]

    @property
    def drifted_features(self) -> list[str]:
        return [f.name for f in self.features if f.drifted]

    def to_json(self) -> dict[str, Any]:
        document = asdict(self)
        document["drifted_features"] = self.drifted_features
        return document


def publish(report: DriftReport, cloudwatch: Any) -> None:
    """One datapoint per feature and figure, dimensioned by endpoint and feature."""
    data = [
        {
            "MetricName": metric,
            "Dimensions": [
                {"Name": "EndpointName", "Value": report.endpoint},
                {"Name": "Feature", "Value": feature.name},
            ],
            "Value": value,
        }
        for feature in report.features
        for metric, value in (
            ("PopulationStabilityIndex", feature.psi),
            ("OutOfRangeShare", feature.out_of_range_share),
            ("MissingShare", feature.missing_share),
        )
    ]
    for start in range(0, len(data), 500):
        cloudwatch.put_metric_data(Namespace=METRIC_NAMESPACE, MetricData=data[start : start + 500])


def detect(
    *,
    model_package: str,
    captures: Sequence[str],
    endpoint: str,
    variant: str,
    end: datetime,
    hours: int,
    thresholds: Thresholds,
) -> DriftReport:
    package = resolve_reference(sagemaker_client(), model_package)
    report_prefix = package.properties.get(REPORT_PROPERTY)
    if not report_prefix:
        raise NoBaselineError(
            f"model package {package.arn} names no training report to compare with"
        )
    baseline = json.loads(storage.read_bytes(storage.join(report_prefix, BASELINE_FILE)))
    names = list(baseline["features"])
    prefixes = [
        prefix
        for capture in captures
        for prefix in hour_prefixes(capture, endpoint, variant, end, hours)
    ]
    records = captured_records(prefixes)
    rows = [row for record in records for row in _request_rows(record, names)]
    return DriftReport(
        model_package=package.arn,
        endpoint=endpoint,
        variant=variant,
        window_start=(end - timedelta(hours=hours)).isoformat(),
        window_end=end.isoformat(),
        requests=len(records),
        rows=len(rows),
        features=compare(baseline, rows, thresholds) if rows else [],
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description=__doc__.split("\n\n")[0], epilog=EXIT_HELP
    )
    parser.add_argument("--model-package", required=True, help="ARN or <group>/<version>")
    parser.add_argument(
        "--capture",
        required=True,
        action="append",
        help="s3:// prefix a capture is under; repeat it to read every target serving the "
        "model (the report goes under the first)",
    )
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--variant", default="primary")
    parser.add_argument("--hours", type=int, default=24, help="the window, in whole hours (24)")
    parser.add_argument("--psi-threshold", type=float, default=Thresholds.psi)
    parser.add_argument(
        "--out-of-range-threshold", type=float, default=Thresholds.out_of_range_share
    )
    parser.add_argument(
        "--missing-threshold", type=float, default=Thresholds.missing_share_increase
    )
    parser.add_argument(
        "--retrain-cronjob",
        default="",
        help="on drift, start a Job from this training CronJob of the pod's namespace (as "
        "`kubectl create job --from=cronjob/NAME`), at most one per hour",
    )
    parser.add_argument("--now", type=datetime.fromisoformat, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.hours < 1:
        parser.error(f"--hours {args.hours}: allowed: a whole number of hours, at least 1")
    configure_logging(COMMAND)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return _run(args)
    except NoBaselineError as error:
        return _fail(str(error), ExitStatus.REFUSED)
    except (storage.StorageError, RegistryError, BotoCoreError, ClientError) as error:
        return _fail(f"failed: {error}", ExitStatus.UNREACHABLE)


def _fail(message: str, status: ExitStatus) -> int:
    log.error(message, extra={"exit_status": int(status)})
    return status


def _run(args: argparse.Namespace) -> int:
    end = args.now or datetime.now(UTC)
    report = detect(
        model_package=args.model_package,
        captures=args.capture,
        endpoint=args.endpoint,
        variant=args.variant,
        end=end,
        hours=args.hours,
        thresholds=Thresholds(
            psi=args.psi_threshold,
            out_of_range_share=args.out_of_range_threshold,
            missing_share_increase=args.missing_threshold,
        ),
    )
    document = report.to_json()
    failed = False
    if args.retrain_cronjob and report.drifted_features:
        from serving.cluster_api import ClusterApiError

        try:
            document["retraining"] = _retrain(args.retrain_cronjob, end, report)
        except ClusterApiError as error:
            # The report and the figures still go out; the job fails so the failure shows.
            document["retraining"] = {"error": str(error)}
            log.error(f"retraining could not be started: {error}")
            failed = True
    storage.write_bytes(
        storage.join(args.capture[0], args.endpoint, "drift", end.strftime("%Y-%m-%dT%H.json")),
        json.dumps(document, sort_keys=True).encode(),
        "application/json",
    )
    if report.features:
        import boto3

        publish(report, boto3.client("cloudwatch"))
    print(json.dumps(document, sort_keys=True))
    return ExitStatus.UNREACHABLE if failed else ExitStatus.OK


def _retrain(cron_job: str, end: datetime, report: DriftReport) -> dict[str, Any]:
    from serving.cluster_api import ClusterApi
    from serving.retrain import drift_job_name, start_training

    api = ClusterApi.in_cluster()
    reason = f"drift of {', '.join(report.drifted_features)} on {report.endpoint}"
    job, started = start_training(
        api, api.namespace, cron_job, drift_job_name(cron_job, end), reason
    )
    return {"job": job, "started": started, "reason": reason}


if __name__ == "__main__":
    sys.exit(main())
