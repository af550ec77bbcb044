"""Which revision of the sources an image is built from: its tag in the registry.

An image is tagged with the last commit that changed what its Dockerfile copies, not with
HEAD, so a commit that touches only docs or stack files leaves the tag (and the build) as it
was and the stack previews unchanged. Uncommitted changes to those files give a tag of their
own (`<commit>-dirty-<hash of the changes>`): the repositories' tags are immutable, so two
different builds must never share one.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pulumi

from infra.paths import PROJECT_ROOT

BUILD_INPUTS = ("pyproject.toml", "uv.lock", "README.md", "infra", "serving", "training")
"""What the Dockerfiles copy from the repository root (besides the Dockerfile itself)."""


class SourceRevisionError(pulumi.RunError):
    """The sources' revision cannot be read; the message says what to do instead."""


def _git(root: Path, *args: str) -> str:
    try:
        result = subprocess.run(  # noqa: S603 (fixed git subcommands)
            ["git", "-C", str(root), *args],  # noqa: S607 (git from PATH, as a user runs it)
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SourceRevisionError(f"git cannot run ({error})") from error
    if result.returncode != 0:
        raise SourceRevisionError(result.stderr.strip() or f"git {args[0]} failed")
    return result.stdout


def source_tag(image: str, root: Path = PROJECT_ROOT) -> str:
    """The tag for `image` built from the working tree at `root`."""
    paths = [*BUILD_INPUTS, f"{image}/Dockerfile"]
    try:
        commit = _git(root, "log", "-1", "--format=%H", "--", *paths).strip()
        if not commit:
            raise SourceRevisionError("no commit touches the image's sources yet")
        changes = _git(root, "status", "--porcelain", "--untracked-files=all", "--", *paths)
        if not changes:
            return commit
        diff = _git(root, "diff", "HEAD", "--binary", "--", *paths)
    except SourceRevisionError as error:
        raise SourceRevisionError(
            f"the {image} image is tagged with the git commit of its sources, which cannot be "
            f"read in {root} ({error}); allowed: build from a git clone, or deploy a prebuilt "
            "image with mlstack:imageDigests"
        ) from error
    untracked = sorted(
        line[3:] for line in changes.splitlines() if line.startswith("??")
    )  # their content, too: a new file changes the build as much as an edit
    digest = hashlib.sha256(diff.encode())
    for name in untracked:
        digest.update(name.encode() + b"\0" + (root / name).read_bytes())
    return f"{commit}-dirty-{digest.hexdigest()[:12]}"
