"""Rolling one model back in one environment to the version that last served.

Which version that is, each target says from its own history (`serving_history`): the endpoint
SageMaker rolled back runs it already; during a rollout the old fleet or ReplicaSet still
serves it; after a finished rollout it is the newest earlier configuration or revision that ran
another version. The pin goes back to it in the stack file (so the next `pulumi up` keeps it),
the registry records who and why on the version rolled back from, and the audit log gets the
whole change.

With `now`, traffic goes back at once on every target, without a deploy:
- a SageMaker endpoint in the middle of an update cannot be updated (UpdateEndpoint is refused
  while it is Updating), so its rollback alarms are set to ALARM: SageMaker rolls an update back
  when one trips during a baking period ("Auto-Rollback Configuration and Monitoring",
  docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html). CloudWatch
  keeps a state set by SetAlarmState only until the alarm's next evaluation, and AWS does not say
  how often SageMaker reads its alarms, so the runbook has `verify` confirm it and the command
  run again if the update is still going;
- an endpoint in service on the bad version is pointed at the retained configuration of the
  version before, all at once and with no rollback alarms (they may be firing because of the
  bad version), keeping its instance count (RetainAllVariantProperties);
- a Deployment gets the pod template of the revision that ran that version, as `kubectl
  rollout undo` does: the controller scales that revision's ReplicaSet back up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from infra.config.serving_targets import serving_targets
from infra.documents.monitoring import rollback_alarm_names
from infra.manifests.serving import serving_name
from infra.operations.errors import RefusedError, UnreachableError
from infra.operations.live_state import ROLLED_BACK_TAG
from infra.operations.promotion import (
    PinChange,
    RegistryRecord,
    accepted,
    stack_config,
)
from infra.operations.serving_history import (
    POD_TEMPLATE_HASH,
    DeploymentHistory,
    EndpointHistory,
    read_deployment_history,
    read_endpoint_history,
)
from infra.operations.stack_edit import PINS_KEY, set_entries
from infra.project import naming
from infra.project.paths import stack_file
from mlstack_common.registry import APPROVED, VersionSummary, describe_versions, list_versions
from serving.cluster_api import ClusterApi, ClusterApiError

ALL_AT_ONCE = {
    "BlueGreenUpdatePolicy": {
        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
        "TerminationWaitInSeconds": 0,
    }
}
"""An emergency update's deployment: every request to the old version as soon as its fleet is
up, no baking, and no AutoRollbackConfiguration, so alarms the bad version set off cannot stop
it (SageMaker API reference, UpdateEndpoint: DeploymentConfig)."""


@dataclass(frozen=True)
class TrafficMove:
    """What an emergency rollback does on one target."""

    target: str
    description: str
    run: Callable[[], None]


@dataclass(frozen=True)
class ModelRollback:
    model: str
    pinned: int
    version: int
    evidence: tuple[str, ...]
    """Why this version: what each target's history showed."""
    change: PinChange
    moves: tuple[TrafficMove, ...]


ClusterConnector = Callable[[], ClusterApi]


def _choose_model(pins: dict[str, int], stack: str, model: str | None) -> str:
    if not pins:
        raise RefusedError(f"{stack} pins no model version; there is nothing to roll back")
    if model is None:
        if len(pins) > 1:
            raise RefusedError(f"{stack} serves {', '.join(pins)}: name one with --model")
        [model] = pins
    if model not in pins:
        raise RefusedError(f"{stack} does not serve {model!r}; it serves: {', '.join(pins)}")
    return model


def _endpoint_choice(history: EndpointHistory, pinned: int) -> tuple[int | None, str]:
    live = history.live
    name = f"endpoint {history.endpoint}"
    if history.updating:
        pending = history.state.pending_config or "a new configuration"
        return live.model_version, (
            f"{name} is updating (to {pending}); its old fleet "
            f"still serves version {live.model_version} ({live.name})"
        )
    if live.model_version != pinned:
        return live.model_version, (
            f"{name} serves version {live.model_version} ({live.name}), not the pinned "
            f"{pinned}: SageMaker rolled the update back"
        )
    before = history.served_before(pinned)
    if before is None:
        return None, f"{name} retains no configuration that served another version"
    return before.model_version, (
        f"{name} serves the pinned version {pinned}; before it, version {before.model_version} "
        f"served ({before.name}, {before.created:%Y-%m-%d %H:%M})"
    )


def _deployment_choice(history: DeploymentHistory, pinned: int) -> tuple[int | None, str]:
    current = history.current
    name = f"deployment {history.namespace}/{history.name}"
    if current.model_version != pinned:
        return current.model_version, (
            f"{name} runs version {current.model_version} (revision {current.number}), not the "
            f"pinned {pinned}"
        )
    before = history.served_before(pinned)
    if before is None:
        return None, f"{name} keeps no revision that ran another version"
    state = "rolling out" if not history.rolled_out else "rolled out"
    return before.model_version, (
        f"{name} is {state} at version {pinned} (revision {current.number}); before it, "
        f"revision {before.number} ran version {before.model_version}"
    )


def _endpoint_move(
    sagemaker: Any, cloudwatch: Any, history: EndpointHistory, version: int, reason: str
) -> TrafficMove | None:
    endpoint = history.endpoint
    if history.updating:
        if history.live.model_version != version:
            raise RefusedError(
                f"endpoint {endpoint} is updating and its old fleet serves version "
                f"{history.live.model_version}, not {version}; wait for the update to end"
            )
        alarms = rollback_alarm_names(endpoint)

        def trip() -> None:
            for alarm in alarms:
                cloudwatch.set_alarm_state(
                    AlarmName=alarm,
                    StateValue="ALARM",
                    StateReason=f"emergency rollback: {reason}"[:1023],
                )

        return TrafficMove(
            f"endpoint {endpoint}",
            f"stop its update: set {', '.join(alarms)} to ALARM, so SageMaker rolls the update "
            f"back to the fleet serving version {version}",
            trip,
        )
    if history.live.model_version == version:
        return None
    target = history.with_version(version)
    if target is None:
        raise RefusedError(
            f"endpoint {endpoint} retains no configuration of version {version} (it keeps the "
            f"last few); roll back without --now and deploy with `pulumi up`"
        )
    bad = history.live

    def update() -> None:
        sagemaker.update_endpoint(
            EndpointName=endpoint,
            EndpointConfigName=target.name,
            RetainAllVariantProperties=True,
            DeploymentConfig=ALL_AT_ONCE,
        )
        arn = sagemaker.describe_endpoint_config(EndpointConfigName=bad.name)["EndpointConfigArn"]
        sagemaker.add_tags(
            ResourceArn=arn,
            Tags=[{"Key": ROLLED_BACK_TAG, "Value": datetime.now(UTC).isoformat("T", "seconds")}],
        )

    return TrafficMove(
        f"endpoint {endpoint}",
        f"point it at {target.name} (version {version}) all at once, keeping its instance "
        f"count, with no rollback alarms",
        update,
    )


def _deployment_move(
    api: ClusterApi, history: DeploymentHistory, version: int
) -> TrafficMove | None:
    if history.current.model_version == version:
        return None
    revision = history.with_version(version)
    if revision is None:
        raise RefusedError(
            f"deployment {history.namespace}/{history.name} keeps no revision of version "
            f"{version}; roll back without --now and deploy with `pulumi up`"
        )
    path = f"/apis/apps/v1/namespaces/{history.namespace}/deployments/{history.name}"

    def undo() -> None:
        template = {**revision.template}
        metadata = dict(template.get("metadata") or {})
        labels = dict(metadata.get("labels") or {})
        labels.pop(POD_TEMPLATE_HASH, None)
        template["metadata"] = {**metadata, "labels": labels}
        deployment = {**history.deployment, "spec": {**history.deployment["spec"]}}
        deployment["spec"]["template"] = template
        deployment.pop("status", None)
        try:
            status, answer = api.call("PUT", path, deployment)
        except ClusterApiError as error:
            raise UnreachableError(str(error)) from error
        if status != 200:
            raise UnreachableError(
                f"deployment {history.namespace}/{history.name} cannot be changed: {status} "
                f"{answer.get('message', '')}"
            )

    return TrafficMove(
        f"deployment {history.namespace}/{history.name}",
        f"give it revision {revision.number}'s pod template (version {version}), as `kubectl "
        "rollout undo` does",
        undo,
    )


def roll_back_model(
    root: Path,
    stack: str,
    *,
    model: str | None,
    to: int | None,
    client: Any,
    operator: str,
    reason: str,
    connect_cluster: ClusterConnector | None = None,
    cloudwatch: Any = None,
    now: bool = False,
) -> ModelRollback:
    """The rollback of `model` in `stack`, not yet applied: the version chosen from what the
    targets ran (or `to`), the stack file edit and registry record, and with `now` what moves
    traffic on each target. `connect_cluster` reaches the cluster when the model is served
    there."""
    config = stack_config(root, stack)
    pins = dict(config.serving.model_versions)
    model = _choose_model(pins, stack, model)
    pinned = pins[model]
    targets = serving_targets(config, pins)
    endpoint = targets.endpoints.get(model)
    endpoint_history = read_endpoint_history(client, endpoint, model) if endpoint else None
    deployment_history = None
    api: ClusterApi | None = None
    if targets.on_cluster and connect_cluster is not None:
        api = connect_cluster()
        deployment_history = read_deployment_history(
            api, naming.WORKLOAD_NAMESPACE, serving_name(model)
        )
    elif targets.on_cluster:
        raise UnreachableError(f"{stack} serves {model} on its cluster, which was not reached")
    choices = [
        *([_endpoint_choice(endpoint_history, pinned)] if endpoint_history else []),
        *([_deployment_choice(deployment_history, pinned)] if deployment_history else []),
    ]
    evidence = tuple(why for _, why in choices)
    group = naming.model_package_group(model, config.environment)
    versions = list_versions(client, group)
    if to is None:
        to = _agreed(choices, stack, model)
    target = _servable(versions, group, to, pinned)
    if target.version == pinned and not now:
        raise RefusedError(
            f"version {pinned} of {model} is what {stack} pins; "
            + ("; ".join(evidence) or "nothing to roll back")
        )
    rolled_back = next((v for v in versions if v.version == pinned), None)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    records = (
        (
            RegistryRecord(
                rolled_back,
                rolled_back.status,
                f"rolled back in {stack} to version {target.version} by {operator} at {when}: "
                f"{reason}",
            ),
        )
        if rolled_back is not None and target.version != pinned
        else ()
    )
    moves: list[TrafficMove] = []
    if now:
        if endpoint_history is not None:
            move = _endpoint_move(client, cloudwatch, endpoint_history, target.version, reason)
            moves += [move] if move else []
        if deployment_history is not None and api is not None:
            move = _deployment_move(api, deployment_history, target.version)
            moves += [move] if move else []
    edit = accepted(
        set_entries(stack_file(stack, root), {PINS_KEY: {model: str(target.version)}}), root
    )
    note = (
        f"{model}: {stack} goes from version {pinned} back to {target.version}"
        if target.version != pinned
        else f"{model}: {stack} keeps version {pinned}"
    )
    return ModelRollback(
        model=model,
        pinned=pinned,
        version=target.version,
        evidence=evidence,
        change=PinChange(
            edit=edit,
            action="emergency-rollback" if now else "rollback",
            reason=reason,
            models=(model,),
            records=records,
            notes=(note, *evidence, *(f"{m.target}: {m.description}" for m in moves)),
        ),
        moves=tuple(moves),
    )


def _agreed(choices: list[tuple[int | None, str]], stack: str, model: str) -> int:
    if not choices:
        raise RefusedError(
            f"{stack} runs {model} nowhere this command can read (no endpoint, no Deployment); "
            "name the version with --to N"
        )
    versions = {version for version, _ in choices}
    if None in versions or len(versions) > 1:
        raise RefusedError(
            "the targets do not name one version that last served: "
            + "; ".join(why for _, why in choices)
            + "; name it with --to N"
        )
    [version] = versions
    assert version is not None  # noqa: S101 (None was refused above)
    return version


def _servable(versions: list[VersionSummary], group: str, to: int, pinned: int) -> VersionSummary:
    found = next((v for v in versions if v.version == to), None)
    if found is None or found.status != APPROVED:
        why = f"it is {found.status or 'without a status'}" if found else "there is no such version"
        raise RefusedError(
            f"cannot roll back to version {to} of {group!r}: {why}; versions there: "
            + describe_versions(versions)
        )
    return found
