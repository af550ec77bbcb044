"""Pinning model versions in a stack file: one version into one environment, or every pin and
image digest of one environment copied into the next.

A pin goes in only when the registry allows it (the version exists and is Approved, or is
approved here on request; never a Rejected one) and the stack would accept the edited file, so a
promotion that `pulumi up` would refuse never reaches the file."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from infra.config.errors import ConfigError
from infra.config.schema import load_schema
from infra.config.stack import StackConfig, load_config
from infra.config.stackfiles import load_stack_settings, merge_with_defaults
from infra.operations.audit import AuditLog, AuditRecord
from infra.operations.errors import PulumiCliMissingError, RefusedError
from infra.operations.image_copy import CopyReport, ImageLocation, copy_image
from infra.operations.live_state import digest_of
from infra.operations.sagemaker_jobs import image_revision
from infra.operations.stack_edit import DIGESTS_KEY, PINS_KEY, StackFileEdit, set_entries
from infra.project import naming
from infra.project.outputs import (
    SERVING_IMAGE,
    SERVING_REPOSITORY_URL,
    TRAINING_IMAGE,
    TRAINING_REPOSITORY_URL,
)
from infra.project.paths import PROJECT_FILE, stack_file
from mlstack_common.registry import (
    APPROVED,
    MODEL_SHA256_PROPERTY,
    REJECTED,
    VersionSummary,
    approval_description,
    describe_versions,
    list_versions,
    set_approval,
)


@dataclass(frozen=True)
class RegistryRecord:
    """A status to set on a version, with the description that says who and why."""

    version: VersionSummary
    status: str
    description: str


@dataclass(frozen=True)
class ImageTransfer:
    """An image of the source environment that the target's repository must hold before the
    target's stack file names its digest."""

    image: str
    source: ImageLocation
    target_repository_url: str
    tag: str
    source_client: Any
    target_client: Any

    def describe(self) -> str:
        return f"{self.image} image {self.source.digest} into {self.target_repository_url}"

    def run(self) -> CopyReport:
        return copy_image(
            self.source,
            self.target_repository_url,
            source_client=self.source_client,
            target_client=self.target_client,
            tag=self.tag or None,
        )


@dataclass(frozen=True)
class PinChange:
    """A stack file edit, what it records in the registry and the images it copies, not yet
    applied."""

    edit: StackFileEdit
    action: str
    """What the audit log calls it: `promote`, `rollback`, `emergency-rollback`."""
    reason: str
    models: tuple[str, ...]
    records: tuple[RegistryRecord, ...] = ()
    notes: tuple[str, ...] = ()
    images: tuple[ImageTransfer, ...] = ()

    def audit_record(self, stack: str, *, aws_identity: str, git_user: str) -> AuditRecord:
        return AuditRecord(
            action=self.action,
            stack=stack,
            reason=self.reason,
            aws_identity=aws_identity,
            git_user=git_user,
            changes=(
                *self.notes,
                *(f"registry {r.version.arn}: {r.status}: {r.description}" for r in self.records),
                *(f"image {t.describe()}" for t in self.images),
            ),
            diff=self.edit.diff(),
            models=self.models,
        )

    def apply(self, client: Any, audit: AuditLog, record: AuditRecord) -> None:
        """The audit record first (no change goes unrecorded), then the images, the registry
        and the stack file. An image a pin names must be in the environment's repository, and a
        version must be approved, before the file names them; and the registry and the file
        change together or not at all: when the file cannot be written (or the command is
        interrupted), each registry record is set back and the log says so."""
        audit.append(record)
        for transfer in self.images:
            transfer.run()
        applied: list[tuple[RegistryRecord, str]] = []
        try:
            for change in self.records:
                before = approval_description(client, change.version.arn)
                set_approval(client, change.version, change.status, change.description)
                applied.append((change, before))
            if self.edit.changed:
                self.edit.write()
        except BaseException as error:
            self._revert(client, audit, record, applied, error)
            raise

    def _revert(
        self,
        client: Any,
        audit: AuditLog,
        record: AuditRecord,
        applied: list[tuple[RegistryRecord, str]],
        error: BaseException,
    ) -> None:
        undone = []
        for change, description in reversed(applied):
            set_approval(client, change.version, change.version.status, description)
            undone.append(f"registry {change.version.arn}: back to {change.version.status}")
        audit.append(
            AuditRecord(
                action="revert",
                stack=record.stack,
                reason=f"{record.action} of {record.when} not made: "
                f"{type(error).__name__}: {error}",
                aws_identity=record.aws_identity,
                git_user=record.git_user,
                changes=tuple(undone),
                models=record.models,
            )
        )


def stack_config(root: Path, stack: str) -> StackConfig:
    return load_config(load_stack_settings(stack, root).values)


def accepted(edit: StackFileEdit, root: Path) -> StackFileEdit:
    """The edit, once the stack is known to accept the file it makes."""
    document = yaml.safe_load(edit.after) or {}
    values, _ = merge_with_defaults(
        dict(document.get("config") or {}), load_schema(root / PROJECT_FILE.name)
    )
    try:
        load_config(values)
    except ConfigError as error:
        raise RefusedError(f"{edit.path.name} would no longer be a valid stack: {error}") from error
    return edit


def _pinned(config: StackConfig, model: str) -> str:
    version = config.serving.model_versions.get(model)
    return "nothing" if version is None else str(version)


def check_model(config: StackConfig, model: str) -> None:
    if model not in config.registry.models:
        raise RefusedError(
            f"model {model!r} is not one of this stack's models (mlstack:models): "
            + ", ".join(config.registry.models)
        )


def servable(
    group: str, summary: VersionSummary, approve: bool, reason: str
) -> RegistryRecord | None:
    """The approval a pin of `summary` needs first, if any; a refusal if it cannot be pinned."""
    if summary.status == APPROVED:
        return None
    if summary.status == REJECTED:
        raise RefusedError(
            f"version {summary.version} of {group!r} is Rejected; a Rejected version is never "
            "served: pin an Approved one"
        )
    if not approve:
        raise RefusedError(
            f"version {summary.version} of {group!r} is {summary.status or 'without a status'}; "
            "approve it with --approve (recorded with your name and --reason), or in the registry"
        )
    return RegistryRecord(summary, APPROVED, reason)


def pin_version(
    root: Path,
    stack: str,
    model: str,
    version: int,
    *,
    client: Any,
    approve: bool,
    operator: str,
    reason: str,
) -> PinChange:
    """`model` pinned to `version` in `stack`'s file."""
    config = stack_config(root, stack)
    check_model(config, model)
    group = naming.model_package_group(model, config.environment)
    versions = list_versions(client, group)
    summary = next((v for v in versions if v.version == version), None)
    if summary is None:
        raise RefusedError(
            f"model package group {group!r} has no version {version}; versions there: "
            + describe_versions(versions)
        )
    approval = servable(
        group,
        summary,
        approve,
        f"approved by {operator} with mlstack promote {stack}: {reason}",
    )
    edit = accepted(set_entries(stack_file(stack, root), {PINS_KEY: {model: str(version)}}), root)
    return PinChange(
        edit=edit,
        action="promote",
        reason=reason,
        models=(model,),
        records=(approval,) if approval else (),
        notes=(f"{model}: {stack} pins version {version} (was {_pinned(config, model)})",),
    )


@dataclass(frozen=True)
class SourceImages:
    """Where the digests the source environment runs come from."""

    digests: Mapping[str, str]
    origin: str

    def locations(self, outputs: Mapping[str, Any]) -> dict[str, ImageLocation]:
        """Each image in the source environment's repository (its platform outputs name it)."""
        return {
            image: ImageLocation(str(outputs[REPOSITORY_OUTPUTS[image]]), digest)
            for image, digest in self.digests.items()
        }


REPOSITORY_OUTPUTS = {"serving": SERVING_REPOSITORY_URL, "training": TRAINING_REPOSITORY_URL}


def source_images(
    config: StackConfig, read_outputs: Callable[[], Mapping[str, Any]]
) -> SourceImages:
    """The image digests an environment runs: its `imageDigests` pins, else the digests its last
    update built (the stack's outputs, which only the Pulumi CLI can read)."""
    if config.registry.image_digests:
        return SourceImages(dict(config.registry.image_digests), "its imageDigests")
    try:
        outputs = read_outputs()
    except PulumiCliMissingError as error:
        raise PulumiCliMissingError(
            f"{config.environment} builds its own images, so their digests are in its stack "
            f"outputs ({SERVING_IMAGE}, {TRAINING_IMAGE}); reading them: {error}"
        ) from error
    digests = {
        image: digest_of(str(outputs.get(output) or ""))
        for image, output in (("serving", SERVING_IMAGE), ("training", TRAINING_IMAGE))
        if digest_of(str(outputs.get(output) or ""))
    }
    if not digests:
        raise RefusedError(
            f"{config.environment}'s stack outputs name no image digest; deploy it first"
        )
    return SourceImages(digests, "its stack outputs")


@dataclass(frozen=True)
class _Match:
    source: VersionSummary
    target: VersionSummary
    sha256: str


def _same_model(
    model: str,
    source_group: str,
    source_version: int,
    source_client: Any,
    target_group: str,
    target_client: Any,
) -> _Match:
    """The target group's version holding the model the source group's version holds (its
    model sha256): the same number when it does, else the newest that does."""
    source_versions = list_versions(source_client, source_group)
    source = next((v for v in source_versions if v.version == source_version), None)
    if source is None:
        raise RefusedError(
            f"{source_group!r} has no version {source_version} (it pins {model}={source_version})"
        )
    sha = _model_sha256(source_client, source)
    if not sha:
        raise RefusedError(
            f"version {source_version} of {source_group!r} records no {MODEL_SHA256_PROPERTY}, "
            "so no other registry can be shown to hold the same model"
        )
    candidates = [
        target
        for target in list_versions(target_client, target_group)
        if _model_sha256(target_client, target) == sha
    ]
    if not candidates:
        raise RefusedError(
            f"{target_group!r} holds no version of the model {source_group!r} version "
            f"{source_version} holds ({MODEL_SHA256_PROPERTY} {sha[:12]}…); register it there "
            "first (a training run on the same data registers the same model)"
        )
    same_number = [t for t in candidates if t.version == source_version]
    return _Match(source, (same_number or candidates)[-1], sha)


def _model_sha256(client: Any, summary: VersionSummary) -> str:
    from mlstack_common.registry import describe_model_package

    return describe_model_package(client, summary.arn).model_sha256


def copy_pins(
    root: Path,
    source: str,
    target: str,
    *,
    source_client: Any,
    target_client: Any,
    read_outputs: Callable[[str], Mapping[str, Any]],
    source_ecr: Any,
    target_ecr: Any,
    approve: bool,
    operator: str,
    reason: str,
) -> PinChange:
    """`target`'s file given `source`'s served models and image digests, and the copies of
    those images into `target`'s repositories (each environment has its own). `read_outputs`
    reads an environment's stack outputs (both layers')."""
    if source == target:
        raise RefusedError(f"--from and --to are both {source!r}")
    source_config, target_config = stack_config(root, source), stack_config(root, target)
    if not source_config.serving.model_versions:
        raise RefusedError(
            f"{source} pins no model version (mlstack:servingModelVersions); nothing to promote"
        )
    pins: dict[str, str] = {}
    records: list[RegistryRecord] = []
    notes: list[str] = []
    for model, version in source_config.serving.model_versions.items():
        check_model(target_config, model)
        source_group = naming.model_package_group(model, source_config.environment)
        target_group = naming.model_package_group(model, target_config.environment)
        match = _same_model(
            model, source_group, version, source_client, target_group, target_client
        )
        approval = servable(
            target_group,
            match.target,
            approve,
            f"approved by {operator} with mlstack promote --from {source} --to {target}: {reason}",
        )
        records.extend([approval] if approval else [])
        pins[model] = str(match.target.version)
        notes.append(
            f"{model}: {source} version {version} is {target} version {match.target.version} "
            f"(model sha256 {match.sha256[:12]}…)"
        )
    source_outputs = _outputs(read_outputs, source)
    images = source_images(source_config, lambda: source_outputs)
    target_outputs = _outputs(read_outputs, target)
    transfers = tuple(
        ImageTransfer(
            image=image,
            source=location,
            target_repository_url=str(target_outputs[REPOSITORY_OUTPUTS[image]]),
            tag=image_revision(source_ecr, location.reference),
            source_client=source_ecr,
            target_client=target_ecr,
        )
        for image, location in sorted(images.locations(source_outputs).items())
    )
    notes.append(
        f"images from {source} ({images.origin}), copied into {target}'s repositories: "
        + ", ".join(f"{k}={v}" for k, v in images.digests.items())
    )
    edit = accepted(
        set_entries(stack_file(target, root), {PINS_KEY: pins, DIGESTS_KEY: dict(images.digests)}),
        root,
    )
    return PinChange(
        edit=edit,
        action="promote",
        reason=reason,
        models=tuple(pins),
        records=tuple(records),
        notes=tuple(notes),
        images=transfers,
    )


def _outputs(read_outputs: Callable[[str], Mapping[str, Any]], stack: str) -> Mapping[str, Any]:
    try:
        found = read_outputs(stack)
    except PulumiCliMissingError as error:
        raise PulumiCliMissingError(
            f"promoting copies the images {stack}'s repositories hold, which its stack outputs "
            f"name ({SERVING_REPOSITORY_URL}, {TRAINING_REPOSITORY_URL}); reading them: {error}"
        ) from error
    if not all(found.get(name) for name in REPOSITORY_OUTPUTS.values()):
        raise RefusedError(f"{stack}'s stack outputs name no image repository; deploy it first")
    return found
