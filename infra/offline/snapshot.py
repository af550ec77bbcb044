"""A stack's plan as committed, reviewable text files, one per layer: what a pull request changes
in each environment shows in the review itself, even for a fork with no cloud credentials.

The text is `mlstack plan`'s tree with what varies between checkouts and not between plans
replaced by named placeholders: the checkout's path, and the source revision each image is
tagged with (a hash of its build inputs) with the digest the offline run derives from it. Ids
and ARNs are already the offline placeholders, and secrets are masked."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from infra.offline.plan import render_tree
from infra.offline.runner import ProgramRun
from infra.project.paths import PROJECT_ROOT
from mlstack_policy.rules import Violation

SNAPSHOT_DIR = PROJECT_ROOT / "infra" / "snapshots"
IMAGE_TYPE = "docker-build:index:Image"
OUTPUTS = "stack outputs"
_HEADER = re.compile(r"^\s*(?P<type>[\w-]+:[\w/.-]*:[\w.-]+)  (?P<name>\S+)( \[protected\])?$")


def snapshot_file(stack: str, layer: str, directory: Path = SNAPSHOT_DIR) -> Path:
    """`infra/snapshots/<layer>/<stack>.txt`."""
    return directory / layer / f"{stack}.txt"


def _volatile(run: ProgramRun) -> list[tuple[str, str]]:
    """(text, placeholder) pairs, longest text first so a tag is replaced before its commit."""
    pairs: list[tuple[str, str]] = [(str(PROJECT_ROOT), "<project>")]
    for image in run.of_type(IMAGE_TYPE):
        which = image.name.removeprefix("build-")
        for tag in image.inputs.get("tags") or []:
            revision = str(tag).rpartition(":")[2]
            pairs.append((revision, f"<{which} source revision>"))
        digest = str(image.props.get("digest") or "")
        if digest:
            pairs.append((digest, f"sha256:<{which} image>"))
    return sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)


def render_snapshot(run: ProgramRun, violations: Iterable[Violation] = ()) -> str:
    text = render_tree(run, violations)
    for volatile, placeholder in _volatile(run):
        if volatile:
            text = text.replace(volatile, placeholder)
    return text + "\n"


def _blocks(text: str) -> dict[str, list[str]]:
    """Each resource's lines (its header and inputs) by `type name`; the outputs and the policy
    verdict as blocks of their own."""
    blocks: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            current = f"{header['type']}  {header['name']}"
        elif line == "outputs:":
            current = OUTPUTS
        elif line.startswith("policy:"):
            current = "policy"
        blocks.setdefault(current, []).append(line.strip())
    return blocks


@dataclass(frozen=True)
class SnapshotChanges:
    added: list[str]
    removed: list[str]
    changed: list[str]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def describe(self, limit: int = 12) -> str:
        def listed(names: list[str]) -> str:
            more = f" and {len(names) - limit} more" if len(names) > limit else ""
            return ", ".join(names[:limit]) + more

        parts = [
            f"{label}: " + listed(names)
            for label, names in (
                ("added", self.added),
                ("removed", self.removed),
                ("changed", self.changed),
            )
            if names
        ]
        return "; ".join(parts) or "no change"


def compare(committed: str, current: str) -> SnapshotChanges:
    """Which resources the current plan adds, removes or changes against the committed one."""
    before, after = _blocks(committed), _blocks(current)
    before.pop("", None)  # the summary line: it counts what the blocks list
    after.pop("", None)
    return SnapshotChanges(
        added=sorted(set(after) - set(before)),
        removed=sorted(set(before) - set(after)),
        changed=sorted(k for k in set(before) & set(after) if before[k] != after[k]),
    )
