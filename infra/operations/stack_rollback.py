"""Rolling a whole stack back to an earlier update: its code and its configuration as they were.

Pulumi has no rollback; its answer is "revert the commit and run `pulumi up`". This does that
without touching the checkout: it finds update K in the stack's history, takes the git commit
the update recorded (the Pulumi CLI records `git.head` and `git.dirty` for every update run from
a git checkout), checks that commit out in a temporary worktree, restores the configuration K
ran with where the commit's stack file differs from it, and previews or updates from there.

Secret values come from the commit's stack file: the history holds their plain text only when
read with --show-secrets, and re-encrypting them would make the worktree differ for nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.config.schema import ConfigKey, load_schema
from infra.config.stackfiles import merge_with_defaults, read_stack_file
from infra.operations.errors import RefusedError
from infra.operations.git import checkout, has_commit, require_clean
from infra.operations.pulumi_cli import StackEngine
from infra.operations.stack_edit import set_values
from infra.project.paths import PROJECT_FILE, stack_file

GIT_HEAD = "git.head"
GIT_DIRTY = "git.dirty"
UPDATE = "update"
SUCCEEDED = "succeeded"


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
) -> RollbackTarget:
    require_clean(root)
    target = find_update(engine.history(), version, stack, root)
    with checkout(root, target.commit) as worktree:
        path = stack_file(stack, worktree)
        schema = load_schema(worktree / PROJECT_FILE.name)
        # Compared with the defaults applied: a history that lists a default is not a change.
        in_file, _ = merge_with_defaults(read_stack_file(path), schema)
        typed = {key: _typed(key, value, schema) for key, value in target.config.items()}
        restored = {
            key: typed[key]
            for key, value in target.config.items()
            if key not in in_file or _differs(value, in_file[key], typed[key])
        }
        if restored:
            on_output(
                f"restoring the configuration update {version} ran with, which commit "
                f"{target.commit[:12]}'s {path.name} does not hold: {', '.join(sorted(restored))}\n"
            )
            set_values(path, restored).write()
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
