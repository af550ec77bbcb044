"""The project's wheel (what `pip install` of the repository builds; the images copy their
sources instead): it builds, and holds each package once, the policy rules at the top level
where the program imports them."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from collections import Counter
from pathlib import Path

from infra.project.paths import PROJECT_ROOT


def test_the_wheel_builds_with_every_package_once(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    assert uv is not None, "uv installs this project; it is on PATH wherever the tests run"
    result = subprocess.run(
        [uv, "build", "--wheel", "--out-dir", str(tmp_path), str(PROJECT_ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    [wheel] = tmp_path.glob("mlstack-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert [name for name, count in Counter(names).items() if count > 1] == []
    tops = {name.split("/", 1)[0] for name in names if not name.startswith("mlstack-")}
    assert tops == {"infra", "mlstack_common", "serving", "training", "mlstack_policy"}
    assert "mlstack_policy/rules.py" in names
    assert not [name for name in names if name.startswith("infra/policypack/mlstack_policy/")]
    assert "infra/policypack/PulumiPolicy.yaml" in names
