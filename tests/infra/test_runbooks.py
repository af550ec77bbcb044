"""The runbooks' commands exist as written: every `mlstack` command in them parses (arguments,
and the combinations each command checks), and every runbook they or the code point to is there."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from infra.cli.main import parse
from infra.project.paths import PROJECT_ROOT

RUNBOOKS = PROJECT_ROOT / "docs" / "runbooks"
REQUIRED = (
    "rollback-model.md",
    "rollback-stack.md",
    "endpoint-alarm.md",
    "drift-alarm.md",
    "new-environment.md",
    "teardown-environment.md",
    "rotate-key.md",
    "large-runs.md",
)
BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)


def mlstack_commands(path: Path) -> list[str]:
    commands = []
    for block in BLOCK.findall(path.read_text()):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words[:3] == ["uv", "run", "mlstack"]:
                commands.append(shlex.join(words[3:]))
            elif words[:1] == ["mlstack"]:
                commands.append(shlex.join(words[1:]))
    return commands


def test_every_runbook_is_there_and_listed() -> None:
    index = (RUNBOOKS / "README.md").read_text()
    for name in REQUIRED:
        assert (RUNBOOKS / name).is_file(), name
        assert f"]({name})" in index, name


@pytest.mark.parametrize("name", REQUIRED)
def test_each_mlstack_command_in_a_runbook_parses(name: str) -> None:
    commands = mlstack_commands(RUNBOOKS / name)
    for command in commands:
        try:
            parse(shlex.split(command))
        except SystemExit as error:
            pytest.fail(f"{name}: `mlstack {command}` does not parse (exit {error.code})")


def test_the_runbooks_use_the_commands_they_are_about() -> None:
    used = {
        command.split()[0] for name in REQUIRED for command in mlstack_commands(RUNBOOKS / name)
    }
    assert used == {
        "preflight", "plan", "promote", "rollback", "verify", "audit", "train", "score"
    }  # fmt: skip


def test_a_new_environment_starts_with_its_preflight() -> None:
    first = mlstack_commands(RUNBOOKS / "new-environment.md")[0]
    assert first.split()[:2] == ["preflight", "qa"]


def test_a_command_that_does_not_exist_would_be_caught() -> None:
    with pytest.raises(SystemExit):
        parse(["rollback", "prod", "--to-update", "3", "--model", "demo", "--reason", "x"])
    with pytest.raises(SystemExit):
        parse(["promote", "prod", "--versoin", "3"])


def test_every_runbook_linked_from_docs_or_code_exists() -> None:
    sources = [
        *RUNBOOKS.glob("*.md"),
        PROJECT_ROOT / "README.md",
        *(PROJECT_ROOT / "docs").glob("*.md"),
        *(PROJECT_ROOT / "infra").rglob("*.py"),
    ]
    for source in sources:
        text = source.read_text()
        for link in re.findall(r"runbooks/([a-z-]+\.md)", text) + re.findall(
            r"\]\(([a-z-]+\.md)\)", text if source.parent == RUNBOOKS else ""
        ):
            assert (RUNBOOKS / link).is_file(), f"{source}: {link}"
