"""Stack file edits keep everything but the changed entries as they were."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.config.stackfiles import StackFileError
from infra.operations.stack_edit import DIGESTS_KEY, PINS_KEY, set_entries
from infra.project.paths import PROJECT_ROOT, known_stacks


@pytest.mark.parametrize("stack", known_stacks())
def test_every_stack_file_is_kept_byte_for_byte_when_nothing_changes(stack: str) -> None:
    edit = set_entries(PROJECT_ROOT / f"Pulumi.{stack}.yaml", {PINS_KEY: {}})
    assert not edit.changed
    assert edit.diff() == ""


def test_entries_keep_their_style_place_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text(
        "# prod\n"
        "config:\n"
        "  mlstack:servingModelVersions: [churn=4, demo=2]  # CAB-7\n"
        "  mlstack:imageDigests:\n"
        "    - serving=sha256:1  # from staging\n"
        "  mlstack:nodeMinSize: 3\n"
    )
    edit = set_entries(
        path, {PINS_KEY: {"demo": "3", "fraud": "1"}, DIGESTS_KEY: {"serving": "sha256:2"}}
    )
    # A trailing comment keeps its column; past it (the line grew), one space before it.
    assert edit.after == (
        "# prod\n"
        "config:\n"
        "  mlstack:servingModelVersions: [churn=4, demo=3, fraud=1] # CAB-7\n"
        "  mlstack:imageDigests:\n"
        "    - serving=sha256:2  # from staging\n"
        "  mlstack:nodeMinSize: 3\n"
    )
    assert path.read_text() != edit.after  # nothing is written until asked
    edit.write()
    assert path.read_text() == edit.after


def test_a_layout_that_cannot_be_kept_is_refused_not_reformatted(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text("config:\n    mlstack:nodeMinSize: 3\n")
    with pytest.raises(StackFileError, match=r"its layout .* cannot be kept by an automatic edit"):
        set_entries(path, {PINS_KEY: {"demo": "1"}})
