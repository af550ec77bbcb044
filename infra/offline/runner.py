"""Run an environment's programs — the platform, then the workloads — under the mock runtime and
collect what each declares.

The workloads program reads the platform stack's outputs through a stack reference; offline, the
reference is answered with the outputs the platform program just produced, as the backend would
answer it once the platform stack is deployed.
"""

from __future__ import annotations

import contextvars
import runpy
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from infra.config.stackfiles import StackSettings, load_stack_settings
from infra.offline.mocks import (
    Account,
    AwsAnswers,
    RecordedResource,
    RecordingMocks,
    RecordingMonitor,
    StackOutputs,
)
from infra.project.layers import LAYERS, PLATFORM, WORKLOADS, Layer, platform_stack

ORGANIZATION = "organization"
"""The organization offline runs are in: what `pulumi.get_organization()` answers on a
self-managed backend."""
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class ProgramRun:
    """Everything an offline run declared, with its stack outputs resolved: one layer's program,
    or (from `run_program`) every layer's, resources and outputs together, each layer's run in
    `layers`."""

    settings: StackSettings
    resources: tuple[RecordedResource, ...]
    outputs: Mapping[str, Any]
    secret_outputs: frozenset[str] = frozenset()
    preview: bool = False
    """Shaped like `pulumi preview` of a new stack: outputs of resources are unknown."""
    calls: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    """The data sources the program asked for, with their arguments."""
    layers: Mapping[str, ProgramRun] = field(default_factory=dict)
    """Each layer's own run, by layer name (empty for a single layer's run)."""
    layer: Layer | None = None
    """The layer this run is of (None for a run of several)."""

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

    def of_layer(self, name: str) -> ProgramRun:
        """One layer's run (`platform`, `workloads`)."""
        if self.layer is not None and self.layer.name == name:
            return self
        return self.layers[name]

    @property
    def runs(self) -> list[ProgramRun]:
        """Each layer's run, in the order they deploy."""
        return list(self.layers.values()) if self.layers else [self]


def run_program(
    stack: str | StackSettings,
    *,
    overrides: Mapping[str, Any] | None = None,
    preview: bool = False,
    account: Account | None = None,
    answers: AwsAnswers | None = None,
    layers: Sequence[Layer] = LAYERS,
) -> ProgramRun:
    """Run the environment's programs for `stack` as `pulumi up` would, one layer after the
    other, with no engine behind them.

    `overrides` replace config values by full key (`mlstack:gpuNodeGroup`), as
    `pulumi config set` would. With `preview`, each runs as `pulumi preview` of a new stack: ids
    and computed outputs are unknown (the workloads still read a deployed platform's outputs, as
    they must: a workloads stack is previewed against a platform that exists). `account` is what
    the account already holds (default: a fresh one); `answers` replaces the offline AWS
    altogether (a test may answer from an emulator). The programs' own errors (a bad config
    value stops them with `pulumi.RunError`) propagate unchanged.
    """
    settings = load_stack_settings(stack) if isinstance(stack, str) else stack
    if overrides:
        settings = StackSettings(
            stack=settings.stack,
            values={**settings.values, **overrides},
            secret_keys=settings.secret_keys,
        )
    if answers is None:
        region = str(settings.values.get("aws:region", DEFAULT_REGION))
        answers = AwsAnswers(region=region, account=account or Account())
    runs: dict[str, ProgramRun] = {}
    references: list[StackOutputs] = []
    for layer in layers:
        if layer is WORKLOADS and not references:
            references.append(_deployed_outputs(settings, answers, runs.get(PLATFORM.name)))
        # Each run gets fresh runtime state: the SDK keeps its settings, root stack and config
        # in context variables, so an empty context isolates runs within one process.
        runs[layer.name] = contextvars.Context().run(
            _run_isolated, layer, settings, preview, answers, references
        )
    return _combined(settings, runs, preview)


def _deployed_outputs(
    settings: StackSettings, answers: AwsAnswers, run: ProgramRun | None
) -> StackOutputs:
    """What a stack reference to the platform stack answers: its outputs once deployed (a
    preview's are unknown, and the stack a reference reads is a deployed one)."""
    if run is None or run.preview:
        run = contextvars.Context().run(_run_isolated, PLATFORM, settings, False, answers, [])
    return StackOutputs(
        name=platform_stack(ORGANIZATION, settings.stack),
        outputs=dict(run.outputs),
        secret_names=frozenset(run.secret_outputs),
    )


def _combined(settings: StackSettings, runs: Mapping[str, ProgramRun], preview: bool) -> ProgramRun:
    if len(runs) == 1:
        return next(iter(runs.values()))
    return ProgramRun(
        settings=settings,
        resources=tuple(r for run in runs.values() for r in run.resources),
        outputs={k: v for run in runs.values() for k, v in run.outputs.items()},
        secret_outputs=frozenset().union(*(run.secret_outputs for run in runs.values())),
        preview=preview,
        calls=tuple(c for run in runs.values() for c in run.calls),
        layers=dict(runs),
    )


def _run_isolated(
    layer: Layer,
    settings: StackSettings,
    preview: bool,
    answers: AwsAnswers,
    references: Sequence[StackOutputs],
) -> ProgramRun:
    mocks = RecordingMocks(answers, preview=preview, stack_references=references)
    pulumi.runtime.set_all_config(
        settings.as_runtime_config(), secret_keys=sorted(settings.secret_keys)
    )
    pulumi.runtime.set_mocks(
        mocks,
        project=layer.project,
        stack=settings.stack,
        preview=preview,
        monitor=RecordingMonitor(mocks),
        organization=ORGANIZATION,
    )
    calls_before = len(answers.calls)

    def program() -> None:
        runpy.run_path(str(layer.program), run_name="__main__")

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
        calls=tuple(answers.calls[calls_before:]),
        layer=layer,
    )
