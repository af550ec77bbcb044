"""The steps that need the Pulumi CLI (stack outputs, update history, `up` and `preview`), through
the Automation API, which runs the CLI. Without the CLI they stop at once, saying what to install,
instead of failing somewhere inside the SDK."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from infra.operations.errors import PulumiCliMissingError
from infra.project.layers import LAYERS, WORKLOADS, Layer
from infra.project.paths import PROJECT_ROOT

INSTALL = (
    "install it (https://www.pulumi.com/docs/iac/download-install/: `curl -fsSL "
    "https://get.pulumi.com | sh`, or `brew install pulumi`), log in to the stack's backend "
    "(`pulumi login`), and run this again"
)


def require_cli(step: str) -> None:
    if shutil.which("pulumi") is None:
        raise PulumiCliMissingError(
            f"{step} needs the Pulumi CLI, and there is no `pulumi` on PATH: {INSTALL}"
        )


class StackEngine(Protocol):
    """One stack as the Automation API sees it; what a stack rollback needs of it."""

    def history(self) -> list[Any]:
        """The stack's updates, newest first (`pulumi stack history`), as UpdateSummary objects."""

    def run(
        self,
        work_dir: Path,
        *,
        preview: bool,
        message: str,
        on_output: Callable[[str], None],
    ) -> None:
        """`pulumi preview` or `pulumi up` of the layer's program and the stack file in the
        checkout at `work_dir`."""


class AutomationStack:
    """The real engine: the Pulumi CLI driven by the Automation API, for one layer's stack of an
    environment (its outputs: both layers')."""

    def __init__(self, stack: str, project_dir: Path, layer: Layer = WORKLOADS) -> None:
        require_cli(f"stack {stack!r}")
        self.stack = stack
        self.project_dir = project_dir
        self.layer = layer

    def layer_dir(self, root: Path, layer: Layer | None = None) -> Path:
        """Where `layer`'s Pulumi.yaml is in the checkout at `root`."""
        return root / (layer or self.layer).directory.relative_to(PROJECT_ROOT)

    def _select(self, work_dir: Path) -> Any:
        from pulumi import automation

        return automation.select_stack(stack_name=self.stack, work_dir=str(work_dir))

    def history(self) -> list[Any]:
        return list(self._select(self.layer_dir(self.project_dir)).history(show_secrets=True))

    def outputs(self) -> dict[str, Any]:
        """Every output of the environment: the platform stack's and the workloads stack's
        (their names never overlap; `infra.project.outputs`)."""
        found: dict[str, Any] = {}
        for layer in LAYERS:
            stack = self._select(self.layer_dir(self.project_dir, layer))
            found.update({key: item.value for key, item in stack.outputs().items()})
        return found

    def run(
        self,
        work_dir: Path,
        *,
        preview: bool,
        message: str,
        on_output: Callable[[str], None],
    ) -> None:
        stack = self._select(self.layer_dir(work_dir))
        if preview:
            stack.preview(message=message, on_output=on_output)
        else:
            stack.up(message=message, on_output=on_output)
