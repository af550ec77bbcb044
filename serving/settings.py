"""Serving settings, from the environment, read once in `main()`.

Each setting is one dataclass field whose metadata names its environment variable, what it
means and what it accepts; `from_environment` and `mlstack-serve --help` both read them there,
so a default is written once and every setting shows up in `--help`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

DEFAULT_MODEL_DIR = "/opt/ml/model"


class SettingsError(ValueError):
    """An environment variable has a value the server cannot use; the message names it."""


def _setting(
    default: Any, env: str, help: str, low: float | None = None, high: float | None = None
) -> Any:
    return field(default=default, metadata={"env": env, "help": help, "low": low, "high": high})


@dataclass(frozen=True, kw_only=True)
class ServingSettings:
    """Everything the server is configured with."""

    model_uri: str = _setting(
        DEFAULT_MODEL_DIR,
        "MLSTACK_MODEL_URI",
        "a model directory, a model.tar.gz, or an s3:// URI of one (else SM_MODEL_DIR)",
    )
    model_version: str = _setting(
        "unknown",
        "MLSTACK_MODEL_VERSION",
        "the model package version served, shown in /metadata, /metrics and the logs",
    )
    model_package: str = _setting(
        "",
        "MLSTACK_MODEL_PACKAGE",
        "serve a registered version instead: a model package ARN or <group>/<version>; its "
        "model data and version come from the registry (then leave MLSTACK_MODEL_URI unset)",
    )
    host: str = _setting(
        "0.0.0.0",  # noqa: S104 (a container listens on all its interfaces)
        "MLSTACK_HOST",
        "address to listen on",
    )
    port: int = _setting(
        8080, "MLSTACK_PORT", "SageMaker's contract port (SAGEMAKER_BIND_TO_PORT wins)", 1, 65535
    )
    workers: int = _setting(
        os.cpu_count() or 1, "MLSTACK_WORKERS", "processes serving requests; one per core", 1, 64
    )
    max_body_bytes: int = _setting(
        6 * 1024 * 1024,
        "MLSTACK_MAX_BODY_BYTES",
        "largest request body accepted (SageMaker's own limit is 6 MB)",
        1024,
        1 << 30,
    )
    max_batch_rows: int = _setting(
        1024,
        "MLSTACK_MAX_BATCH_ROWS",
        "most rows scored in one model call, for batches of requests and within one request",
        1,
        1_000_000,
    )
    batch_wait_ms: float = _setting(
        0.0,
        "MLSTACK_BATCH_WAIT_MS",
        "how long a batch waits for more requests; 0 batches only what is already waiting",
        0.0,
        1000.0,
    )
    header_timeout_seconds: float = _setting(
        10.0,
        "MLSTACK_HEADER_TIMEOUT_SECONDS",
        "how long a request's headers may take to arrive; then 408 and the connection closes",
        0.1,
        3600.0,
    )
    body_timeout_seconds: float = _setting(
        30.0,
        "MLSTACK_BODY_TIMEOUT_SECONDS",
        "longest wait for the next part of a request body; then 408",
        0.1,
        3600.0,
    )
    grace_seconds: float = _setting(
        25.0,
        "MLSTACK_GRACE_SECONDS",
        "how long in-flight requests may take to finish after SIGTERM",
        0.0,
        3600.0,
    )
    work_dir: Path | None = _setting(  # noqa: RUF009 (returns a dataclasses.field)
        None,
        "MLSTACK_WORK_DIR",
        "the one directory written (model download, shared metrics); unset: a fresh one, "
        "removed on exit; a directory another server holds is refused",
    )
    capture_uri: str = _setting(
        "",
        "MLSTACK_CAPTURE_URI",
        "capture a sample of requests and responses under this s3:// prefix (or directory), in "
        "SageMaker's capture format, at <prefix>/<endpoint>/primary/yyyy/mm/dd/hh/; unset: off",
    )
    capture_percent: float = _setting(
        100.0,
        "MLSTACK_CAPTURE_PERCENT",
        "the share of answered requests captured, in percent, when MLSTACK_CAPTURE_URI is set",
        0.0,
        100.0,
    )
    capture_endpoint: str = _setting(
        "",
        "MLSTACK_CAPTURE_ENDPOINT",
        "the endpoint name the capture is filed under; unset: the model's name",
    )
    log_payloads: bool = _setting(
        False,
        "MLSTACK_LOG_PAYLOADS",
        "log request bodies, true or false (off: they may hold personal data)",
    )


def _parse(raw: str, kind: Any, env: str, low: Any, high: Any) -> Any:
    if kind == "bool":
        if raw.lower() not in ("true", "false"):
            raise SettingsError(f"{env} = {raw!r}: allowed: true or false")
        return raw.lower() == "true"
    if kind in ("int", "float"):
        what = "a whole number" if kind == "int" else "a number"
        try:
            value = int(raw) if kind == "int" else float(raw)
        except ValueError:
            raise SettingsError(f"{env} = {raw!r}: allowed: {what} from {low} to {high}") from None
        if not low <= value <= high:
            raise SettingsError(f"{env} = {raw!r}: allowed: {what} from {low} to {high}")
        return value
    if kind == "Path | None":
        return Path(raw)
    return raw


def model_uri_from(env: Mapping[str, str]) -> str:
    """Where the model is: MLSTACK_MODEL_URI, else SageMaker's SM_MODEL_DIR, else its default
    directory. The server and the batch scorer both read it here."""
    return env.get("MLSTACK_MODEL_URI") or env.get("SM_MODEL_DIR") or DEFAULT_MODEL_DIR


def from_environment(env: Mapping[str, str] | None = None) -> ServingSettings:
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for setting in fields(ServingSettings):
        name = setting.metadata["env"]
        raw = env.get(name)
        if setting.name == "model_uri":
            raw = model_uri_from(env)
        if setting.name == "port" and "SAGEMAKER_BIND_TO_PORT" in env:
            name, raw = "SAGEMAKER_BIND_TO_PORT", env["SAGEMAKER_BIND_TO_PORT"]
        if raw is None or raw == "":
            continue
        values[setting.name] = _parse(
            raw, setting.type, name, setting.metadata["low"], setting.metadata["high"]
        )
    if values.get("model_package"):
        _check_package_alone(env, values["model_package"])
    return ServingSettings(**values)


def _check_package_alone(env: Mapping[str, str], package: str) -> None:
    """A registered version names its own model data; a second source would be ambiguous."""
    if env.get("MLSTACK_MODEL_URI"):
        raise SettingsError(
            f"MLSTACK_MODEL_PACKAGE = {package!r} and MLSTACK_MODEL_URI = "
            f"{env['MLSTACK_MODEL_URI']!r} both name a model; allowed: one of them"
        )


def settings_help() -> str:
    """Every setting as `--help` shows it: variable, default, what it does and accepts."""
    lines = ["environment variables:"]
    for setting in fields(ServingSettings):
        meta = setting.metadata
        bounds = f" ({meta['low']} to {meta['high']})" if meta["low"] is not None else ""
        default = "unset" if setting.default is None else repr(setting.default)
        lines.append(f"  {meta['env']:<24} default {default}{bounds}")
        lines.append(f"  {'':<24} {meta['help']}")
    return "\n".join(lines)
