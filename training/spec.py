"""The dataset spec: what columns a training dataset must have, of what type, in what range.

It is a small YAML (or JSON) file kept next to the data:

    target: {name: label, type: categorical}
    features:
      - {name: mean radius, type: numeric, min: 0, max: 60}
      - {name: colour, type: categorical, categories: [red, green, blue], nullable: true}
    tolerance: 0.01        # share of rows allowed out of range or unknown category
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from mlstack_common.artifact import Feature, FeatureType, Task

FEATURE_TYPES: tuple[FeatureType, ...] = ("numeric", "categorical")


class SpecError(ValueError):
    """The dataset spec itself is malformed; the message says which entry and what is allowed."""


@dataclass(frozen=True, kw_only=True)
class DatasetSpec:
    """Checked dataset spec."""

    features: tuple[Feature, ...]
    target: str
    target_type: FeatureType
    tolerance: float = 0.0
    """Share of rows (0-1) allowed outside a feature's range or categories."""

    @property
    def task(self) -> Task:
        return "classification" if self.target_type == "categorical" else "regression"

    @property
    def columns(self) -> tuple[str, ...]:
        return (*(feature.name for feature in self.features), self.target)


def _number(entry: Mapping[str, Any], key: str, where: str) -> float | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SpecError(f"{where}: {key} = {value!r}; allowed: a finite number")
    try:
        number = float(value)
    except OverflowError:  # an integer past float's range, such as 10**400
        number = math.inf
    # YAML reads `.inf` and `.nan` as floats: an infinite bound would be recorded as a null
    # range, and NaN compares false with every value, so it would check nothing.
    if not math.isfinite(number):
        raise SpecError(f"{where}: {key} = {value!r}; allowed: a finite number")
    return number


SPEC_KEYS = ("target", "features", "tolerance")
TARGET_KEYS = ("name", "type")
FEATURE_KEYS = ("name", "type", "min", "max", "categories", "nullable")


def _check_keys(entry: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """A misspelt key (`tolerence`, `maximum`, `nulable`) would otherwise be ignored silently
    and the data checked without the rule it was meant to add."""
    unknown = [str(key) for key in entry if key not in allowed]
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.5)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise SpecError(f"{where}: unknown key {', '.join(hints)}; allowed: {', '.join(allowed)}")


def _feature(entry: Any, index: int) -> Feature:
    where = f"features[{index}]"
    if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
        raise SpecError(f"{where}: allowed: a mapping with a 'name' string")
    where = f"feature {entry['name']!r}"
    _check_keys(entry, FEATURE_KEYS, where)
    kind = entry.get("type")
    if kind not in FEATURE_TYPES:
        raise SpecError(f"{where}: type = {kind!r}; allowed: one of {', '.join(FEATURE_TYPES)}")
    categories = entry.get("categories", [])
    if kind == "categorical" and (
        not isinstance(categories, list)
        or not categories
        or not all(isinstance(c, str | int) for c in categories)
    ):
        raise SpecError(f"{where}: categories = {categories!r}; allowed: a non-empty list")
    minimum, maximum = _number(entry, "min", where), _number(entry, "max", where)
    if minimum is not None and maximum is not None and minimum > maximum:
        raise SpecError(f"{where}: min {minimum} > max {maximum}; allowed: min <= max")
    nullable = entry.get("nullable", False)
    if not isinstance(nullable, bool):
        raise SpecError(f"{where}: nullable = {nullable!r}; allowed: true or false")
    return Feature(
        name=entry["name"],
        type=kind,
        categories=tuple(str(c) for c in categories) if kind == "categorical" else (),
        minimum=minimum,
        maximum=maximum,
        nullable=nullable,
    )


def parse_spec(document: Any) -> DatasetSpec:
    """A `DatasetSpec` from the parsed YAML/JSON document."""
    if not isinstance(document, Mapping):
        raise SpecError("dataset spec: allowed: a mapping with 'target' and 'features'")
    _check_keys(document, SPEC_KEYS, "dataset spec")
    target = document.get("target")
    if not isinstance(target, Mapping) or not isinstance(target.get("name"), str):
        raise SpecError(
            "dataset spec: target: allowed: {name: <column>, type: numeric|categorical}"
        )
    _check_keys(target, TARGET_KEYS, "dataset spec: target")
    if target.get("type") not in FEATURE_TYPES:
        raise SpecError(
            f"dataset spec: target type = {target.get('type')!r}; allowed: numeric, categorical"
        )
    entries = document.get("features")
    if not isinstance(entries, list) or not entries:
        raise SpecError("dataset spec: features: allowed: a non-empty list")
    features = tuple(_feature(entry, index) for index, entry in enumerate(entries))
    names = [feature.name for feature in features] + [target["name"]]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SpecError(f"dataset spec: columns named twice: {', '.join(duplicates)}")
    tolerance = document.get("tolerance", 0.0)
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not 0 <= tolerance < 1
    ):
        raise SpecError(
            f"dataset spec: tolerance = {tolerance!r}; allowed: a number from 0 to below 1"
        )
    return DatasetSpec(
        features=features,
        target=target["name"],
        target_type=target["type"],
        tolerance=float(tolerance),
    )


def load_spec(text: str) -> DatasetSpec:
    try:
        return parse_spec(yaml.safe_load(text))
    except yaml.YAMLError as error:
        raise SpecError(f"dataset spec is not valid YAML: {error}") from error


def dump_spec(spec: DatasetSpec) -> str:
    """The spec as YAML, in the form `load_spec` reads."""
    features = []
    for feature in spec.features:
        entry: dict[str, Any] = {"name": feature.name, "type": feature.type}
        if feature.categories:
            entry["categories"] = list(feature.categories)
        if feature.minimum is not None:
            entry["min"] = feature.minimum
        if feature.maximum is not None:
            entry["max"] = feature.maximum
        if feature.nullable:
            entry["nullable"] = True
        features.append(entry)
    document = {
        "target": {"name": spec.target, "type": spec.target_type},
        "features": features,
        "tolerance": spec.tolerance,
    }
    return yaml.safe_dump(document, sort_keys=False)
