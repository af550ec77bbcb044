"""Against a real account, with the Pulumi CLI: skipped where either is missing.

Run with `MLSTACK_CLOUD_STACK=<stack> uv run pytest -m cloud` from a machine that has the CLI,
credentials for the stack's account and a selected backend (`pulumi login`).
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from infra.project.paths import PROJECT_ROOT

STACK = os.environ.get("MLSTACK_CLOUD_STACK", "")
MISSING = [
    reason
    for reason, missing in (
        ("the Pulumi CLI is not installed", shutil.which("pulumi") is None),
        ("MLSTACK_CLOUD_STACK names no stack to preview", not STACK),
        (
            "no AWS credentials in the environment",
            not (os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE")),
        ),
    )
    if missing
]

pytestmark = [
    pytest.mark.cloud,
    pytest.mark.skipif(bool(MISSING), reason="; ".join(MISSING) or "runnable"),
]


def test_a_real_preview_passes_the_policy_pack() -> None:
    result = subprocess.run(
        [
            "pulumi",
            "preview",
            "--stack",
            STACK,
            "--policy-pack",
            str(PROJECT_ROOT / "infra" / "policypack"),
            "--non-interactive",
            "--diff",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
