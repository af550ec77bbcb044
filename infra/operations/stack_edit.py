"""Changing one stack file's pins the way a person would in an editor: the comments, the key order
and the quoting of everything else stay exactly as they were, so the change reviews as the one or
two lines it is and `git log Pulumi.<env>.yaml` stays the deployment history."""

from __future__ import annotations

import difflib
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from infra.config.stackfiles import StackFileError

PINS_KEY = "mlstack:servingModelVersions"
DIGESTS_KEY = "mlstack:imageDigests"


@dataclass(frozen=True)
class StackFileEdit:
    """A stack file's text before and after a change; nothing is written until `write`."""

    path: Path
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def diff(self) -> str:
        """The change as `git diff` would show it."""
        name = self.path.name
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"a/{name}",
                tofile=f"b/{name}",
            )
        )

    def write(self) -> None:
        """The new text, whole or not at all: written beside the file, flushed to disk, then
        renamed over it (a rename within a directory is atomic), so a full disk or an
        interruption leaves the old file, never a truncated one."""
        partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        try:
            with partial.open("w", encoding="utf-8") as out:
                out.write(self.after)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, self.path)
        except OSError as error:
            partial.unlink(missing_ok=True)
            raise OSError(error.errno, error.strerror, str(self.path)) from error
        except BaseException:
            partial.unlink(missing_ok=True)
            raise


def _load(text: str, path: Path) -> tuple[YAML, Any]:
    """A round-trip loader and dumper in this project's layout (two-space mappings, lists
    indented under their key), refusing a file it could not write back unchanged: a change that
    re-indents the whole file would hide the one line that matters."""
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.indent(mapping=2, sequence=4, offset=2)
    document = yaml.load(text)
    unchanged = io.StringIO()
    yaml.dump(document, unchanged)
    if unchanged.getvalue() != text:
        raise StackFileError(
            f"{path.name}: its layout (indentation, line breaks) cannot be kept by an automatic "
            "edit; make the change by hand or reformat the file with two-space indentation"
        )
    return yaml, document


def _entries(value: Any, key: str, path: Path) -> dict[str, str]:
    """`<name>=<value>` entries of a list-valued key, by name, in their order."""
    if value is None:
        return {}
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise StackFileError(f"{path.name}: {key} must be a list of <name>=<value> strings")
    return dict(item.split("=", 1) for item in value if "=" in item)


def set_entries(path: Path, changes: Mapping[str, Mapping[str, str]]) -> StackFileEdit:
    """For each list-valued key of `changes`, each `name=value` set: an entry for the same name
    is replaced where it stands (its comment kept), a new one appended, other entries kept."""
    try:
        before = path.read_text(encoding="utf-8")
    except OSError as error:
        raise StackFileError(f"{path.name}: cannot be read ({error.strerror or error})") from error
    yaml, document = _load(before, path)
    if not isinstance(document, CommentedMap) or not isinstance(
        document.get("config"), CommentedMap
    ):
        raise StackFileError(f"{path.name}: expected a mapping with a 'config:' mapping inside")
    config: CommentedMap = document["config"]
    for key, entries in changes.items():
        current = config.get(key)
        existing = _entries(current, key, path)
        if isinstance(current, CommentedSeq):
            for index, item in enumerate(current):
                name = item.split("=", 1)[0]
                if name in entries:
                    current[index] = f"{name}={entries[name]}"
            current.extend(
                f"{name}={value}" for name, value in entries.items() if name not in existing
            )
        elif entries:
            config[key] = CommentedSeq(f"{name}={value}" for name, value in entries.items())
    out = io.StringIO()
    yaml.dump(document, out)
    return StackFileEdit(path=path, before=before, after=out.getvalue())


def set_values(path: Path, values: Mapping[str, Any]) -> StackFileEdit:
    """Each key of `values` set to its value (added at the end when absent), the rest kept."""
    before = path.read_text(encoding="utf-8")
    yaml, document = _load(before, path)
    config: CommentedMap = document["config"]
    for key, value in values.items():
        config[key] = value
    out = io.StringIO()
    yaml.dump(document, out)
    return StackFileEdit(path=path, before=before, after=out.getvalue())
