"""The one directory a server writes: claimed for the life of the server, never shared.

Two servers on one work directory would count each other's requests in `/metrics` and unpack
their models over each other. A server either gets a fresh directory of its own (the default,
removed when it exits) or claims the one `MLSTACK_WORK_DIR` names with an exclusive lock, and
refuses to start, naming the directory and the holder, when another server has it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from serving.settings import SettingsError

LOCK_FILE = ".server.lock"


@contextlib.contextmanager
def claimed_work_dir(configured: Path | None) -> Iterator[Path]:
    """The server's work directory, held for the duration of the `with` block.

    The lock is on an open file description, so forked workers share it and it is released
    however the server ends, a crash included."""
    fresh = configured is None
    directory = (
        configured if configured is not None else Path(tempfile.mkdtemp(prefix="mlstack-serving-"))
    )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = (directory / LOCK_FILE).open("a+")
    except OSError as error:
        raise SettingsError(
            f"MLSTACK_WORK_DIR = {str(directory)!r}: not writable ({error.strerror}); allowed: a "
            "writable directory"
        ) from error
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            raise SettingsError(
                f"MLSTACK_WORK_DIR = {str(directory)!r}: in use by another server (pid "
                f"{holder}); allowed: a directory no other server uses, or leave "
                "MLSTACK_WORK_DIR unset for a fresh one"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        yield directory
    finally:
        lock.close()
        if fresh:
            shutil.rmtree(directory, ignore_errors=True)
