"""What an image is built from, as its tag in the registry: a hash of exactly its build inputs.

The tag is a function of the content of the files the image's Dockerfile copies (and of the
Dockerfile), not of history: the same tree gives the same tag in a full clone, in CI's depth-1
clone and with uncommitted edits undone, so a commit that changes none of an image's inputs
leaves its tag, its digest and every workload that runs it as they were. Any change to an
input, committed or not, gives a new tag: the repositories' tags are immutable, so two
different builds must never share one. Which files count is git's answer (tracked, or
untracked and not ignored), so caches and virtualenvs never do; a file's content counts by its
git blob id, as git itself would store it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pulumi

from infra.project.paths import PROJECT_ROOT

SHARED_INPUTS = ("mlstack_common",)
"""What both images copy besides their own directory: the package they share."""
TAG_PREFIX = "src-"
"""Marks a content tag apart from a commit in the registry and in lineage records."""
TAG_HEX_DIGITS = 32


class SourceRevisionError(pulumi.RunError):
    """The sources' revision cannot be read; the message says what to do instead."""


def _git(root: Path, *args: str, stdin: str | None = None) -> str:
    try:
        result = subprocess.run(  # noqa: S603 (fixed git subcommands)
            ["git", "-C", str(root), *args],  # noqa: S607 (git from PATH, as a user runs it)
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            input=stdin,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SourceRevisionError(f"git cannot run ({error})") from error
    if result.returncode != 0:
        raise SourceRevisionError(result.stderr.strip() or f"git {args[0]} failed")
    return result.stdout


def build_inputs(image: str) -> tuple[str, ...]:
    """The paths, relative to the repository root, that `image`'s build reads: the shared
    package and the image's own directory, which holds its Dockerfile and its dependencies
    exported from the lock (`<image>/requirements.txt`). Not `pyproject.toml` or `uv.lock`
    themselves: a change to the dev tools or the other image's extra leaves the export, and so
    the image, as it was."""
    return (*SHARED_INPUTS, image)


def source_tag(image: str, root: Path = PROJECT_ROOT) -> str:
    """The tag for `image` built from the working tree at `root`: `src-<hash of its inputs>`."""
    try:
        listed = _git(
            root,
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
            "--",
            *build_inputs(image),
        )
        files = sorted({name for name in listed.split("\0") if (root / name).is_file()})
        if not files:
            raise SourceRevisionError("none of the image's sources is in the repository")
        blobs = _git(root, "hash-object", "--stdin-paths", stdin="\n".join(files) + "\n")
    except SourceRevisionError as error:
        raise SourceRevisionError(
            f"the {image} image is tagged with a hash of its sources, which git cannot list in "
            f"{root} ({error}); allowed: build from a git clone, or deploy a prebuilt image "
            "with mlstack:imageDigests"
        ) from error
    digest = hashlib.sha256()
    for name, blob in zip(files, blobs.split(), strict=True):
        executable = "x" if os.access(root / name, os.X_OK) else "-"
        digest.update(f"{name}\0{executable}{blob}\n".encode())
    return TAG_PREFIX + digest.hexdigest()[:TAG_HEX_DIGITS]
