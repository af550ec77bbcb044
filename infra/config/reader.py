"""Reading the config bag: each value by the type `Pulumi.yaml` declares for its key.

Values come from the engine inside the program (`runtime_config_values`), or from a plain
mapping in tests and in `mlstack plan`. The reader collects every problem instead of stopping
at the first, each naming the key, the value given and what is allowed; the sections
(`infra.config.sections`) say what each key allows.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from infra.config.schema import NAMESPACE, ConfigKey

# Config namespaces the program reads besides its own: the providers' settings and Pulumi's.
PROVIDER_NAMESPACES = ("aws", "kubernetes", "pulumi")

T = TypeVar("T")
Check = Callable[[T], str | None]


def show(value: Any) -> str:
    """A value as a problem quotes it: strings in quotes, the rest as JSON."""
    return json.dumps(value) if not isinstance(value, str) else repr(value)


def one_of(options: tuple[Any, ...]) -> str:
    return "one of " + ", ".join(str(option) for option in options)


class Reader:
    """Reads declared keys by their declared type, collecting every problem instead of stopping."""

    def __init__(self, values: Mapping[str, Any], schema: Mapping[str, ConfigKey]) -> None:
        self.schema = schema
        self.problems: list[str] = []
        self.failed: set[str] = set()
        self.values: dict[str, Any] = {}
        self.provider_values: dict[str, Any] = {}
        for full_name, value in values.items():
            namespace, _, name = full_name.partition(":")
            if not name:
                namespace, name = NAMESPACE, namespace
            if namespace in PROVIDER_NAMESPACES:
                self.provider_values[full_name] = value
                continue
            if namespace != NAMESPACE:
                self.problems.append(
                    f"{full_name}: unknown namespace {namespace!r} (value {show(value)}); "
                    f"allowed: {NAMESPACE}:<key> for the keys declared in Pulumi.yaml, or a "
                    f"provider's settings under {', '.join(p + ':' for p in PROVIDER_NAMESPACES)}"
                    f"{_namespace_suggestion(namespace, name, schema)}"
                )
                continue
            if name not in schema:
                self.problems.append(
                    f"{NAMESPACE}:{name}: unknown key (value {show(value)}); allowed: the keys "
                    f"declared in Pulumi.yaml{_suggestion(name, schema)}"
                )
                continue
            self.values[name] = value

    def fail(self, name: str, value: Any, allowed: str) -> None:
        self.failed.add(name)
        self.problems.append(f"{NAMESPACE}:{name} = {show(value)}: allowed: {allowed}")

    def is_default(self, name: str) -> bool:
        """Whether a given value is the declared default, however the engine spelt it (the
        engine passes numbers, booleans and lists as text)."""
        key, raw = self.schema[name], self.values[name]
        if isinstance(raw, str) and key.type != "string":
            with contextlib.suppress(ValueError):
                raw = json.loads(raw)
        return bool(raw == key.default)

    def valid(self, *names: str) -> bool:
        """Whether these keys read cleanly, so a rule combining them is worth checking."""
        return not self.failed.intersection(names)

    def _raw(self, name: str) -> tuple[bool, Any]:
        key = self.schema[name]
        if name in self.values:
            return True, self.values[name]
        if key.has_default:
            return True, key.default
        self.failed.add(name)
        self.problems.append(
            f"{NAMESPACE}:{name}: missing; allowed: {key.description or 'a value'} "
            f"(set it with `pulumi config set {NAMESPACE}:{name} ...`)"
        )
        return False, None

    def string(self, name: str, check: Check[str] | None = None) -> str:
        present, raw = self._raw(name)
        if not present:
            return ""
        if isinstance(raw, float | int) and not isinstance(raw, bool):
            dropped = ", dropping trailing zeros" if isinstance(raw, float) else ""
            self.fail(
                name,
                raw,
                "a string; put the value in quotes in the stack file (YAML reads an unquoted "
                f"{raw} as a number{dropped})",
            )
            return ""
        if not isinstance(raw, str):
            self.fail(name, raw, "a string")
            return ""
        if check is not None and (allowed := check(raw)) is not None:
            self.fail(name, raw, allowed)
        return raw

    def choice(self, name: str, options: tuple[T, ...]) -> T:
        value = self.string(name, lambda v: None if v in options else one_of(options))
        return cast(T, value) if value in options else options[0]

    def integer(self, name: str, low: int, high: int) -> int:
        present, raw = self._raw(name)
        if not present:
            return low
        value = _as_int(raw)
        if value is None:
            self.fail(name, raw, f"a whole number from {low} to {high}")
            return low
        if not low <= value <= high:
            self.fail(name, value, f"a whole number from {low} to {high}")
        return value

    def integer_in(self, name: str, options: tuple[int, ...]) -> int:
        present, raw = self._raw(name)
        if not present:
            return options[0]
        value = _as_int(raw)
        if value is None or value not in options:
            self.fail(name, raw, one_of(options))
            return options[0]
        return value

    def boolean(self, name: str) -> bool:
        present, raw = self._raw(name)
        if not present:
            return False
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        self.fail(name, raw, "true or false")
        return False

    def strings(self, name: str, check: Check[str] | None = None) -> tuple[str, ...]:
        present, raw = self._raw(name)
        if not present:
            return ()
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except json.JSONDecodeError:
                self.fail(name, raw, "a list of strings")
                return ()
        if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
            self.fail(name, raw, "a list of strings")
            return ()
        items = tuple(raw)
        for item in items:
            if check is not None and (allowed := check(item)) is not None:
                self.fail(name, item, allowed)
        return items


def _namespace_suggestion(namespace: str, name: str, schema: Mapping[str, ConfigKey]) -> str:
    if not difflib.get_close_matches(namespace, [NAMESPACE], n=1, cutoff=0.6):
        return ""
    key = name if name in schema else next(iter(difflib.get_close_matches(name, list(schema))), "")
    return f" (did you mean {NAMESPACE}:{key or name}?)"


def _suggestion(name: str, schema: Mapping[str, ConfigKey]) -> str:
    close = difflib.get_close_matches(name, list(schema), n=1)
    return f" (did you mean {NAMESPACE}:{close[0]}?)" if close else ""


def _as_int(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    # The mock runtime and JSON hand integers back as floats (2.0).
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and re.fullmatch(r"-?\d+", raw.strip()):
        return int(raw)
    return None


def runtime_config_values() -> dict[str, Any]:
    """Every key of the running stack's config bag, declared or not, as the engine passed it.

    The engine hands the program all of the stack's values (defaults from Pulumi.yaml merged in),
    through the runtime's config map or the PULUMI_CONFIG variable; `pulumi.Config.get` only
    answers for names asked for, which would let a misspelt key pass unseen."""
    from pulumi.runtime import config as runtime_config

    return {**runtime_config.get_config_env(), **runtime_config.CONFIG.get()}
