"""Hyperparameters and quality-gate settings, parsed from strings as SageMaker passes them.

SageMaker writes every hyperparameter to `hyperparameters.json` as a string; the CLI passes
flags as strings too. Each bad value is reported with its name, the value and what is allowed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeVar

Algorithm = Literal["linear", "hgb", "forest"]
ALGORITHMS: tuple[Algorithm, ...] = ("linear", "hgb", "forest")


class SettingsError(ValueError):
    """A hyperparameter or gate setting is invalid; the message lists each one."""


def _setting(default: Any, help: str) -> Any:
    """A field whose help `mlstack-train --help` shows beside its default and allowed values."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True, kw_only=True)
class Hyperparameters:
    """How the model is trained. Same values and data give the same model, byte for byte."""

    algorithm: Algorithm = _setting(  # noqa: RUF009 (returns a dataclasses.field)
        "hgb",
        "linear: logistic or ridge regression; hgb: histogram gradient boosting; forest: a "
        "random forest",
    )
    seed: int = _setting(42, "seeds the split and the model")
    test_size: float = _setting(0.2, "share of rows held out for evaluation")
    regularization: float = _setting(1.0, "linear: C of logistic regression, alpha of ridge")
    learning_rate: float = _setting(0.1, "hgb: shrinkage of each tree's contribution")
    max_iter: int = _setting(200, "hgb: boosting rounds; linear: solver iterations")
    max_leaf_nodes: int = _setting(31, "hgb: leaves per tree")
    l2_regularization: float = _setting(0.0, "hgb: L2 penalty on leaf values")
    n_estimators: int = _setting(100, "forest: the number of trees")


@dataclass(frozen=True, kw_only=True)
class GateSettings:
    """When a trained version may be registered, and how."""

    min_improvement: float = _setting(
        0.01, "how much the primary metric must beat the dummy baseline by (metric units)"
    )
    max_regression: float = _setting(
        0.01, "how much worse than the approved version the primary metric may be"
    )
    keep_rejected: bool = _setting(
        False, "register a version that fails the gate as Rejected, to keep the record"
    )
    auto_approve: bool = _setting(
        False, "register a version that passes as Approved instead of PendingManualApproval"
    )
    accept_schema_change: bool = _setting(
        False,
        "register a version whose features, their order or classes differ from the approved "
        "version's (otherwise the gate refuses what it cannot compare)",
    )


def describe_setting(name: str) -> str:
    """A setting's help, default and allowed values, as `--help` shows them."""
    for entry in (*fields(Hyperparameters), *fields(GateSettings)):
        if entry.name == name:
            allowed = getattr(_PARSERS[name], "allowed", "")
            return f"{entry.metadata['help']} (default {entry.default}; {allowed})"
    raise KeyError(name)


T = TypeVar("T")


def _float(low: float, high: float, *, low_open: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text)
        if value != value or not (low < value if low_open else low <= value) or value > high:
            raise ValueError
        return value

    parse.allowed = f"a number {'>' if low_open else '>='} {low:g} and <= {high:g}"  # type: ignore[attr-defined]
    return parse


def _int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise ValueError
        return value

    parse.allowed = f"a whole number from {low} to {high}"  # type: ignore[attr-defined]
    return parse


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in options:
            raise ValueError
        return text

    parse.allowed = "one of " + ", ".join(options)  # type: ignore[attr-defined]
    return parse


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered not in ("true", "false"):
        raise ValueError
    return lowered == "true"


_bool.allowed = "true or false"  # type: ignore[attr-defined]

_PARSERS: dict[str, Callable[[str], Any]] = {
    "algorithm": _choice(ALGORITHMS),
    "seed": _int(0, 2**31 - 1),
    "test_size": _float(0.05, 0.5),
    "regularization": _float(0.0, 1e6, low_open=True),
    "learning_rate": _float(0.0, 1.0, low_open=True),
    "max_iter": _int(1, 10_000),
    "max_leaf_nodes": _int(2, 4096),
    "l2_regularization": _float(0.0, 1e6),
    "n_estimators": _int(1, 10_000),
    "min_improvement": _float(0.0, 1e9),
    "max_regression": _float(0.0, 1e9),
    "keep_rejected": _bool,
    "auto_approve": _bool,
    "accept_schema_change": _bool,
}


def _parse(cls: type[T], values: Mapping[str, Any], problems: list[str]) -> T:
    parsed: dict[str, Any] = {}
    for entry in fields(cls):  # type: ignore[arg-type]
        if entry.name not in values:
            continue
        raw = values[entry.name]
        parser = _PARSERS[entry.name]
        try:
            parsed[entry.name] = parser(str(raw).strip())
        except ValueError:
            problems.append(f"{entry.name} = {raw!r}: allowed: {parser.allowed}")  # type: ignore[attr-defined]
    return cls(**parsed)


def parse_settings(values: Mapping[str, Any]) -> tuple[Hyperparameters, GateSettings]:
    """Hyperparameters and gate settings from one mapping; unknown names are errors, since a
    misspelt hyperparameter would otherwise train with the default silently."""
    problems: list[str] = []
    known = {f.name for f in fields(Hyperparameters)} | {f.name for f in fields(GateSettings)}
    for name in values:
        if name not in known:
            problems.append(f"{name}: unknown setting; allowed: {', '.join(sorted(known))}")
    hyperparameters = _parse(Hyperparameters, values, problems)
    gate = _parse(GateSettings, values, problems)
    if problems:
        raise SettingsError(
            "invalid training settings:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return hyperparameters, gate
