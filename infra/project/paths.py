"""Every file path the programs and their tools use, anchored at the repository root.

Pulumi runs a program with the working directory set to wherever the user typed the command (or
its project's directory), so nothing here depends on the working directory. Where each layer's
project and program are: `infra.project.layers`.
"""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILE = PROJECT_ROOT / "Pulumi.yaml"


def stack_file(stack: str, root: Path = PROJECT_ROOT) -> Path:
    """The `Pulumi.<stack>.yaml` file that holds what differs for one environment."""
    return root / f"Pulumi.{stack}.yaml"


def known_stacks(root: Path = PROJECT_ROOT) -> list[str]:
    """Stack names that have a stack file, in a stable order."""
    prefix, suffix = "Pulumi.", ".yaml"
    return sorted(
        path.name[len(prefix) : -len(suffix)]
        for path in root.glob("Pulumi.*.yaml")
        if path.name != PROJECT_FILE.name
    )
