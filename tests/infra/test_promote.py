"""`mlstack promote`: pins go into stack files only as the registry and the stack allow, with
the files' comments and order kept."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.cli.main import main
from infra.config.stack import load_config
from infra.config.stackfiles import load_stack_settings
from infra.operations import pulumi_cli
from infra.operations.audit import AuditLog, AuditRecord
from infra.operations.errors import PulumiCliMissingError, RefusedError
from infra.operations.promotion import source_images
from mlstack_common.exits import ExitStatus
from tests.ecr import extended_ecr, push, repository, tags
from tests.infra.operating import REGION, Registry
from tests.logs import log_messages

SHA_A, SHA_B = "a" * 64, "b" * 64


def promote(project: Path, *args: str) -> int:
    """`mlstack promote ARGS`, with a reason unless ARGS give one (staging and prod need one)."""
    reason = [] if "--reason" in args else ["--reason", "CHG-1"]
    return main(["promote", *args, *reason, "--project-dir", str(project)])


def pins(project: Path, stack: str) -> dict[str, int]:
    return dict(load_config(load_stack_settings(stack, project).values).serving.model_versions)


def test_an_approved_version_is_pinned_with_the_file_otherwise_untouched(
    project: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.register("demo-staging", SHA_A)
    registry.register("demo-staging", SHA_B)
    before = (project / "Pulumi.staging.yaml").read_text()

    assert promote(project, "staging", "--model", "demo", "--version", "2") == 0

    after = (project / "Pulumi.staging.yaml").read_text()
    assert after == before + "  mlstack:servingModelVersions:\n    - demo=2\n"
    out, err = capsys.readouterr()
    assert "+  mlstack:servingModelVersions:\n+    - demo=2" in out
    assert "next: commit Pulumi.staging.yaml, then `pulumi up --stack staging`" in log_messages(err)
    assert pins(project, "staging") == {"demo": 2}

    # A second pin replaces the entry where it stands; promoting it again changes nothing.
    assert promote(project, "staging", "--model", "demo", "--version", "1") == 0
    assert (project / "Pulumi.staging.yaml").read_text() == after.replace("demo=2", "demo=1")
    assert promote(project, "staging", "--model", "demo", "--version", "1") == 0
    assert "already pins that; nothing to change" in log_messages(capsys.readouterr().err)


def test_a_pending_version_needs_approve_which_records_who_and_why(
    project: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.register("demo-prod", SHA_A, status="PendingManualApproval")
    before = (project / "Pulumi.prod.yaml").read_text()

    assert promote(project, "prod", "--model", "demo", "--version", "1") == 1
    assert "version 1 of 'demo-prod' is PendingManualApproval; approve it with --approve" in (
        log_messages(capsys.readouterr().err)
    )
    assert (project / "Pulumi.prod.yaml").read_text() == before

    assert (
        promote(project, "prod", "--model", "demo", "--version", "1", "--approve", "--dry-run") == 0
    )
    assert registry.status("demo-prod", 1)[0] == "PendingManualApproval"
    assert (project / "Pulumi.prod.yaml").read_text() == before
    assert "dry run: nothing changed" in log_messages(capsys.readouterr().err)

    code = promote(
        project, "prod", "--model", "demo", "--version", "1", "--approve", "--reason", "CAB-42"
    )
    assert code == 0
    status, description = registry.status("demo-prod", 1)
    assert status == "Approved"
    assert description.startswith("approved by ")
    assert description.endswith("with mlstack promote prod: CAB-42")
    assert pins(project, "prod") == {"demo": 1}


def test_each_promotion_is_appended_to_the_audit_log_and_none_is_overwritten(
    project: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    """The registry keeps one description per version; the audit log keeps every step,
    including the reason of a promotion that needed no approval."""
    registry.register("demo-prod", SHA_A, status="PendingManualApproval")
    registry.register("demo-prod", SHA_B)
    promote(project, "prod", "--model", "demo", "--version", "1", "--approve", "--reason", "CAB-42")
    promote(project, "prod", "--model", "demo", "--version", "2", "--reason", "CAB-43")
    capsys.readouterr()

    first, second = registry.audit("prod")
    assert (first.action, first.reason, second.reason) == ("promote", "CAB-42", "CAB-43")
    assert any("Approved: approved by" in change for change in first.changes)
    assert "prod pins version 2 (was 1)" in second.changes[0]
    assert "+    - demo=2" in second.diff

    assert main(["audit", "prod", "--project-dir", str(project)]) == 0
    shown = capsys.readouterr().out
    assert shown.index("CAB-42") < shown.index("CAB-43")
    assert "promote in prod by " in shown


def test_promote_needs_a_reason(project: Path, registry: Registry) -> None:
    registry.register("demo-dev", SHA_A)
    with pytest.raises(SystemExit) as refused:
        main(["promote", "dev", "--model", "demo", "--version", "1", "--project-dir", str(project)])
    assert refused.value.code == ExitStatus.USAGE


@pytest.mark.parametrize(
    ("interruption", "expected", "said"),
    [
        (OSError(28, "No space left on device"), ExitStatus.USAGE, "No space left on device"),
        (KeyboardInterrupt(), ExitStatus.INTERRUPTED, "interrupted (Ctrl-C)"),
    ],
    ids=["disk full", "ctrl-c"],
)
def test_an_interrupted_promotion_leaves_registry_and_stack_file_as_they_were(
    project: Path,
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    interruption: BaseException,
    expected: ExitStatus,
    said: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry.register("demo-prod", SHA_A, status="PendingManualApproval")
    before = (project / "Pulumi.prod.yaml").read_text(), registry.status("demo-prod", 1)

    def fail(*_: Any) -> None:
        raise interruption

    monkeypatch.setattr(os, "replace", fail)
    status = promote(project, "prod", "--model", "demo", "--version", "1", "--approve")

    assert status == expected
    assert said in log_messages(capsys.readouterr().err)

    assert ((project / "Pulumi.prod.yaml").read_text(), registry.status("demo-prod", 1)) == before
    assert [r.action for r in registry.audit("prod")] == ["promote", "revert"]


@pytest.mark.parametrize(
    ("statuses", "version", "message"),
    [
        (
            ["Rejected"],
            1,
            "version 1 of 'demo-dev' is Rejected; a Rejected version is never served",
        ),
        (
            ["Approved", "Rejected"],
            3,
            "model package group 'demo-dev' has no version 3; versions there: 1 (Approved), "
            "2 (Rejected)",
        ),
    ],
)
def test_a_version_the_registry_does_not_allow_is_refused_even_with_approve(
    project: Path,
    registry: Registry,
    capsys: pytest.CaptureFixture[str],
    statuses: list[str],
    version: int,
    message: str,
) -> None:
    for number, status in enumerate(statuses):
        registry.register("demo-dev", f"{number}" * 64, status=status)
    before = (project / "Pulumi.dev.yaml").read_text()
    code = promote(project, "dev", "--model", "demo", "--version", str(version), "--approve")
    assert code == 1
    assert message in log_messages(capsys.readouterr().err)
    assert (project / "Pulumi.dev.yaml").read_text() == before


def test_a_model_the_stack_does_not_have_and_bad_arguments_are_named(
    project: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    assert promote(project, "dev", "--model", "churn", "--version", "1") == 1
    assert "model 'churn' is not one of this stack's models (mlstack:models): demo" in (
        log_messages(capsys.readouterr().err)
    )
    with pytest.raises(SystemExit) as exit_info:
        promote(project, "dev", "--model", "demo")
    assert exit_info.value.code == 2
    assert "pinning in dev needs --model and --version" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        promote(project, "dev", "--from", "dev", "--to", "staging")
    assert "give either ENV --model M --version N, or --from ENV --to ENV" in (
        capsys.readouterr().err
    )
    assert promote(project, "qa", "--model", "demo", "--version", "1") == ExitStatus.USAGE
    assert "no stack file Pulumi.qa.yaml; stacks with a file: dev, local, prod, staging" in (
        log_messages(capsys.readouterr().err)
    )


class Outputs:
    """Each stack's outputs as the Pulumi CLI would read them (it cannot run here), standing in
    for `AutomationStack` in the CLI; an environment without any behaves as with no CLI."""

    def __init__(self) -> None:
        self.by_stack: dict[str, dict[str, Any]] = {}

    def engine(self, stack: str, *_: Any) -> Any:
        outputs = self.by_stack

        class Stack:
            def outputs(self) -> dict[str, Any]:
                if stack not in outputs:
                    raise PulumiCliMissingError(
                        "needs the Pulumi CLI, and there is no `pulumi` on PATH: install it"
                    )
                return outputs[stack]

        return Stack()


@pytest.fixture
def images(monkeypatch: pytest.MonkeyPatch, registry: Registry) -> Iterator[tuple[Any, Outputs]]:
    """The extended ECR emulator beside the registry (tests/ecr.py), and the stacks' outputs."""
    outputs = Outputs()
    monkeypatch.setattr(pulumi_cli, "AutomationStack", outputs.engine)
    with extended_ecr(monkeypatch, REGION) as (client, _):
        yield client, outputs


def deployed_images(ecr: Any, outputs: Outputs, stack: str, *, built: bool) -> dict[str, str]:
    """`stack`'s repositories holding an image each, named by its outputs (`built`: and the
    images as its outputs, as when the stack builds its own). The digests, by image."""
    found = {}
    for image in ("serving", "training"):
        location = push(ecr, f"images-{image}-{stack}", f"src-{image}-{stack}", index=True)
        outputs.by_stack.setdefault(stack, {})[f"{image}RepositoryUrl"] = location.repository_url
        if built:
            outputs.by_stack[stack][f"{image}Image"] = location.reference
        found[image] = location.digest
    return found


def staging_serving(
    project: Path, registry: Registry, images: tuple[Any, Outputs], version_sha: str = SHA_B
) -> dict[str, str]:
    """staging serves demo version 2 from prebuilt images, as CI leaves it; prod has its
    repositories. staging's digests, by image."""
    ecr, outputs = images
    digests = deployed_images(ecr, outputs, "staging", built=False)
    for image in ("serving", "training"):
        outputs.by_stack.setdefault("prod", {})[f"{image}RepositoryUrl"] = repository(
            ecr, f"images-{image}-prod"
        )
    registry.register("demo-staging", SHA_A)
    registry.register("demo-staging", version_sha)
    assert promote(project, "staging", "--model", "demo", "--version", "2") == 0
    with (project / "Pulumi.staging.yaml").open("a") as handle:
        handle.write(
            f"  mlstack:imageDigests:\n    - serving={digests['serving']}\n"
            f"    - training={digests['training']}\n"
        )
    return digests


def test_promoting_staging_to_prod_copies_versions_digests_and_images_keeping_comments(
    project: Path,
    registry: Registry,
    images: tuple[Any, Outputs],
    capsys: pytest.CaptureFixture[str],
) -> None:
    digests = staging_serving(project, registry, images)
    registry.register("demo-prod", SHA_A)
    registry.register("demo-prod", SHA_B)
    before = (project / "Pulumi.prod.yaml").read_text()
    capsys.readouterr()

    assert promote(project, "--from", "staging", "--to", "prod", "--dry-run") == 0
    assert tags(images[0], "images-serving-prod") == {}
    assert (project / "Pulumi.prod.yaml").read_text() == before
    assert "would copy the serving image" in log_messages(capsys.readouterr().err)

    assert promote(project, "--from", "staging", "--to", "prod") == 0

    after = (project / "Pulumi.prod.yaml").read_text()
    assert after.startswith(before)  # every line and comment kept, in order; lines only added
    assert after[len(before) :] == (
        "  mlstack:servingModelVersions:\n    - demo=2\n"
        f"  mlstack:imageDigests:\n    - serving={digests['serving']}\n"
        f"    - training={digests['training']}\n"
    )
    prod = load_config(load_stack_settings("prod", project).values)
    assert dict(prod.serving.model_versions) == {"demo": 2}
    assert dict(prod.registry.image_digests) == digests
    # prod's own repositories hold the images its file now names, under staging's tags.
    assert tags(images[0], "images-serving-prod")[digests["serving"]] == ["src-serving-staging"]
    assert tags(images[0], "images-training-prod")[digests["training"]] == ["src-training-staging"]
    err = log_messages(capsys.readouterr().err)
    assert "demo: staging version 2 is prod version 2 (model sha256 bbbbbbbbbbbb…)" in err
    assert "copying the serving image" in err


def test_prod_pins_its_own_version_of_the_same_model_and_refuses_a_model_it_lacks(
    project: Path,
    registry: Registry,
    images: tuple[Any, Outputs],
    capsys: pytest.CaptureFixture[str],
) -> None:
    staging_serving(project, registry, images)
    registry.register("demo-prod", SHA_B)  # prod trained the same model first: its version 1
    assert promote(project, "--from", "staging", "--to", "prod") == 0
    assert pins(project, "prod") == {"demo": 1}
    assert "demo: staging version 2 is prod version 1" in log_messages(capsys.readouterr().err)

    before = (project / "Pulumi.dev.yaml").read_text()
    assert promote(project, "--from", "staging", "--to", "dev") == 1
    assert (
        "'demo-dev' holds no version of the model 'demo-staging' version 2 holds (model_sha256 "
        "bbbbbbbbbbbb…); register it there first"
    ) in log_messages(capsys.readouterr().err)
    assert (project / "Pulumi.dev.yaml").read_text() == before


def test_an_environment_whose_outputs_cannot_be_read_cannot_be_promoted_from(
    project: Path,
    registry: Registry,
    images: tuple[Any, Outputs],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without the Pulumi CLI no stack's outputs can be read, and they name the repositories
    the images are copied between (and, for an environment that builds its own, the digests)."""
    registry.register("demo-dev", SHA_A)
    registry.register("demo-staging", SHA_A)
    assert promote(project, "dev", "--model", "demo", "--version", "1") == 0
    before = (project / "Pulumi.staging.yaml").read_text()
    assert promote(project, "--from", "dev", "--to", "staging") == ExitStatus.TOOL_MISSING
    err = log_messages(capsys.readouterr().err)
    assert (
        "promoting copies the images dev's repositories hold, which its stack outputs name" in err
    )
    assert "needs the Pulumi CLI, and there is no `pulumi` on PATH: install it" in err
    assert (project / "Pulumi.staging.yaml").read_text() == before


def test_an_environment_that_builds_its_images_gives_the_digests_its_outputs_name(
    project: Path,
    registry: Registry,
    images: tuple[Any, Outputs],
    capsys: pytest.CaptureFixture[str],
) -> None:
    ecr, outputs = images
    registry.register("demo-dev", SHA_A)
    registry.register("demo-staging", SHA_A)
    assert promote(project, "dev", "--model", "demo", "--version", "1") == 0
    built = deployed_images(ecr, outputs, "dev", built=True)
    deployed_images(ecr, outputs, "staging", built=False)
    assert promote(project, "--from", "dev", "--to", "staging") == 0
    staging = load_config(load_stack_settings("staging", project).values)
    assert dict(staging.registry.image_digests) == built
    assert "images from dev (its stack outputs)" in log_messages(capsys.readouterr().err)
    dev = load_config(load_stack_settings("dev", project).values)
    with pytest.raises(RefusedError, match="dev's stack outputs name no image digest; deploy it"):
        source_images(dev, lambda: {"environment": "dev"})


def test_carrying_pins_to_a_pending_version_needs_approve_and_records_it(
    project: Path,
    registry: Registry,
    images: tuple[Any, Outputs],
    capsys: pytest.CaptureFixture[str],
) -> None:
    staging_serving(project, registry, images)
    registry.register("demo-prod", SHA_B, status="PendingManualApproval")
    before = (project / "Pulumi.prod.yaml").read_text()
    assert promote(project, "--from", "staging", "--to", "prod") == 1
    assert "version 1 of 'demo-prod' is PendingManualApproval; approve it with --approve" in (
        log_messages(capsys.readouterr().err)
    )
    assert (project / "Pulumi.prod.yaml").read_text() == before

    assert (
        promote(project, "--from", "staging", "--to", "prod", "--approve", "--reason", "CAB-9") == 0
    )
    status, description = registry.status("demo-prod", 1)
    assert status == "Approved"
    assert description.endswith("with mlstack promote --from staging --to prod: CAB-9")
    assert pins(project, "prod") == {"demo": 1}


def test_audit_shows_one_models_records_as_json_lines(
    project: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    registry.register("demo-dev", SHA_A)
    AuditLog(registry.logs, "dev").append(
        AuditRecord(
            action="rollback",
            stack="dev",
            reason="INC-1",
            aws_identity="arn:aws:iam::123456789012:user/ops",
            git_user="ops@example.com",
            changes=("churn: dev goes from version 3 back to 2",),
            models=("churn",),
        )
    )
    assert promote(project, "dev", "--model", "demo", "--version", "1", "--reason", "CHG-5") == 0
    capsys.readouterr()

    assert main(["audit", "dev", "--model", "demo", "--json", "--project-dir", str(project)]) == 0

    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (record["action"], record["reason"], record["models"]) == ("promote", "CHG-5", ["demo"])
