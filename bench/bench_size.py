"""How much the serving image installs: its extra's environment beside smaller alternatives.

Each environment is a fresh virtualenv with the packages at the versions `uv.lock` pins (for
the serving extra) or the newest (for the comparisons), measured as the size of its
site-packages. Run: `uv run python bench/bench_size.py`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SERVING = [
    "scikit-learn", "numpy", "boto3", "uvicorn", "httptools", "uvloop", "orjson", "onnxruntime",
    "pyarrow",
]  # fmt: skip
COMPARED: dict[str, list[str]] = {
    "serving extra without pyarrow": [p for p in SERVING if p != "pyarrow"],
    "scikit-learn + uvicorn only": ["scikit-learn", "uvicorn"],
}


def _megabytes(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def _site_packages(venv: Path) -> Path:
    return next(venv.glob("lib/python3*/site-packages"))


def measure(
    name: str, install: list[str], scratch: Path
) -> tuple[str, float, list[tuple[str, float]]]:
    venv = scratch / name.replace(" ", "-")
    subprocess.run(["uv", "venv", "-q", "--python", sys.executable, str(venv)], check=True)
    subprocess.run(
        ["uv", "pip", "install", "-q", "--python", str(venv / "bin" / "python"), *install],
        check=True,
        cwd=ROOT,
    )
    site = _site_packages(venv)
    largest = sorted(
        ((p.name, _megabytes(p)) for p in site.iterdir() if p.is_dir()), key=lambda x: -x[1]
    )[:5]
    return name, _megabytes(site), largest


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        exported = Path(scratch) / "serving.txt"
        subprocess.run(
            ["uv", "export", "--quiet", "--frozen", "--no-dev", "--no-default-groups",
             "--extra", "serving", "--no-emit-project", "--no-hashes", "-o", str(exported)],
            check=True,
            cwd=ROOT,
        )  # fmt: skip
        rows = [measure("serving extra (as locked)", ["-r", str(exported)], Path(scratch))]
        rows += [measure(name, packages, Path(scratch)) for name, packages in COMPARED.items()]
    print("| environment | site-packages MiB | largest packages (MiB) |")
    print("| --- | --- | --- |")
    for name, size, largest in rows:
        parts = ", ".join(f"{package} {mib:.0f}" for package, mib in largest)
        print(f"| {name} | {size:.0f} | {parts} |")


if __name__ == "__main__":
    main()
