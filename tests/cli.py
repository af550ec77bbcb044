"""Running `mlstack` as its console script does, in this process.

Starting the installed command costs about 10 s of imports (Pulumi, the AWS provider's SDK,
boto3) and tests nothing that the entry point's `main(argv)` does not: the process boundary
itself (a closed pipe, the script being on PATH) has tests of its own that start the command.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

from infra.cli.main import main

MLSTACK = Path(sys.executable).parent / "mlstack"
"""The installed console script, for the tests of the process boundary."""


def mlstack(*args: str) -> subprocess.CompletedProcess[str]:
    """`mlstack ARGS`: its exit status and what it wrote to stdout and stderr."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        try:
            status = main(list(args))
        except SystemExit as exited:  # argparse's usage errors
            status = exited.code if isinstance(exited.code, int) else 2
    return subprocess.CompletedProcess(
        ["mlstack", *args], status, stdout.getvalue(), stderr.getvalue()
    )
