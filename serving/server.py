"""Processes: load the model once, fork the workers, drain them on SIGTERM.

The model is loaded (and warmed up) in the parent before forking, so workers share its memory
pages and start answering at once; nothing listens until a prediction has succeeded. On
SIGTERM each worker reports not-ready, stops accepting, lets in-flight requests finish within
the grace period, and exits; the parent exits 0 when they all have.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import shutil
import signal
import socket
import time
from dataclasses import replace
from pathlib import Path
from types import FrameType

import uvicorn

from mlstack_common.artifact import ArtifactError
from mlstack_common.exits import ExitStatus
from mlstack_common.registry import ModelPackage, resolve_reference, sagemaker_client
from serving.app import ServingApp
from serving.metrics import SharedMetrics
from serving.model import Predictor, load_predictor
from serving.protocol import serving_protocol
from serving.settings import ServingSettings, SettingsError
from serving.workdir import claimed_work_dir

log = logging.getLogger("mlstack.serving")

# A worker that dies within WORKER_HEALTHY_SECONDS of starting is restarted after a growing
# delay; after MAX_QUICK_RESTARTS in a row the server gives up and exits non-zero, so that the
# orchestrator sees the failure instead of a process that forks forever.
WORKER_HEALTHY_SECONDS = 10.0
MAX_QUICK_RESTARTS = 5
RESTART_BACKOFF_START = 0.1
RESTART_BACKOFF_MAX = 5.0


class DrainingServer(uvicorn.Server):
    """uvicorn, marking the app as draining the moment a shutdown signal arrives."""

    def __init__(self, config: uvicorn.Config, app: ServingApp) -> None:
        super().__init__(config)
        self.serving_app = app

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.serving_app.draining = True
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal once drained, which would end the process as killed by
        # it; a drained shutdown is a clean exit (status 0), as SageMaker and Kubernetes expect.
        self._captured_signals.clear()


def listen(settings: ServingSettings) -> socket.socket:
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run_worker(
    sock: socket.socket,
    settings: ServingSettings,
    predictor: Predictor,
    model_version: str,
    work_dir: Path,
) -> None:
    app = ServingApp(settings, predictor, model_version, SharedMetrics(work_dir / "metrics"))
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http=serving_protocol(
            settings.header_timeout_seconds, app.invocation, settings.max_body_bytes
        ),
        lifespan="off",
        access_log=False,
        # Nothing here reads the client's address, so X-Forwarded-For is not parsed, and no
        # Server header tells a caller what answers.
        proxy_headers=False,
        server_header=False,
        log_level="warning",
        # uvicorn's own handlers would print plain text; its records go to our JSON formatter.
        log_config=None,
        timeout_graceful_shutdown=math.ceil(settings.grace_seconds),
        timeout_keep_alive=75,  # above common load balancers' idle timeout (60 s)
    )
    DrainingServer(config, app).run(sockets=[sock])
    app.stopped()


def serve(settings: ServingSettings) -> int:
    with claimed_work_dir(settings.work_dir) as work_dir:
        return _serve(settings, work_dir)


def _serve(settings: ServingSettings, work_dir: Path) -> int:
    started = time.monotonic()
    shutil.rmtree(work_dir / "metrics", ignore_errors=True)
    package = None
    if settings.model_package:
        package = resolve_reference(sagemaker_client(), settings.model_package)
        settings = _serving_package(settings, package)
    predictor = load_predictor(settings.model_uri, work_dir)
    metadata = predictor.metadata
    if package is not None and package.model_sha256 not in ("", metadata.model_sha256):
        raise ArtifactError(
            f"{package.arn} records model sha256 {package.model_sha256[:12]}…, but its model "
            f"data {package.model_data_url} holds {metadata.model_sha256[:12]}…"
        )
    model_version = settings.model_version
    # What is loaded now lives as long as the process: the collector stops scanning it. A full
    # collection walks every object of the model and its libraries (6 ms for a logistic model,
    # every answer in flight waits), and its marks dirty the pages the workers share with this
    # parent after the fork (Python's gc.freeze documentation recommends it before a fork).
    gc.freeze()
    sock = listen(settings)
    log.info(
        "serving",
        extra={
            "host": settings.host,
            "port": settings.port,
            "workers": settings.workers,
            "model": metadata.model_name,
            "model_version": model_version,
            "model_package": package.arn if package else None,
            "approval_status": package.approval_status if package else None,
            "model_sha256": metadata.model_sha256,
            "fast_path": predictor.fast,
            "work_dir": str(work_dir),
            "load_s": round(time.monotonic() - started, 3),
        },
    )
    if settings.workers == 1:
        run_worker(sock, settings, predictor, model_version, work_dir)
        code = 0
    else:
        code = _supervise(sock, settings, predictor, model_version, work_dir)
    log.info(
        "stopped",
        extra={
            "outcome": "drained" if code == 0 else "a worker failed or outlived the grace period",
            "exit_code": code,
        },
    )
    return code


def _serving_package(settings: ServingSettings, package: ModelPackage) -> ServingSettings:
    """The registry names the model data and the version; a version set beside it must agree."""
    if settings.model_version not in (ServingSettings.model_version, str(package.version)):
        raise SettingsError(
            f"MLSTACK_MODEL_VERSION = {settings.model_version!r}, but MLSTACK_MODEL_PACKAGE "
            f"{settings.model_package!r} is version {package.version}; allowed: leave "
            "MLSTACK_MODEL_VERSION unset"
        )
    return replace(settings, model_uri=package.model_data_url, model_version=str(package.version))


def _supervise(
    sock: socket.socket,
    settings: ServingSettings,
    predictor: Predictor,
    model_version: str,
    work_dir: Path,
) -> int:
    children: set[int] = set()
    stopping = False

    started: dict[int, float] = {}
    quick_failures = 0

    def spawn() -> None:
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                run_worker(sock, settings, predictor, model_version, work_dir)
            except BaseException as error:  # noqa: BLE001 (reported to the parent by exit code)
                log.error("worker failed", extra={"error": repr(error)})
                code = 1
            finally:
                os._exit(code)
        children.add(pid)
        started[pid] = time.monotonic()

    def stop(_signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        # The listening socket stays open while any process holds it; let the workers' copies
        # be the last, so that new connections are refused once they stop accepting.
        sock.close()
        for pid in list(children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                children.discard(pid)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for _ in range(settings.workers):
        spawn()
    failed = False
    deadline: float | None = None
    while children:
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid == 0:
            if stopping and deadline is None:
                # Workers get the grace period; one that hangs past it is killed.
                deadline = time.monotonic() + settings.grace_seconds + 5
            if deadline is not None and time.monotonic() > deadline:
                for child in list(children):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGKILL)
                failed = True
            time.sleep(0.05)
            continue
        children.discard(pid)
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            failed = True
        if stopping:
            continue
        lived = time.monotonic() - started.pop(pid, time.monotonic())
        quick_failures = quick_failures + 1 if lived < WORKER_HEALTHY_SECONDS else 0
        if quick_failures > MAX_QUICK_RESTARTS:
            log.error(
                "workers cannot start; stopping",
                extra={"restarts": quick_failures - 1, "last_exit_code": code},
            )
            stop(signal.SIGTERM, None)
            continue
        delay = min(RESTART_BACKOFF_MAX, RESTART_BACKOFF_START * 2 ** max(quick_failures - 1, 0))
        log.warning(
            "worker exited; starting another",
            extra={"pid": pid, "exit_code": code, "after_s": delay if quick_failures else 0},
        )
        if quick_failures:
            time.sleep(delay)
        spawn()
    return ExitStatus.REFUSED if failed else ExitStatus.OK
