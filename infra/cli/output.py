"""Writing a command's result to stdout, and saying when the reader went away."""

from __future__ import annotations

import os
import sys


def write_stdout(text: str) -> bool:
    """Print `text`; False when the reader went away (`mlstack plan prod | head`)."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        # Python flushes stdout again at exit and would report the same broken pipe there.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return False
    return True
