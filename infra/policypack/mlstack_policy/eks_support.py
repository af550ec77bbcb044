"""When each Kubernetes version EKS offers leaves standard and extended support.

From AWS's EKS release calendar (`aws eks describe-cluster-versions` reports the same dates).
Billing for extended support starts at 00:00 UTC on the end-of-standard-support date: a cluster
still on that version pays the extended rate from then on, unless its upgrade policy is STANDARD,
in which case EKS upgrades it. Add a version here when EKS releases it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from types import MappingProxyType


@dataclass(frozen=True)
class SupportWindow:
    """One Kubernetes minor version's life on EKS."""

    released: date
    end_of_standard_support: date
    end_of_extended_support: date


EKS_RELEASE_CALENDAR = MappingProxyType(
    {
        "1.33": SupportWindow(date(2025, 5, 29), date(2026, 7, 29), date(2027, 7, 29)),
        "1.34": SupportWindow(date(2025, 10, 2), date(2026, 12, 2), date(2027, 12, 2)),
        "1.35": SupportWindow(date(2026, 1, 28), date(2027, 3, 27), date(2028, 3, 27)),
    }
)


def support_problem(version: str, support_type: str, today: date) -> str | None:
    """Why a cluster on `version` with upgrade policy `support_type` is unsupported or billed
    for extended support on `today`; None when it is neither."""
    window = EKS_RELEASE_CALENDAR.get(version)
    if window is None:
        return f"version {version!r} is not one of {', '.join(EKS_RELEASE_CALENDAR)}"
    if today >= window.end_of_extended_support:
        return f"version {version} left extended support on {window.end_of_extended_support}"
    if today >= window.end_of_standard_support and support_type != "EXTENDED":
        return (
            f"version {version} left standard support on {window.end_of_standard_support}; "
            "upgrade, or choose upgrade policy EXTENDED to pay for extended support"
        )
    return None
