"""Rolling a whole stack back to an earlier update: its code, its configuration and its images as
they were, with the model pins made since kept unless asked otherwise.

Pulumi has no rollback; its answer is "revert the commit and run `pulumi up`". This does that
without touching the checkout: it finds update K in the stack's history, takes the git commit
the update recorded (the Pulumi CLI records `git.head` and `git.dirty` for every update run from
a git checkout), checks that commit out in a temporary worktree, restores the configuration K
ran with where the commit's stack file differs from it, and previews or updates from there.

Three things differ from running K's commit as it stands:
- the images: the workloads layer deploys the images K ran, by digest (`mlstack:imageDigests`,
  which makes the program take them instead of building), read from K's configuration when it
  pinned them, else from the outputs K recorded (`trainingImage`, `servingImage`); a rebuild
  from the commit could differ (base images and packages move), and would take the time of a
  build at the worst moment;
- the model pins (`mlstack:servingModelVersions`) stay as the checkout's stack file has them: a
  model promoted or rolled back since K is a decision of its own (`restore_pins` takes K's);
- the CLI runs supervised (`infra.operations.pulumi_cli`): the worktree is removed only after
  the CLI that ran from it has ended, however the rollback ends.

Secret values come from the commit's stack file: the history holds their plain text only when
read with --show-secrets, and re-encrypting them would make the worktree differ for nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.config.schema import ConfigKey, load_schema
from infra.config.stackfiles import StackFileError, merge_with_defaults, read_stack_file
from infra.operations.errors import RefusedError
from infra.operations.git import checkout, has_commit, require_clean
from infra.operations.live_state import digest_of
from infra.operations.stack_edit import DIGESTS_KEY, PINS_KEY, set_values
from infra.project import naming
from infra.project.layers import WORKLOADS
from infra.project.outputs import SERVING_IMAGE, TRAINING_IMAGE
from infra.project.paths import PROJECT_FILE, stack_file

if TYPE_CHECKING:
    from infra.operations.pulumi_cli import StackEngine

GIT_HEAD = "git.head"
GIT_DIRTY = "git.dirty"
UPDATE = "update"
SUCCEEDED = "succeeded"
IMAGE_OUTPUTS = {"training": TRAINING_IMAGE, "serving": SERVING_IMAGE}
"""Each image the workloads build, and the stack output naming it by digest."""


@dataclass(frozen=True)
class RollbackTarget:
    version: int
    commit: str
    config: Mapping[str, str]
    """The update's plain (non-secret) configuration, as the history gives it: strings, JSON
    for lists, maps, numbers and flags."""
    message: str


def _typed(key: str, recorded: str, schema: Mapping[str, ConfigKey]) -> Any:
    """The value to write in a stack file: text for a key declared as a string (`"1.30"` stays
    `"1.30"`), else decoded (`3`, `true`, `["demo=2"]`), text when it is not JSON."""
    declared = {item.full_name: item for item in schema.values()}.get(key)
    if declared is not None and declared.type == "string":
        return recorded
    try:
        return json.loads(recorded)
    except ValueError:
        return recorded


def _differs(recorded: str, in_file: Any, typed: Any) -> bool:
    return recorded != in_file if isinstance(in_file, str) else typed != in_file


def _entries(value: Any) -> list[str]:
    """A list-valued key's `<name>=<value>` entries, from a file or a recorded JSON string."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    return [str(item) for item in value] if isinstance(value, list) else []


def _shown(entries: list[str]) -> str:
    return ", ".join(entries) or "none"


def find_update(history: list[Any], version: int, stack: str, root: Path) -> RollbackTarget:
    """Update `version` of the history, refused unless it can be reproduced from a commit here."""
    by_version = {summary.version: summary for summary in history}
    summary = by_version.get(version)
    if summary is None:
        recent = ", ".join(str(v) for v in sorted(by_version, reverse=True)[:10]) or "none"
        raise RefusedError(
            f"{stack} has no update {version}; its updates, newest first: {recent} "
            f"(`pulumi stack history --stack {stack}`)"
        )
    if summary.kind != UPDATE:
        raise RefusedError(
            f"entry {version} of {stack}'s history is a {summary.kind}, which deploys nothing; "
            "roll back to an update"
        )
    if summary.result != SUCCEEDED:
        raise RefusedError(
            f"update {version} of {stack} {summary.result}; roll back to an update that succeeded"
        )
    environment = summary.environment or {}
    commit = environment.get(GIT_HEAD, "")
    if not commit:
        raise RefusedError(
            f"update {version} of {stack} records no git commit ({GIT_HEAD}): it was not run from "
            "a git checkout, so its code cannot be found"
        )
    if str(environment.get(GIT_DIRTY, "false")).lower() == "true":
        raise RefusedError(
            f"update {version} of {stack} ran from commit {commit[:12]} with uncommitted changes "
            f"({GIT_DIRTY}); the code it ran is in no commit"
        )
    if not has_commit(root, commit):
        raise RefusedError(
            f"commit {commit} of update {version} is not in this repository; fetch it "
            f"(`git fetch origin {commit}`) and run this again"
        )
    plain = {
        key: str(item.value) for key, item in (summary.config or {}).items() if not item.secret
    }
    return RollbackTarget(version, commit, plain, summary.message or "")


def images_of(target: RollbackTarget, engine: StackEngine, stack: str) -> dict[str, str]:
    """The digest of each image update `target` ran: its `imageDigests` when it pinned them all,
    else the references its outputs recorded. Refused when it recorded none: a rollback would
    then build them from the commit instead of deploying what ran."""
    pinned = dict(
        entry.split("=", 1) for entry in _entries(target.config.get(DIGESTS_KEY)) if "=" in entry
    )
    if all(image in pinned for image in naming.IMAGES):
        return {image: pinned[image] for image in naming.IMAGES}
    try:
        outputs = engine.recorded_outputs(target.version)
    except RefusedError as error:
        raise RefusedError(
            f"update {target.version} of {stack} built its images, so their digests are in the "
            f"outputs it recorded ({', '.join(IMAGE_OUTPUTS.values())}), which cannot be read: "
            f"{error}"
        ) from error
    digests = {
        image: digest_of(str(outputs.get(name) or "")) for image, name in IMAGE_OUTPUTS.items()
    }
    missing = [IMAGE_OUTPUTS[image] for image, digest in digests.items() if not digest]
    if missing:
        raise RefusedError(
            f"update {target.version} of {stack} recorded no image by digest ({', '.join(missing)} "
            f"missing from its outputs), so a rollback to it would build the images from commit "
            f"{target.commit[:12]} instead of deploying what ran; roll back to an update that "
            "deployed images"
        )
    return digests


def _restored(
    target: RollbackTarget, in_file: Mapping[str, Any], schema: Mapping[str, ConfigKey]
) -> dict[str, Any]:
    """The values update `target` ran with that the commit's stack file does not hold; values
    equal to the file's or to the declared defaults are left as they are."""
    typed = {key: _typed(key, value, schema) for key, value in target.config.items()}
    return {
        key: typed[key]
        for key, value in target.config.items()
        if key not in in_file or _differs(value, in_file[key], typed[key])
    }


def _values(
    target: RollbackTarget,
    in_file: Mapping[str, Any],
    schema: Mapping[str, ConfigKey],
    *,
    pins_now: list[str],
    restore_pins: bool,
    images: Mapping[str, str],
    name: str,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """What to set in the commit's stack file `name` (`in_file`, defaults applied): the
    configuration update `target` ran with, the pins as `restore_pins` says, and the images by
    digest; `say` tells each."""
    version, commit = target.version, target.commit[:12]
    values = _restored(target, in_file, schema)
    file_pins = _entries(in_file.get(PINS_KEY))
    pins_then = _entries(values.pop(PINS_KEY)) if PINS_KEY in values else file_pins
    # The pins and (workloads) the images are told on lines of their own.
    restored = sorted(key for key in values if not (images and key == DIGESTS_KEY))
    if restored:
        say(
            f"restoring the configuration update {version} ran with, which commit {commit}'s "
            f"{name} does not hold: {', '.join(restored)}"
        )
    pins = pins_then if restore_pins else pins_now
    if pins != file_pins:
        values[PINS_KEY] = pins
    if pins_then != pins_now and restore_pins:
        say(
            f"deploying update {version}'s model pins ({_shown(pins_then)}), not the ones "
            f"{name} has now ({_shown(pins_now)})"
        )
    elif pins_then != pins_now:
        say(
            f"keeping the model pins {name} has now ({_shown(pins_now)}), not update "
            f"{version}'s ({_shown(pins_then)}); --restore-pins deploys update {version}'s"
        )
    if images:
        if DIGESTS_KEY not in {key.full_name for key in schema.values()}:
            raise RefusedError(
                f"commit {commit} of update {version} declares no {DIGESTS_KEY}: its code "
                "cannot deploy the images the update ran, and would build them again"
            )
        digests = [f"{image}={digest}" for image, digest in images.items()]
        if _entries(in_file.get(DIGESTS_KEY)) != digests:
            values[DIGESTS_KEY] = digests
        say(
            f"deploying the images update {version} ran, by digest ({DIGESTS_KEY}): "
            f"{_shown(digests)}"
        )
    return values


def roll_back_stack(
    root: Path,
    stack: str,
    version: int,
    *,
    engine: StackEngine,
    preview: bool,
    reason: str,
    operator: str,
    on_output: Callable[[str], None],
    restore_pins: bool = False,
) -> RollbackTarget:
    """Preview (`preview`) or deploy update `version` of the engine's layer again, as the module
    says; `on_output` gets what is restored and the CLI's output, a line at a time."""
    require_clean(root)
    target = find_update(engine.history(), version, stack, root)
    images = images_of(target, engine, stack) if engine.layer is WORKLOADS else {}
    pins_now = _entries(read_stack_file(stack_file(stack, root)).get(PINS_KEY))
    with checkout(root, target.commit) as worktree:
        path = stack_file(stack, worktree)
        schema = load_schema(worktree / PROJECT_FILE.name)
        # Compared with the defaults applied: a history that lists a default is not a change.
        in_file, _ = merge_with_defaults(read_stack_file(path), schema)
        values = _values(
            target,
            in_file,
            schema,
            pins_now=pins_now,
            restore_pins=restore_pins,
            images=images,
            name=path.name,
            say=lambda line: on_output(line + "\n"),
        )
        if values:
            try:
                set_values(path, values).write()
            except OSError as error:
                raise StackFileError(
                    f"{path.name}: cannot be written in the temporary checkout of commit "
                    f"{target.commit[:12]} ({error.strerror or error}); nothing was deployed"
                ) from error
        engine.run(
            worktree,
            preview=preview,
            message=f"rollback to update {version} ({target.commit[:12]}) by {operator}: {reason}",
            on_output=on_output,
        )
    if not preview:
        _check_recorded(engine, target, on_output)
    return target


def _check_recorded(
    engine: StackEngine, target: RollbackTarget, on_output: Callable[[str], None]
) -> None:
    """Say so when the rollback's own update did not record its commit: a later rollback to it
    would be refused. Pulumi CLIs that read git through go-git alone miss the metadata of some
    checkouts (pulumi/pulumi#23522, fixed by reading it with git itself)."""
    updates = [summary for summary in engine.history() if summary.version is not None]
    latest = max(updates, key=lambda summary: summary.version, default=None)
    recorded = (latest.environment or {}).get(GIT_HEAD, "") if latest is not None else ""
    if recorded != target.commit:
        on_output(
            f"warning: the rollback's update recorded commit {recorded or 'none'}, not "
            f"{target.commit}; `--to-update` cannot return to it later (upgrade the Pulumi CLI: "
            "pulumi/pulumi#23522)\n"
        )
