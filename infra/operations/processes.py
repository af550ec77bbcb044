"""Ending a child process the way the servers expect: SIGTERM, a grace period, then SIGKILL."""

from __future__ import annotations

import signal
import subprocess


def stop(process: subprocess.Popen[bytes], grace_seconds: float = 30) -> None:
    """Ask `process` to stop and wait for it; kill it if it outlives `grace_seconds`."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace_seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
