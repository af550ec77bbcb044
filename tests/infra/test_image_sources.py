"""Image tags from the git history of the images' sources, on real repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infra.image_sources import SourceRevisionError, source_tag


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    git(tmp_path, "init", "-q")
    git(tmp_path, "config", "user.email", "dev@example.com")
    git(tmp_path, "config", "user.name", "dev")
    (tmp_path / "serving").mkdir()
    (tmp_path / "serving" / "Dockerfile").write_text("FROM base\n")
    (tmp_path / "serving" / "app.py").write_text("print('v1')\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "serving v1")
    return tmp_path


def test_the_tag_is_the_last_commit_that_changed_the_images_sources(repository: Path) -> None:
    built = git(repository, "rev-parse", "HEAD")
    (repository / "docs.md").write_text("notes\n")
    git(repository, "add", ".")
    git(repository, "commit", "-qm", "docs only")
    assert source_tag("serving", repository) == built
    (repository / "serving" / "app.py").write_text("print('v2')\n")
    git(repository, "commit", "-qam", "serving v2")
    assert source_tag("serving", repository) == git(repository, "rev-parse", "HEAD")


def test_uncommitted_changes_get_a_tag_of_their_own_per_content(repository: Path) -> None:
    head = git(repository, "rev-parse", "HEAD")
    (repository / "serving" / "app.py").write_text("print('edit a')\n")
    first = source_tag("serving", repository)
    (repository / "serving" / "app.py").write_text("print('edit b')\n")
    second = source_tag("serving", repository)
    assert first.startswith(f"{head}-dirty-")
    assert second.startswith(f"{head}-dirty-")
    assert first != second
    (repository / "serving" / "app.py").write_text("print('v1')\n")
    (repository / "serving" / "new.py").write_text("x = 1\n")
    assert source_tag("serving", repository).startswith(f"{head}-dirty-")


def test_outside_a_repository_the_message_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SourceRevisionError) as refused:
        source_tag("serving", tmp_path)
    assert "build from a git clone, or deploy a prebuilt image with mlstack:imageDigests" in str(
        refused.value
    )
