"""The quality gate's verdicts, and the numbers it can be given: pure functions, no AWS."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mlstack_common.artifact import ModelMetadata, json_safe, strict_json
from training.gate import decide
from training.run import schema_difference
from training.settings import GateSettings
from training.spec import load_spec

GOOD = {"roc_auc": 0.95, "log_loss": 0.2, "accuracy": 0.9}
BASELINE = {"roc_auc": 0.5, "log_loss": 0.69, "accuracy": 0.6}


def test_a_metric_that_is_not_a_number_fails_the_gate() -> None:
    # NaN compares false with everything: without this, `lift < margin` lets it through.
    nan = {**GOOD, "roc_auc": math.nan}
    verdict = decide("classification", nan, BASELINE, None, GateSettings())
    assert not verdict.passed
    assert "roc_auc of the candidate is not a number (roc_auc=nan)" in verdict.summary
    approved_nan = decide("classification", GOOD, BASELINE, {"roc_auc": math.nan}, GateSettings())
    assert not approved_nan.passed
    assert "vs the approved version cannot be computed" in approved_nan.summary


def test_probabilities_worse_calibrated_than_the_baseline_fail_the_gate() -> None:
    overconfident = {**GOOD, "log_loss": 0.9}
    verdict = decide("classification", overconfident, BASELINE, None, GateSettings())
    assert not verdict.passed
    assert "log_loss 0.9000 is worse than the baseline's 0.6900" in verdict.summary
    assert decide("classification", GOOD, BASELINE, None, GateSettings()).passed


def test_an_incomparable_approved_version_refuses_unless_a_schema_change_is_accepted() -> None:
    why = "features added: ['b'], dropped: none"
    refused = decide("classification", GOOD, BASELINE, GOOD, GateSettings(), incomparable=why)
    assert not refused.passed
    assert f"not comparable with the approved version: {why}" in refused.summary
    accepted = decide(
        "classification",
        GOOD,
        BASELINE,
        GOOD,
        GateSettings(accept_schema_change=True),
        incomparable=why,
    )
    assert accepted.passed
    assert accepted.approved is None


def _metadata(features: tuple[str, ...], classes: tuple[str, ...]) -> ModelMetadata:
    spec = load_spec(
        json.dumps(
            {
                "target": {"name": "y", "type": "categorical"},
                "features": [{"name": f, "type": "numeric"} for f in features],
            }
        )
    )
    return ModelMetadata(
        model_name="m", task="classification", features=spec.features, target="y", classes=classes
    )


@pytest.mark.parametrize(
    ("features", "classes", "difference"),
    [
        (("a", "b"), ("x", "y"), None),
        (("b", "a"), ("x", "y"), "the same features in another order"),
        (("a", "c"), ("x", "y"), "features added: ['b'], dropped: ['c']"),
        (("a", "b"), ("x", "z"), "classes ['x', 'z'] in the approved version, ['x', 'y'] here"),
    ],
)
def test_versions_are_comparable_only_with_the_same_features_in_order_and_classes(
    features: tuple[str, ...], classes: tuple[str, ...], difference: str | None
) -> None:
    approved = _metadata(features, classes)
    spec = load_spec(
        json.dumps(
            {
                "target": {"name": "y", "type": "categorical"},
                "features": [{"name": "a", "type": "numeric"}, {"name": "b", "type": "numeric"}],
            }
        )
    )
    assert schema_difference(approved, spec, ("y", "x")) == difference


def test_no_json_written_holds_a_number_strict_parsers_refuse(tmp_path: Path) -> None:
    document = {"roc_auc": math.nan, "nested": [math.inf, 1.5], "ok": 2}
    text = strict_json(document)
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON")) == {
        "roc_auc": None,
        "nested": [None, 1.5],
        "ok": 2,
    }
    assert json_safe({"a": (math.nan,)}) == {"a": [None]}
