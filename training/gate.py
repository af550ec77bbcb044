"""The quality gate: whether a trained version may be registered."""

from __future__ import annotations

from dataclasses import dataclass

from serving.artifact import Task
from training.evaluation import improvement, primary
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
) -> GateDecision:
    """Pass when the candidate beats the baseline by the margin and does not fall behind the
    approved version by more than the tolerance, both on the primary metric."""
    metric, _ = primary(task)
    reasons: list[str] = []
    passed = True
    lift = improvement(task, candidate[metric], baseline[metric])
    if lift < settings.min_improvement:
        passed = False
        reasons.append(
            f"{metric} {candidate[metric]:.4f} beats the baseline {baseline[metric]:.4f} by "
            f"{lift:.4f}, less than the required {settings.min_improvement:g}"
        )
    else:
        reasons.append(f"{metric} {candidate[metric]:.4f} beats the baseline by {lift:.4f}")
    approved_value = approved.get(metric) if approved else None
    if approved_value is not None:
        change = improvement(task, candidate[metric], approved_value)
        if change < -settings.max_regression:
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
