"""The quality gate: whether a trained version may be registered."""

from __future__ import annotations

import math
from dataclasses import dataclass

from mlstack_common.artifact import Task
from training.evaluation import CALIBRATION_METRIC, improvement, primary
from training.settings import GateSettings


@dataclass(frozen=True)
class GateDecision:
    """The verdict, with every reason a reviewer needs to see."""

    passed: bool
    metric: str
    candidate: float
    baseline: float
    approved: float | None
    reasons: tuple[str, ...]

    @property
    def summary(self) -> str:
        verdict = "passed" if self.passed else "failed"
        return f"quality gate {verdict}: " + "; ".join(self.reasons)


def decide(
    task: Task,
    candidate: dict[str, float],
    baseline: dict[str, float],
    approved: dict[str, float] | None,
    settings: GateSettings,
    *,
    incomparable: str | None = None,
) -> GateDecision:
    """Pass when the candidate's metrics are finite, it beats the baseline by the margin on the
    primary metric (and, for classification, is no worse calibrated than the baseline), and it
    does not fall behind the approved version by more than the tolerance.

    `incomparable` says why the approved version cannot be compared with the candidate (other
    features or classes); that refuses the version unless a schema change is accepted."""
    metric, _ = primary(task)
    reasons: list[str] = []
    passed = True
    not_finite = sorted(name for name, value in candidate.items() if not math.isfinite(value))
    if not_finite:
        passed = False
        reasons.append(
            f"{', '.join(not_finite)} of the candidate is not a number "
            f"({', '.join(f'{n}={candidate[n]}' for n in not_finite)}): it cannot be judged"
        )
    lift = improvement(task, candidate[metric], baseline[metric])
    if not math.isfinite(lift):
        passed = False
        reasons.append(f"{metric} vs the baseline cannot be computed")
    elif lift < settings.min_improvement:
        passed = False
        reasons.append(
            f"{metric} {candidate[metric]:.4f} beats the baseline {baseline[metric]:.4f} by "
            f"{lift:.4f}, less than the required {settings.min_improvement:g}"
        )
    else:
        reasons.append(f"{metric} {candidate[metric]:.4f} beats the baseline by {lift:.4f}")
    if task == "classification" and CALIBRATION_METRIC in candidate:
        ours, theirs = candidate[CALIBRATION_METRIC], baseline[CALIBRATION_METRIC]
        if math.isfinite(ours) and math.isfinite(theirs) and ours > theirs:
            passed = False
            reasons.append(
                f"{CALIBRATION_METRIC} {ours:.4f} is worse than the baseline's {theirs:.4f}: "
                "its probabilities are less trustworthy than the class frequencies"
            )
    approved_value = approved.get(metric) if approved else None
    if incomparable is not None:
        if settings.accept_schema_change:
            reasons.append(f"schema change accepted, not compared: {incomparable}")
        else:
            passed = False
            reasons.append(
                f"not comparable with the approved version: {incomparable} "
                "(accept_schema_change registers it anyway)"
            )
        approved_value = None
    elif approved_value is not None:
        change = improvement(task, candidate[metric], approved_value)
        if not math.isfinite(change):
            passed = False
            reasons.append(f"{metric} vs the approved version cannot be computed")
        elif change < -settings.max_regression:
            passed = False
            reasons.append(
                f"{metric} is {-change:.4f} worse than the approved version's "
                f"{approved_value:.4f}, more than the tolerated {settings.max_regression:g}"
            )
        else:
            reasons.append(f"{metric} vs the approved version: {change:+.4f}")
    else:
        reasons.append("no approved version to compare with")
    return GateDecision(
        passed=passed,
        metric=metric,
        candidate=candidate[metric],
        baseline=baseline[metric],
        approved=approved_value,
        reasons=tuple(reasons),
    )
