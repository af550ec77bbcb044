"""What is written beside a model: baseline statistics for drift detection and the model card."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from mlstack_common.artifact import Feature, ModelMetadata
from training.errors import StatisticsError
from training.gate import GateDecision

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HISTOGRAM_BINS = 10


def served_features(
    spec_features: Sequence[Feature], baseline: Mapping[str, Any]
) -> tuple[Feature, ...]:
    """The features as the model's metadata records them: a numeric feature's range is the
    one the dataset declares, else the one training saw (the baseline's), so the server can
    count live values outside it (serving.ranges)."""
    served = []
    for feature in spec_features:
        seen = baseline["features"].get(feature.name, {})
        if feature.type == "numeric" and "min" in seen:
            feature = replace(
                feature,
                minimum=seen["min"] if feature.minimum is None else feature.minimum,
                maximum=seen["max"] if feature.maximum is None else feature.maximum,
            )
        served.append(feature)
    return tuple(served)


def baseline_statistics(features: pd.DataFrame, spec_features: Sequence[Feature]) -> dict[str, Any]:
    """Per-feature statistics of the training data that live traffic is later compared with.

    Numeric features get moments, quantiles and a histogram with fixed edges (so a drift check
    can bin live values the same way); categorical ones get category frequencies. Every number
    is finite, or `StatisticsError` names the feature and the statistic: a non-finite one would
    be written as null (`strict_json`), which the drift job cannot compare with.
    """
    statistics: dict[str, Any] = {"rows": len(features), "features": {}}
    for feature in spec_features:
        column = features[feature.name]
        entry: dict[str, Any] = {"type": feature.type, "missing_share": float(column.isna().mean())}
        present = column.dropna()
        if feature.type == "numeric":
            entry.update(_numeric_statistics(feature.name, present.to_numpy(dtype=np.float64)))
        else:
            shares = present.astype(str).value_counts(normalize=True).sort_index()
            entry["categories"] = {str(k): float(v) for k, v in shares.items()}
        _refuse_non_finite(feature.name, entry)
        statistics["features"][feature.name] = entry
    return statistics


def _numeric_statistics(name: str, values: np.ndarray) -> dict[str, Any]:
    if not len(values):
        raise StatisticsError(f"baseline statistics of feature {name!r}: no values to describe")
    # Overflow is checked for below, by value; numpy's warning would only be a stray stderr line.
    with np.errstate(over="ignore", invalid="ignore"):
        low, high = float(values.min()), float(values.max())
        if not math.isfinite(high - low):
            # np.histogram raises on a span that overflows; say which feature instead.
            raise StatisticsError(
                f"baseline statistics of feature {name!r}: the range {low!r} to {high!r} is "
                "wider than a float holds; allowed: finite statistics only"
            )
        counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
        return {
            "mean": float(values.mean()),
            "std": float(values.std()),
            "min": low,
            "max": high,
            "quantiles": {f"p{int(q * 100):02d}": float(np.quantile(values, q)) for q in QUANTILES},
            "histogram": {
                "edges": [float(e) for e in edges],
                "shares": [float(c) / len(values) for c in counts],
            },
        }


def _refuse_non_finite(name: str, value: Any, path: str = "") -> None:
    """Raise `StatisticsError` naming the first non-finite number in `value` by its path."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            _refuse_non_finite(name, item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_non_finite(name, item, f"{path}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise StatisticsError(
            f"baseline statistics of feature {name!r}: {path} is {value}; allowed: finite "
            "statistics only (it would be recorded as null)"
        )


def _metric_table(
    metrics: Mapping[str, float],
    baseline: Mapping[str, float],
    approved: Mapping[str, float] | None,
) -> list[str]:
    header = "| metric | this version | baseline (dummy) |" + (
        " approved version |" if approved else ""
    )
    rule = "| --- | --- | --- |" + (" --- |" if approved else "")
    rows = [header, rule]
    for name in sorted(metrics):
        row = f"| {name} | {metrics[name]:.4f} | {baseline.get(name, float('nan')):.4f} |"
        if approved:
            value = approved.get(name)
            row += f" {value:.4f} |" if value is not None else " - |"
        rows.append(row)
    return rows


def model_card(
    metadata: ModelMetadata,
    *,
    version: str,
    rows: int,
    holdout_rows: int,
    baseline_metrics: Mapping[str, float],
    approved_metrics: Mapping[str, float] | None,
    gate: GateDecision,
    approval_status: str,
    plots: Sequence[str],
    mlflow_run: str | None = None,
) -> str:
    """The model card (Markdown): what the model is, what it was trained on, how it did."""
    lines = [
        f"# Model card: {metadata.model_name}, version {version}",
        "",
        f"- **Task:** {metadata.task}; target `{metadata.target}`"
        + (f" (classes: {', '.join(metadata.classes)})" if metadata.classes else ""),
        f"- **Algorithm:** {metadata.algorithm}",
        f"- **Registry status:** {approval_status}",
        f"- **Quality gate:** {gate.summary}",
        "",
        "## Training data",
        "",
        f"- **Source:** `{metadata.data_uri or 'not recorded'}`",
        f"- **sha256:** `{metadata.data_sha256}`",
        f"- **Rows:** {rows} ({rows - holdout_rows} for training, {holdout_rows} held out)",
        "",
        "| feature | type | allowed |",
        "| --- | --- | --- |",
    ]
    for feature in metadata.features:
        if feature.type == "categorical":
            allowed = ", ".join(feature.categories)
        else:
            allowed = f"[{feature.minimum}, {feature.maximum}]"
        lines.append(f"| {feature.name} | {feature.type} | {allowed} |")
    lines += [
        "",
        "## Evaluation (hold-out set)",
        "",
        *_metric_table(metadata.metrics, baseline_metrics, approved_metrics),
        "",
        *(f"![{name}]({name})" for name in plots),
        "",
        "## Lineage",
        "",
        f"- **Code:** git commit `{metadata.git_commit or 'unknown'}`",
        f"- **Training image:** `{metadata.image_digest or 'not recorded'}`",
        f"- **Model file sha256:** `{metadata.model_sha256}`",
        *([f"- **MLflow run:** `{mlflow_run}`"] if mlflow_run else []),
        "- **Hyperparameters:** "
        + ", ".join(f"`{k}={v}`" for k, v in sorted(metadata.hyperparameters.items())),
        "- **Libraries:** "
        + ", ".join(f"{k} {v}" for k, v in sorted(metadata.library_versions.items())),
        "",
        "## Intended use and limits",
        "",
        "Fill in before approving: who uses the predictions, for what decision, and where the",
        "training data does not represent the population the model will see.",
        "",
    ]
    return "\n".join(lines)
