"""Serving settings, from the environment, read once in `main()`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

DEFAULT_MODEL_DIR = "/opt/ml/model"


class SettingsError(ValueError):
    """An environment variable has a value the server cannot use; the message names it."""


@dataclass(frozen=True, kw_only=True)
class ServingSettings:
    """Everything the server is configured with."""

    model_uri: str = DEFAULT_MODEL_DIR
    """A model directory, a model.tar.gz, or an s3:// URI of one (MLSTACK_MODEL_URI, else
    SM_MODEL_DIR, else /opt/ml/model)."""
    host: str = "0.0.0.0"  # noqa: S104 (a container listens on all its interfaces)
    port: int = 8080
    """SageMaker's contract port; SAGEMAKER_BIND_TO_PORT or MLSTACK_PORT change it."""
    workers: int = 1
    """Processes serving requests; default one per core (MLSTACK_WORKERS)."""
    max_body_bytes: int = 6 * 1024 * 1024
    """Largest request body accepted (SageMaker's own limit is 6 MB)."""
    max_batch_rows: int = 1024
    """Rows scored in one model call when concurrent requests are batched."""
    batch_wait_ms: float = 0.0
    """How long a batch waits for more requests once it has one; 0 batches only what is
    already waiting, adding no latency."""
    grace_seconds: float = 25.0
    """How long in-flight requests may take to finish after SIGTERM."""
    work_dir: Path | None = None
    """Writable: where an archive or s3:// model is unpacked and worker metrics are shared
    (MLSTACK_WORK_DIR). Unset: a fresh directory under the system's temporary directory,
    removed when the server exits. A directory another server holds is refused."""
    log_payloads: bool = False
    """Log request bodies (never on by default: they may hold personal data)."""


N = TypeVar("N", int, float)


def _number(env: Mapping[str, str], name: str, default: N, low: N, high: N, kind: type[N]) -> N:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    what = "a whole number" if kind is int else "a number"
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} = {raw!r}: allowed: {what} from {low} to {high}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} = {raw!r}: allowed: {what} from {low} to {high}")
    return value


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    return _number(env, name, default, low, high, int)


def _float(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    return _number(env, name, default, low, high, float)


def from_environment(env: Mapping[str, str] | None = None) -> ServingSettings:
    env = os.environ if env is None else env
    port_name = "SAGEMAKER_BIND_TO_PORT" if "SAGEMAKER_BIND_TO_PORT" in env else "MLSTACK_PORT"
    log_payloads = env.get("MLSTACK_LOG_PAYLOADS", "false").lower()
    if log_payloads not in ("true", "false"):
        raise SettingsError(f"MLSTACK_LOG_PAYLOADS = {log_payloads!r}: allowed: true or false")
    return ServingSettings(
        model_uri=env.get("MLSTACK_MODEL_URI") or env.get("SM_MODEL_DIR") or DEFAULT_MODEL_DIR,
        host=env.get("MLSTACK_HOST", "0.0.0.0"),  # noqa: S104
        port=_int(env, port_name, 8080, 1, 65535),
        workers=_int(env, "MLSTACK_WORKERS", os.cpu_count() or 1, 1, 64),
        max_body_bytes=_int(env, "MLSTACK_MAX_BODY_BYTES", 6 * 1024 * 1024, 1024, 1 << 30),
        max_batch_rows=_int(env, "MLSTACK_MAX_BATCH_ROWS", 1024, 1, 1_000_000),
        batch_wait_ms=_float(env, "MLSTACK_BATCH_WAIT_MS", 0.0, 0.0, 1000.0),
        grace_seconds=_float(env, "MLSTACK_GRACE_SECONDS", 25.0, 0.0, 3600.0),
        work_dir=Path(env["MLSTACK_WORK_DIR"]) if env.get("MLSTACK_WORK_DIR") else None,
        log_payloads=log_payloads == "true",
    )
