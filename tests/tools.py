"""Tools the tests run in environments of their own (`uv tool run`), each pinned here once.

checkov resolved with the project would pin boto3 and botocore back a year for everything, the
images included; the full `mlflow` package (its server) caps pyarrow below what the images lock.
So each runs from its own tool environment. `make sync` makes those environments
(`python -m tests.tools`), so a test only starts a tool that is already installed, and the
first test to need one does not spend minutes resolving and downloading it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

CHECKOV = "checkov==3.3.30"
MLFLOW_SERVER = "mlflow==3.17.2"
"""The newest full MLflow whose own dependencies all resolve from the package index here."""
TOOLS = {CHECKOV: ("checkov", "--version"), MLFLOW_SERVER: ("mlflow", "--version")}


def uv() -> str | None:
    """uv, as `uv run` tells its children, else from PATH."""
    return os.environ.get("UV") or shutil.which("uv")


def tool_command(spec: str, *arguments: str) -> list[str]:
    """The command that runs `spec`'s executable with `arguments` in the tool's environment."""
    found = uv()
    if found is None:
        raise LookupError(f"uv is not on PATH, so {spec}'s tool environment cannot be made")
    return [found, "tool", "run", "--from", spec, *arguments]


def main() -> int:
    """Make every tool's environment now (each ends in uv's cache); the first failure's
    output, if any, says what could not be installed."""
    for spec, probe in TOOLS.items():
        result = subprocess.run(tool_command(spec, *probe), capture_output=True, text=True)
        if result.returncode != 0:
            print(f"{spec}: {result.stderr.strip()[-500:]}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
