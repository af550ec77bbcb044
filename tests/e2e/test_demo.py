"""The local demo, end to end, as a newcomer runs it: emulator, training, registry, serving."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.logs import log_records

MLSTACK = Path(sys.executable).parent / "mlstack"


def test_the_demo_trains_registers_approves_and_serves(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(MLSTACK), "demo", "--keep", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "approving arn:aws:sagemaker:us-east-1:123456789012:model-package/demo-local/1" in out
    answer = json.loads(
        next(line for line in out.splitlines() if line.startswith('{"predictions"'))
    )
    assert len(answer["predictions"]) == 3
    assert answer["classes"] == ["benign", "malignant"]
    assert "serving demo-local version 1" in out
    # The server downloaded the registered artifact from the emulator's S3, not a local path.
    assert (tmp_path / "serving" / "model.tar.gz").is_file()
    served = [
        record
        for record in log_records((tmp_path / "serving.log").read_text(), "mlstack-serve")
        if record.get("path") == "/invocations"
    ]
    assert [entry["status"] for entry in served] == [200, 200]
