"""Image tags from the content of the images' build inputs, on real repositories and clones."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from infra.components.image_sources import SourceRevisionError, source_tag
from infra.project.naming import IMAGES
from infra.project.paths import PROJECT_ROOT


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


def commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    root = tmp_path / "origin"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "dev@example.com")
    git(root, "config", "user.name", "dev")
    (root / "serving").mkdir()
    (root / "serving" / "Dockerfile").write_text("FROM base\n")
    (root / "serving" / "app.py").write_text("print('v1')\n")
    (root / "training").mkdir()
    (root / "training" / "Dockerfile").write_text("FROM base\n")
    (root / "training" / "run.py").write_text("print('train')\n")
    (root / ".gitignore").write_text("__pycache__/\n")
    commit(root, "v1")
    return root


def test_the_same_tree_has_the_same_tag_in_a_full_and_a_shallow_clone(
    repository: Path, tmp_path: Path
) -> None:
    """CI clones one commit deep; the tag must not depend on how much history is there."""
    for n in range(3):
        (repository / "docs.md").write_text(f"notes {n}\n")
        commit(repository, f"docs {n}")
    full, shallow = tmp_path / "full", tmp_path / "shallow"
    git(tmp_path, "clone", "-q", repository.as_uri(), str(full))
    git(tmp_path, "clone", "-q", "--depth", "1", repository.as_uri(), str(shallow))
    assert git(shallow, "rev-list", "--count", "HEAD") == "1"
    for image in ("serving", "training"):
        assert (
            source_tag(image, full) == source_tag(image, shallow) == source_tag(image, repository)
        )


def test_a_commit_that_changes_none_of_an_images_inputs_leaves_its_tag(repository: Path) -> None:
    serving, training = source_tag("serving", repository), source_tag("training", repository)
    (repository / "docs.md").write_text("notes\n")
    commit(repository, "docs only")
    assert (source_tag("serving", repository), source_tag("training", repository)) == (
        serving,
        training,
    )
    (repository / "serving" / "app.py").write_text("print('v2')\n")
    commit(repository, "serving v2")
    assert source_tag("serving", repository) != serving
    assert source_tag("serving", repository).startswith("src-")


def test_uncommitted_changes_get_a_tag_of_their_own_per_content(repository: Path) -> None:
    clean = source_tag("serving", repository)
    (repository / "serving" / "app.py").write_text("print('edit a')\n")
    first = source_tag("serving", repository)
    (repository / "serving" / "app.py").write_text("print('edit b')\n")
    second = source_tag("serving", repository)
    assert len({clean, first, second}) == 3
    # Undone, the tree is what was committed: the tag is too.
    (repository / "serving" / "app.py").write_text("print('v1')\n")
    assert source_tag("serving", repository) == clean
    (repository / "serving" / "new.py").write_text("x = 1\n")
    assert source_tag("serving", repository) != clean
    (repository / "serving" / "new.py").unlink()
    (repository / "serving" / "__pycache__").mkdir()
    (repository / "serving" / "__pycache__" / "app.pyc").write_bytes(b"\0")
    assert source_tag("serving", repository) == clean  # ignored files are no input


def test_outside_a_repository_the_message_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(SourceRevisionError) as refused:
        source_tag("serving", tmp_path)
    assert "build from a git clone, or deploy a prebuilt image with mlstack:imageDigests" in str(
        refused.value
    )


@pytest.fixture
def project_clone(tmp_path: Path) -> Path:
    """A one-commit clone of this repository, where a test may commit what it likes."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", PROJECT_ROOT.as_uri(), str(clone))
    git(clone, "config", "user.email", "dev@example.com")
    git(clone, "config", "user.name", "dev")
    return clone


def tags(root: Path) -> dict[str, str]:
    return {image: source_tag(image, root) for image in IMAGES}


def test_docs_infra_and_dev_tool_commits_leave_both_images_tags(project_clone: Path) -> None:
    before = tags(project_clone)
    with (project_clone / "README.md").open("a") as readme:
        readme.write("\nA note for newcomers.\n")
    commit(project_clone, "docs")
    program = project_clone / "infra" / "platform" / "__main__.py"
    program.write_text(program.read_text() + "\n# a comment\n")
    commit(project_clone, "infra")
    pyproject = project_clone / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("line-length = 100", "line-length = 99"))
    commit(project_clone, "a lint setting")
    assert tags(project_clone) == before


def test_a_serving_commit_changes_only_the_serving_tag_and_a_shared_one_both(
    project_clone: Path,
) -> None:
    before = tags(project_clone)
    app = project_clone / "serving" / "app.py"
    app.write_text(app.read_text() + "\n# a comment\n")
    commit(project_clone, "serving")
    after_serving = tags(project_clone)
    assert after_serving["training"] == before["training"]
    assert after_serving["serving"] != before["serving"]
    artifact = project_clone / "mlstack_common" / "artifact.py"
    artifact.write_text(artifact.read_text() + "\n# a comment\n")
    commit(project_clone, "shared")
    after_shared = tags(project_clone)
    assert all(after_shared[image] != after_serving[image] for image in IMAGES)
