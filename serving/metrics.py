"""Prometheus metrics, kept per worker without locks and added up across workers on scrape.

Each worker owns its numbers (one event loop, so no locking on the hot path) and writes a
snapshot to the shared work directory once a second; `/metrics` answers with the sum of every
worker's snapshot, its own live numbers included, so a scrape sees the whole pod.
"""

from __future__ import annotations

import bisect
import contextlib
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from mlstack_common.artifact import Feature
from serving.capture import CaptureCounts
from serving.model import Predictions
from serving.ranges import RangeCheck

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
VALUE_BUCKETS = (-1000.0, -100.0, -10.0, -1.0, 0.0, 1.0, 10.0, 100.0, 1000.0)

Labels = tuple[tuple[str, str], ...]


class Histogram:
    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value


class Metrics:
    """One worker's metrics."""

    def __init__(
        self,
        model_name: str,
        model_version: str,
        classifier: bool,
        features: tuple[Feature, ...],
    ) -> None:
        self.info: Labels = (("model", model_name), ("model_version", model_version))
        self.ranges = RangeCheck(features)
        self.out_of_range = dict.fromkeys(self.ranges.checked, 0)
        self.classifier = classifier
        self.requests: dict[Labels, int] = defaultdict(int)
        self.latency: dict[Labels, Histogram] = {}
        self.batch_rows = Histogram(BATCH_BUCKETS)
        self.predicted_classes: dict[str, int] = defaultdict(int)
        self.predicted_values = Histogram(VALUE_BUCKETS)
        self.capture: CaptureCounts | None = None

    def request(self, route: str, status: int, seconds: float) -> None:
        self.requests[(("route", route), ("status", str(status)))] += 1
        key = (("route", route),)
        histogram = self.latency.get(key)
        if histogram is None:
            histogram = self.latency[key] = Histogram(LATENCY_BUCKETS)
        histogram.observe(seconds)

    def batch(self, rows: np.ndarray, predictions: Predictions) -> None:
        """A batch the model scored: its size, its values outside the training ranges, and
        what it predicted."""
        self.batch_rows.observe(len(rows))
        for index, count in self.ranges.outside(rows).items():
            self.out_of_range[index] += count
        if self.classifier:
            for label in predictions.labels.tolist():
                self.predicted_classes[label] += 1
        else:
            for value in predictions.labels.tolist():
                self.predicted_values.observe(value)

    def snapshot(self) -> dict[str, Any]:
        def histogram(h: Histogram) -> dict[str, Any]:
            return {"buckets": list(h.buckets), "counts": list(h.counts), "total": h.total}

        return {
            "info": [list(pair) for pair in self.info],
            "requests": [[list(map(list, k)), v] for k, v in self.requests.items()],
            "latency": [[list(map(list, k)), histogram(h)] for k, h in self.latency.items()],
            "batch_rows": histogram(self.batch_rows),
            "classes": dict(self.predicted_classes),
            "out_of_range": {self.ranges.names[i]: n for i, n in self.out_of_range.items()},
            "values": histogram(self.predicted_values),
            "capture": None
            if self.capture is None
            else {
                "written": self.capture.written,
                "dropped": self.capture.dropped,
                "lost": self.capture.lost,
                "write_failures": self.capture.write_failures,
            },
        }


class SharedMetrics:
    """Where workers leave their snapshots, and the sum of them in Prometheus text format."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{os.getpid()}.json"

    def publish(self, metrics: Metrics) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_bytes(orjson.dumps(metrics.snapshot()))
        temporary.replace(self.path)

    def render(self, own: Metrics) -> bytes:
        """The sum of every worker's published snapshot, this one's published first.

        Summing files only (never this worker's live numbers beside the others' older files)
        keeps every counter monotonic whichever worker answers the scrape: each file only
        grows, and a replaced worker's file stays, so its requests stay counted."""
        self.publish(own)
        snapshots = []
        for path in self.directory.glob("*.json"):
            with contextlib.suppress(OSError, orjson.JSONDecodeError):
                snapshots.append(orjson.loads(path.read_bytes()))
        return render(snapshots, own)


def _labels(pairs: Any) -> str:
    return ",".join(f'{k}="{_escape(str(v))}"' for k, v in pairs)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _add_histograms(target: dict[str, Any] | None, source: dict[str, Any]) -> dict[str, Any]:
    if target is None:
        return {
            "buckets": source["buckets"],
            "counts": list(source["counts"]),
            "total": source["total"],
        }
    target["counts"] = [a + b for a, b in zip(target["counts"], source["counts"], strict=True)]
    target["total"] += source["total"]
    return target


def _histogram_lines(name: str, labels: str, h: dict[str, Any]) -> list[str]:
    lines, cumulative = [], 0
    prefix = f"{labels}," if labels else ""
    for bound, count in zip([*h["buckets"], "+Inf"], h["counts"], strict=True):
        cumulative += count
        lines.append(f'{name}_bucket{{{prefix}le="{bound}"}} {cumulative}')
    braces = f"{{{labels}}}" if labels else ""
    lines += [f"{name}_sum{braces} {h['total']}", f"{name}_count{braces} {cumulative}"]
    return lines


def render(snapshots: list[dict[str, Any]], own: Metrics) -> bytes:
    requests: dict[str, int] = defaultdict(int)
    latency: dict[str, dict[str, Any]] = {}
    batch: dict[str, Any] | None = None
    values: dict[str, Any] | None = None
    classes: dict[str, int] = defaultdict(int)
    capture: dict[str, int] = defaultdict(int)
    out_of_range = {own.ranges.names[index]: 0 for index in own.ranges.checked}
    for snapshot in snapshots:
        for labels, count in snapshot["requests"]:
            requests[_labels(labels)] += count
        for labels, h in snapshot["latency"]:
            key = _labels(labels)
            latency[key] = _add_histograms(latency.get(key), h)
        batch = _add_histograms(batch, snapshot["batch_rows"])
        values = _add_histograms(values, snapshot["values"])
        for label, count in snapshot["classes"].items():
            classes[label] += count
        for name, count in (snapshot.get("capture") or {}).items():
            capture[name] += count
        for name, count in snapshot.get("out_of_range", {}).items():
            out_of_range[name] = out_of_range.get(name, 0) + count
    info = _labels(own.info)
    lines = [
        "# HELP mlstack_model_info The model being served.",
        "# TYPE mlstack_model_info gauge",
        f"mlstack_model_info{{{info}}} 1",
        "# HELP mlstack_requests_total Requests by route and status.",
        "# TYPE mlstack_requests_total counter",
        *(f"mlstack_requests_total{{{k}}} {v}" for k, v in sorted(requests.items())),
        "# HELP mlstack_request_duration_seconds Time from request to response.",
        "# TYPE mlstack_request_duration_seconds histogram",
    ]
    for key, h in sorted(latency.items()):
        lines += _histogram_lines("mlstack_request_duration_seconds", key, h)
    lines += [
        "# HELP mlstack_batch_rows Rows per model call.",
        "# TYPE mlstack_batch_rows histogram",
        *(_histogram_lines("mlstack_batch_rows", info, batch) if batch else []),
    ]
    if own.classifier:
        lines += [
            "# HELP mlstack_predictions_total Predicted rows by class.",
            "# TYPE mlstack_predictions_total counter",
            *(
                f'mlstack_predictions_total{{{info},class="{_escape(label)}"}} {count}'
                for label, count in sorted(classes.items())
            ),
        ]
    else:
        lines += [
            "# HELP mlstack_prediction_value Predicted values.",
            "# TYPE mlstack_prediction_value histogram",
            *(_histogram_lines("mlstack_prediction_value", info, values) if values else []),
        ]
    if out_of_range:
        lines += [
            "# HELP mlstack_feature_out_of_range_total Scored values outside the range the "
            "model was trained on (numeric) or its categories (categorical), by feature.",
            "# TYPE mlstack_feature_out_of_range_total counter",
            *(
                f'mlstack_feature_out_of_range_total{{{info},feature="{_escape(name)}"}} {count}'
                for name, count in out_of_range.items()
            ),
        ]
    if own.capture is not None:
        lines += [
            "# HELP mlstack_capture_records_total Captured requests: written to the capture, "
            "dropped while the writer was behind, or lost with a failed write.",
            "# TYPE mlstack_capture_records_total counter",
            *(
                f'mlstack_capture_records_total{{outcome="{outcome}"}} {capture[outcome]}'
                for outcome in ("written", "dropped", "lost")
            ),
            "# HELP mlstack_capture_write_failures_total Capture writes that failed.",
            "# TYPE mlstack_capture_write_failures_total counter",
            f"mlstack_capture_write_failures_total {capture['write_failures']}",
        ]
    return ("\n".join(lines) + "\n").encode()
