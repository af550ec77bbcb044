"""`mlstack rollback ENV` for a model: the pin goes back, the registry records who and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.cli.main import main
from infra.config.stack import load_config
from infra.config.stackfiles import load_stack_settings
from tests.infra.operating import Registry
from tests.logs import log_messages


def rollback(project: Path, *args: str) -> int:
    return main(["rollback", "dev", "--reason", "INC-9", *args, "--project-dir", str(project)])


@pytest.fixture
def dev_serves_two(project: Path, registry: Registry) -> Path:
    """dev serves demo v3 (v2 Rejected, v4 pending) and churn v2."""
    for sha, status in [
        ("1", "Approved"),
        ("2", "Rejected"),
        ("3", "Approved"),
        ("4", "PendingManualApproval"),
    ]:
        registry.register("demo-dev", sha * 64, status=status)
    for sha in "56":
        registry.register("churn-dev", sha * 64)
    path = project / "Pulumi.dev.yaml"
    path.write_text(
        path.read_text()
        + "  mlstack:models: [demo, churn]\n"
        + "  mlstack:servingModelVersions:\n    - demo=3  # CAB-1\n    - churn=2\n"
    )
    return project


def pins(project: Path) -> dict[str, int]:
    return dict(load_config(load_stack_settings("dev", project).values).serving.model_versions)


def test_the_previous_approved_version_is_pinned_skipping_a_rejected_one(
    dev_serves_two: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    before = (dev_serves_two / "Pulumi.dev.yaml").read_text()
    assert rollback(dev_serves_two, "--model", "demo", "--dry-run") == 0
    assert (dev_serves_two / "Pulumi.dev.yaml").read_text() == before
    assert registry.status("demo-dev", 3) == ("Approved", "")
    assert "would record on" in log_messages(capsys.readouterr().err)

    assert rollback(dev_serves_two, "--model", "demo") == 0
    assert pins(dev_serves_two) == {"demo": 1, "churn": 2}
    assert "    - demo=1  # CAB-1\n" in (dev_serves_two / "Pulumi.dev.yaml").read_text()
    status, description = registry.status("demo-dev", 3)
    assert status == "Approved"
    assert description.startswith("rolled back in dev to version 1 by ")
    assert description.endswith(": INC-9")
    out = capsys.readouterr().out
    assert "-    - demo=3  # CAB-1\n+    - demo=1  # CAB-1" in out


def test_the_model_must_be_named_when_several_are_served_and_to_picks_the_version(
    dev_serves_two: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert rollback(dev_serves_two) == 1
    assert "dev serves demo, churn: name one with --model" in log_messages(capsys.readouterr().err)
    assert rollback(dev_serves_two, "--model", "fraud") == 1
    assert "dev does not serve 'fraud'; it serves: demo, churn" in log_messages(
        capsys.readouterr().err
    )
    assert rollback(dev_serves_two, "--model", "churn", "--to", "1") == 0
    assert pins(dev_serves_two) == {"demo": 3, "churn": 1}


@pytest.mark.parametrize(
    ("to", "why"),
    [
        ("2", "it is Rejected"),
        ("4", "it is PendingManualApproval"),
        ("3", "it is the version served now"),
        ("9", "there is no such version"),
    ],
)
def test_a_version_that_cannot_be_served_is_refused(
    dev_serves_two: Path, capsys: pytest.CaptureFixture[str], to: str, why: str
) -> None:
    before = (dev_serves_two / "Pulumi.dev.yaml").read_text()
    assert rollback(dev_serves_two, "--model", "demo", "--to", to) == 1
    assert f"cannot roll demo back to version {to} of 'demo-dev': {why}; versions there: " in (
        log_messages(capsys.readouterr().err)
    )
    assert (dev_serves_two / "Pulumi.dev.yaml").read_text() == before


def test_with_no_earlier_approved_version_there_is_nothing_to_go_back_to(
    dev_serves_two: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert rollback(dev_serves_two, "--model", "churn") == 0
    assert rollback(dev_serves_two, "--model", "churn") == 1
    assert (
        "'churn-dev' has no Approved version before 1 to roll back to; versions there: "
        "1 (Approved), 2 (Approved)"
    ) in log_messages(capsys.readouterr().err)
