"""The repository the stack files live in: who is operating, whether the tree is clean, whether
a commit is there, and a temporary checkout of one commit."""

from __future__ import annotations

import getpass
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from infra.operations.errors import RefusedError


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        ["git", "-C", str(root), *args],  # noqa: S607 (git from PATH, as a person runs it)
        capture_output=True,
        text=True,
        check=False,
    )


def operator(root: Path) -> str:
    """Who is running the command, for the registry's record: git's user.email, else the login."""
    email = _git(root, "config", "user.email").stdout.strip()
    return email or getpass.getuser()


def uncommitted_changes(root: Path) -> list[str]:
    """`git status --porcelain` lines: tracked files changed and untracked files not ignored."""
    result = _git(root, "status", "--porcelain")
    if result.returncode != 0:
        raise RefusedError(f"{root} is not a git checkout: {result.stderr.strip()}")
    return [line for line in result.stdout.splitlines() if line.strip()]


def require_clean(root: Path) -> None:
    changes = uncommitted_changes(root)
    if changes:
        raise RefusedError(
            f"{root} has uncommitted changes ({len(changes)}: {', '.join(changes[:5])}); commit "
            "or stash them first, so what is rolled back and what is on disk are not confused"
        )


def has_commit(root: Path, commit: str) -> bool:
    return _git(root, "cat-file", "-e", f"{commit}^{{commit}}").returncode == 0


@contextmanager
def checkout(root: Path, commit: str) -> Iterator[Path]:
    """`commit` checked out in a temporary worktree of `root`, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="mlstack-rollback-") as parent:
        path = Path(parent) / "worktree"
        added = _git(root, "worktree", "add", "--detach", str(path), commit)
        if added.returncode != 0:
            raise RefusedError(f"commit {commit} cannot be checked out: {added.stderr.strip()}")
        try:
            yield path
        finally:
            _git(root, "worktree", "remove", "--force", str(path))
