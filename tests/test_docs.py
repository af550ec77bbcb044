"""The documentation stays true to the repository: the configuration reference is what
`Pulumi.yaml` declares, every relative link in the README and docs/ leads to a file, and the
README stays a few screens long."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.cli.config_reference import REFERENCE_FILE, render
from infra.config.schema import load_schema
from infra.project.paths import PROJECT_FILE, PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
PAGES = (README, *sorted((PROJECT_ROOT / "docs").rglob("*.md")))
README_MAX_LINES = 250

FENCE = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"`[^`\n]*`")
INLINE_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s+\".*\")?\s*$", re.MULTILINE)
EXTERNAL = re.compile(r"^([a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)


def relative_links(text: str) -> list[str]:
    """The targets of the page's relative links, anchors dropped; code is not prose."""
    prose = INLINE_CODE.sub("", FENCE.sub("", text))
    targets = INLINE_LINK.findall(prose) + REFERENCE_LINK.findall(prose)
    paths = [target.split("#", 1)[0] for target in targets if not EXTERNAL.match(target)]
    return [path for path in paths if path]


def test_the_configuration_page_is_what_pulumi_yaml_declares() -> None:
    assert REFERENCE_FILE.read_text(encoding="utf-8") == render(PROJECT_FILE), (
        "docs/configuration.md differs from the keys Pulumi.yaml declares: run `make docs` "
        "and commit the result"
    )


def test_the_configuration_page_lists_every_key_once_in_declared_order() -> None:
    page = render(PROJECT_FILE)
    rows = re.findall(r"^\| `mlstack:(\w+)` \|", page, re.MULTILINE)
    assert rows == list(load_schema())


def test_a_key_renders_with_its_type_default_and_description(tmp_path: Path) -> None:
    project = tmp_path / "Pulumi.yaml"
    project.write_text(
        "name: x\nruntime: python\nconfig:\n"
        "  aws:region:\n    type: string\n"
        "  mlstack:environment:\n    type: string\n    description: Name; no '-'.\n"
        "  mlstack:kubernetesVersion:\n    type: string\n    default: '1.35'\n"
        "    description: As MAJOR.MINOR.\n"
        "  mlstack:models:\n    type: array\n    items:\n      type: string\n"
        "    default: [demo]\n    description: As <model>=<version> | `<kept>`.\n"
    )
    rows = [line for line in render(project).splitlines() if line.startswith("| `")]
    assert rows == [
        "| `mlstack:environment` | string | required | Name; no '-'. |",
        '| `mlstack:kubernetesVersion` | string | `"1.35"` | As MAJOR.MINOR. |',
        "| `mlstack:models` | array of string | `[demo]` | As &lt;model>=&lt;version> \\| "
        "`<kept>`. |",
    ]


def test_links_are_found_outside_code_with_anchors_dropped() -> None:
    text = (
        "See [a](a.md#part), [web](https://example.com), [top](#top), ![i](img/x.png).\n"
        "`[not](code.md)`\n```\n[not](fenced.md)\n```\n[ref]: ../b.md\n"
    )
    assert relative_links(text) == ["a.md", "img/x.png", "../b.md"]


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(PROJECT_ROOT)))
def test_every_relative_link_leads_to_a_file_that_exists(page: Path) -> None:
    broken = [
        link
        for link in relative_links(page.read_text(encoding="utf-8"))
        if not (page.parent / link).resolve().is_file()
    ]
    assert broken == [], f"{page.relative_to(PROJECT_ROOT)} links to missing files: {broken}"


def test_the_readme_fits_on_a_few_screens() -> None:
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines, more than {README_MAX_LINES}: move reference material "
        "into a page under docs/ and link it"
    )
