"""Run `infra/__main__.py` for a stack under the mock runtime and collect what it declares."""

from __future__ import annotations

import contextvars
import runpy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.offline.mocks import (
    Account,
    AwsAnswers,
    RecordedResource,
    RecordingMocks,
    RecordingMonitor,
)
from infra.paths import PROGRAM_MAIN
from infra.stackfiles import StackSettings, load_stack_settings

PROJECT = "mlstack"
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class ProgramRun:
    """Everything one offline run of the program declared, with its stack outputs resolved."""

    settings: StackSettings
    resources: tuple[RecordedResource, ...]
    outputs: Mapping[str, Any]
    secret_outputs: frozenset[str] = frozenset()
    preview: bool = False
    """Shaped like `pulumi preview` of a new stack: outputs of resources are unknown."""
    calls: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    """The data sources the program asked for, with their arguments."""

    def of_type(self, resource_type: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.resource_type == resource_type]

    def named(self, name: str) -> RecordedResource:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise LookupError(
                f"{len(matches)} resources named {name!r} in stack {self.settings.stack}"
            )
        return matches[0]

    def children(self, parent: RecordedResource) -> list[RecordedResource]:
        return [r for r in self.resources if r.parent_urn == parent.urn]

    def descendants(self, parent: RecordedResource) -> Iterator[RecordedResource]:
        for child in self.children(parent):
            yield child
            yield from self.descendants(child)


def run_program(
    stack: str | StackSettings,
    *,
    overrides: Mapping[str, Any] | None = None,
    preview: bool = False,
    account: Account | None = None,
    answers: AwsAnswers | None = None,
) -> ProgramRun:
    """Run the program for `stack` as `pulumi up` would, with no engine behind it.

    `overrides` replace config values by full key (`mlstack:gpuNodeGroup`), as
    `pulumi config set` would. With `preview`, run as `pulumi preview` of a new stack: ids and
    computed outputs are unknown. `account` is what the account already holds (default: a fresh
    one); `answers` replaces the offline AWS altogether (a test may answer from an emulator).
    The program's own errors (a bad config value stops it with `pulumi.RunError`) propagate
    unchanged.
    """
    settings = load_stack_settings(stack) if isinstance(stack, str) else stack
    if overrides:
        settings = StackSettings(
            stack=settings.stack,
            values={**settings.values, **overrides},
            secret_keys=settings.secret_keys,
        )
    # Each run gets fresh runtime state: the SDK keeps its settings, root stack and config in
    # context variables, so an empty context isolates runs within one process.
    if answers is None:
        region = str(settings.values.get("aws:region", DEFAULT_REGION))
        answers = AwsAnswers(region=region, account=account or Account())
    return contextvars.Context().run(_run_isolated, settings, preview, answers)


def _run_isolated(settings: StackSettings, preview: bool, answers: AwsAnswers) -> ProgramRun:
    mocks = RecordingMocks(answers, preview=preview)
    pulumi.runtime.set_all_config(
        settings.as_runtime_config(), secret_keys=sorted(settings.secret_keys)
    )
    pulumi.runtime.set_mocks(
        mocks,
        project=PROJECT,
        stack=settings.stack,
        preview=preview,
        monitor=RecordingMonitor(mocks),
    )

    def program() -> None:
        runpy.run_path(str(PROGRAM_MAIN), run_name="__main__")

    _sync_await(run_pulumi_func(program))
    root = pulumi.runtime.get_root_resource()
    exported: dict[str, Any] = dict(getattr(root, "outputs", {}) or {})
    outputs, secrets = {}, set()
    for name, value in exported.items():
        output = pulumi.Output.from_input(value)
        outputs[name] = _sync_await(output.future())
        if _sync_await(output.is_secret()):
            secrets.add(name)
    return ProgramRun(
        settings=settings,
        resources=tuple(mocks.resources),
        outputs=outputs,
        secret_outputs=frozenset(secrets),
        preview=preview,
        calls=tuple(answers.calls),
    )
