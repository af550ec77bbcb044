"""What a deploy of a SageMaker endpoint checks and tidies after the AWS provider is done with it,
as plain functions over boto3 clients (tested against moto).

The provider's update waits only for `InService` (terraform-provider-aws,
internal/service/sagemaker/endpoint.go, resourceEndpointUpdate: UpdateEndpoint, then
WaitUntilEndpointInService), and an endpoint is `InService` again after SageMaker rolled a
blue/green update back on an alarm — on the old configuration (SageMaker developer guide,
"Auto-Rollback Configuration and Monitoring": "SageMaker AI initiates a complete rollback to the
old endpoint"), or after an update that failed (hashicorp/terraform-provider-aws#39099). So a
deploy only knows it shipped once DescribeEndpoint names the configuration it asked for.

Every configuration and model the stack makes is retained (never deleted by Pulumi) and tagged
with the endpoint it was made for; `prune_retained` keeps the newest few, which is what SageMaker
falls back to and what an emergency rollback (`infra.operations.serving_history`) lists.

Changing the variant's instance type is refused by SageMaker while the variant is a registered
scalable target (SageMaker developer guide, "Update endpoints that use auto scaling": "Before you
update the endpoint, delete any scaling policies configured for it and deregister the variant as
a scalable target"; the provider does not order it: hashicorp/terraform-provider-aws#14337).
`scaling_blocks_instance_type` and `pause_scaling` do that step before the update."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from infra.operations.errors import OperationError, UnreachableError
from infra.operations.live_state import ENDPOINT_TAG, PACKAGE_TAG, ROLLED_BACK_TAG

KEEP_RETAINED = 3
"""How many of an endpoint's configurations (and their models) a deploy keeps: the newest three,
the serving one among them, so an emergency rollback has the two before it to go back to (one of
which may be a rollout SageMaker rolled back). Older ones are deleted after a deploy that
shipped; the one serving and one being deployed to never are."""
VERSION_VARIABLE = "MLSTACK_MODEL_VERSION"
"""The serving container's environment variable that names the model version it runs."""
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
SCALING_NAMESPACE = "sagemaker"

_AWS_ERRORS = (ClientError, BotoCoreError)


class RolloutRolledBackError(OperationError):
    """The endpoint serves another configuration than the deploy asked for: SageMaker rolled the
    update back (an alarm fired) or the update failed."""


class RolloutUnverifiedError(UnreachableError):
    """What the endpoint serves could not be read, so the deploy cannot say it shipped."""


class ScalingNotPausedError(UnreachableError):
    """The variant's scalable target could not be read or deregistered before an instance type
    change, which SageMaker would refuse while it is registered."""


def scalable_resource_id(endpoint: str, variant: str) -> str:
    """Application Auto Scaling's id of an endpoint variant."""
    return f"endpoint/{endpoint}/variant/{variant}"


def reason(error: BaseException) -> str:
    """An AWS failure in one line: the error code and AWS's message, or botocore's sentence."""
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        text = f"{details.get('Code', 'Error')}: {details.get('Message', '')}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def _is_missing(error: ClientError, what: str) -> bool:
    # SageMaker answers a Describe of something absent with a ValidationException that says
    # "Could not find <what> ..." (as `infra.operations.live_state.read_endpoint` reads it).
    return f"Could not find {what}" in reason(error)


# --- the check after an update ---------------------------------------------------------------


def check_rollout(
    client: Any,
    *,
    endpoint: str,
    expected_config: str,
    environment: str,
    now: datetime | None = None,
) -> None:
    """Return when the endpoint serves `expected_config`; otherwise mark that configuration as
    rolled back (`ROLLED_BACK_TAG`, so no rollback goes back to it) and raise
    `RolloutRolledBackError` naming what serves instead and what to do. A configuration that
    serves loses the mark an earlier, rolled-back attempt at it left."""
    try:
        described = client.describe_endpoint(EndpointName=endpoint)
    except _AWS_ERRORS as error:
        raise RolloutUnverifiedError(
            f"endpoint {endpoint}: whether it serves {expected_config} cannot be read "
            f"({reason(error)}); `mlstack verify {environment}` reads it again"
        ) from error
    serving = str(described.get("EndpointConfigName", ""))
    if serving == expected_config:
        _unmark(client, expected_config)
        return
    not_marked = _mark_rolled_back(client, expected_config, now or datetime.now(UTC))
    version, package = _served_version(client, serving)
    failure = " ".join(str(described.get("FailureReason", "")).split())
    raise RolloutRolledBackError(
        f"endpoint {endpoint} did not take {expected_config}: it serves {serving} "
        f"(model version {version or 'unknown'}, package {package or 'unknown'})"
        + (f"; SageMaker says: {failure}" if failure else "")
        + (
            f"; {expected_config} could not be marked {ROLLED_BACK_TAG} ({not_marked})"
            if not_marked
            else f"; {expected_config} is marked {ROLLED_BACK_TAG}"
        )
        + f"; `mlstack rollback {environment} --now --reason WHY` pins the version that serves, "
        "or fix the model and deploy again"
    )


def _config_arn(client: Any, name: str) -> str:
    return str(client.describe_endpoint_config(EndpointConfigName=name)["EndpointConfigArn"])


def _mark_rolled_back(client: Any, name: str, now: datetime) -> str:
    """Tag the configuration with the UTC time; why it could not be, or ""."""
    stamp = now.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    try:
        client.add_tags(
            ResourceArn=_config_arn(client, name), Tags=[{"Key": ROLLED_BACK_TAG, "Value": stamp}]
        )
    except _AWS_ERRORS as error:
        return reason(error)
    return ""


def _unmark(client: Any, name: str) -> None:
    """Best effort: a mark left on a configuration that serves only hides it from rollbacks."""
    try:
        arn = _config_arn(client, name)
        tags = client.list_tags(ResourceArn=arn).get("Tags", [])
        if any(tag["Key"] == ROLLED_BACK_TAG for tag in tags):
            client.delete_tags(ResourceArn=arn, TagKeys=[ROLLED_BACK_TAG])
    except _AWS_ERRORS:
        return


def _served_version(client: Any, config_name: str) -> tuple[str, str]:
    """The model version and package of a configuration's first variant; empty when unreadable
    (the error still says which configuration serves)."""
    try:
        config = client.describe_endpoint_config(EndpointConfigName=config_name)
        model = client.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    except (*_AWS_ERRORS, KeyError, IndexError):
        return "", ""
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    version = str((container.get("Environment") or {}).get(VERSION_VARIABLE, ""))
    try:
        tags = client.list_tags(ResourceArn=model["ModelArn"]).get("Tags", [])
    except (*_AWS_ERRORS, KeyError):
        tags = []
    package = next((str(t["Value"]) for t in tags if t["Key"] == PACKAGE_TAG), "")
    return version, package


# --- pruning what is retained ---------------------------------------------------------------


@dataclass(frozen=True)
class Pruned:
    """What a prune deleted, and what it left and why (a prune never fails a deploy)."""

    configurations: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()


def prune_retained(
    client: Any, *, endpoint: str, keep: int, live_config: str, name_contains: str
) -> Pruned:
    """Delete the endpoint's retained configurations beyond the newest `keep`, and their models
    when no kept configuration uses them.

    Candidates are listed by `name_contains` (the configurations' auto-generated names start
    with their logical name) and are the endpoint's only when tagged `ENDPOINT_TAG` with it;
    `live_config`, the configuration DescribeEndpoint names and the one an update in progress
    moves to (PendingDeploymentSummary) are never deleted, whatever their age."""
    if keep < 1:
        raise ValueError(f"keep = {keep}: allowed: 1 or more (the serving configuration)")
    try:
        described = client.describe_endpoint(EndpointName=endpoint)
        listed = _listed(client, name_contains)
    except _AWS_ERRORS as error:
        return Pruned(failures=(f"nothing pruned: {reason(error)}",))
    protected = {
        live_config,
        str(described.get("EndpointConfigName", "")),
        str((described.get("PendingDeploymentSummary") or {}).get("EndpointConfigName", "")),
    } - {""}
    failures: list[str] = []
    ours: list[str] = []
    for name, arn in listed:
        try:
            tags = client.list_tags(ResourceArn=arn).get("Tags", [])
        except _AWS_ERRORS as error:
            failures.append(f"{name} kept: its tags cannot be read ({reason(error)})")
            protected.add(name)
            continue
        if any(t["Key"] == ENDPOINT_TAG and t["Value"] == endpoint for t in tags):
            ours.append(name)
    kept = set(ours[:keep]) | protected
    doomed = [name for name in ours if name not in kept]
    if not doomed:
        return Pruned(failures=tuple(failures))
    in_use = _models_in_use(client, kept, failures)
    deleted: list[str] = []
    orphans: set[str] = set()
    for name in doomed:
        try:
            models = _models_of(client, name)
            client.delete_endpoint_config(EndpointConfigName=name)
        except _AWS_ERRORS as error:
            failures.append(f"{name} kept: {reason(error)}")
            continue
        deleted.append(name)
        orphans |= models
    models_deleted: list[str] = []
    for model in sorted(orphans - in_use) if in_use is not None else ():
        outcome = _delete_model(client, model, endpoint)
        if outcome is None:
            models_deleted.append(model)
        elif outcome:
            failures.append(outcome)
    return Pruned(tuple(deleted), tuple(models_deleted), tuple(failures))


def _models_in_use(client: Any, kept: set[str], failures: list[str]) -> set[str] | None:
    """The models the kept configurations run; None when one cannot be read (then no model is
    deleted: it might be in use)."""
    in_use: set[str] = set()
    for name in sorted(kept):
        try:
            in_use |= _models_of(client, name)
        except _AWS_ERRORS as error:
            if isinstance(error, ClientError) and _is_missing(error, "endpoint configuration"):
                continue
            failures.append(f"no model deleted: {name} cannot be read ({reason(error)})")
            return None
    return in_use


def _listed(client: Any, name_contains: str) -> list[tuple[str, str]]:
    """(name, ARN) of the configurations whose name contains `name_contains`, newest first."""
    found: list[tuple[datetime, str, str]] = []
    pages = client.get_paginator("list_endpoint_configs").paginate(
        NameContains=name_contains, SortBy="CreationTime", SortOrder="Descending"
    )
    for page in pages:
        for summary in page.get("EndpointConfigs", []):
            found.append(
                (
                    summary["CreationTime"],
                    str(summary["EndpointConfigName"]),
                    str(summary["EndpointConfigArn"]),
                )
            )
    return [(name, arn) for _, name, arn in sorted(found, key=lambda f: f[0], reverse=True)]


def _models_of(client: Any, config_name: str) -> set[str]:
    config = client.describe_endpoint_config(EndpointConfigName=config_name)
    return {str(v["ModelName"]) for v in config.get("ProductionVariants", []) if "ModelName" in v}


def _delete_model(client: Any, model: str, endpoint: str) -> str | None:
    """None when deleted; "" when there is nothing to delete (gone, or not the endpoint's);
    otherwise why it is kept."""
    try:
        arn = client.describe_model(ModelName=model)["ModelArn"]
        tags = client.list_tags(ResourceArn=arn).get("Tags", [])
        if not any(t["Key"] == ENDPOINT_TAG and t["Value"] == endpoint for t in tags):
            return ""
        client.delete_model(ModelName=model)
    except _AWS_ERRORS as error:
        if isinstance(error, ClientError) and _is_missing(error, "model"):
            return ""
        return f"model {model} kept: {reason(error)}"
    return None


# --- an instance type change ------------------------------------------------------------------


def scaling_blocks_instance_type(
    sagemaker: Any, autoscaling: Any, *, endpoint: str, variant: str, instance_type: str
) -> bool:
    """Whether updating the endpoint to `instance_type` would be refused: it exists, its
    variant runs another instance type, and the variant is a registered scalable target."""
    try:
        described = sagemaker.describe_endpoint(EndpointName=endpoint)
    except ClientError as error:
        if _is_missing(error, "endpoint"):
            return False
        raise ScalingNotPausedError(_cannot_pause(endpoint, variant, error)) from error
    except BotoCoreError as error:
        raise ScalingNotPausedError(_cannot_pause(endpoint, variant, error)) from error
    try:
        config = sagemaker.describe_endpoint_config(
            EndpointConfigName=described["EndpointConfigName"]
        )
        running = next(
            (
                str(v.get("InstanceType", ""))
                for v in config.get("ProductionVariants", [])
                if v.get("VariantName") == variant
            ),
            "",
        )
        if running in ("", instance_type):
            return False
        targets = autoscaling.describe_scalable_targets(
            ServiceNamespace=SCALING_NAMESPACE,
            ResourceIds=[scalable_resource_id(endpoint, variant)],
            ScalableDimension=SCALABLE_DIMENSION,
        ).get("ScalableTargets", [])
    except _AWS_ERRORS as error:
        raise ScalingNotPausedError(_cannot_pause(endpoint, variant, error)) from error
    return bool(targets)


def pause_scaling(autoscaling: Any, *, endpoint: str, variant: str) -> None:
    """Deregister the variant as a scalable target, which also deletes its scaling policies
    (Application Auto Scaling API reference, DeregisterScalableTarget); the stack registers
    them again after the update."""
    try:
        autoscaling.deregister_scalable_target(
            ServiceNamespace=SCALING_NAMESPACE,
            ResourceId=scalable_resource_id(endpoint, variant),
            ScalableDimension=SCALABLE_DIMENSION,
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ObjectNotFoundException":
            return
        raise ScalingNotPausedError(_cannot_pause(endpoint, variant, error)) from error
    except BotoCoreError as error:
        raise ScalingNotPausedError(_cannot_pause(endpoint, variant, error)) from error


def _cannot_pause(endpoint: str, variant: str, error: BaseException) -> str:
    resource_id = scalable_resource_id(endpoint, variant)
    return (
        f"endpoint {endpoint}: its autoscaling cannot be paused for the instance type change "
        f"({reason(error)}); deregister it (`aws application-autoscaling "
        f"deregister-scalable-target --service-namespace {SCALING_NAMESPACE} --resource-id "
        f"{resource_id} --scalable-dimension {SCALABLE_DIMENSION}`), then deploy again: the "
        "deploy registers it anew"
    )
