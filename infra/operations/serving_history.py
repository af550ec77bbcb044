"""Which version of a model last served, read from where each target keeps its own history:
a SageMaker endpoint's retained configurations (the stack keeps the last few, tagged with the
endpoint and the model package, and marks one SageMaker rolled back), and a Deployment's
ReplicaSets (one per template, numbered by the `deployment.kubernetes.io/revision` annotation,
as `kubectl rollout history` reads them).

The stack file's pin says what was asked for, not what served: after SageMaker rolled an update
back, the endpoint runs the version before the pin; while a rollout is in progress, the old
fleet or the old ReplicaSet still takes traffic. So a rollback asks the targets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from infra.manifests.serving import MODEL_PACKAGE_ANNOTATION, MODEL_VERSION_LABEL
from infra.operations.errors import RefusedError, UnreachableError
from infra.operations.live_state import (
    ENDPOINT_TAG,
    ROLLED_BACK_TAG,
    EndpointState,
    describe_endpoint,
    endpoint_state,
    read_configuration,
)
from serving.cluster_api import ClusterApi, ClusterApiError

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
"""The Deployment controller's number for each template it has run (kubectl rollout history)."""
POD_TEMPLATE_HASH = "pod-template-hash"
"""The label the controller adds to a ReplicaSet's template; `kubectl rollout undo` drops it."""
UPDATING = ("Updating", "SystemUpdating", "RollingBack", "UpdateRollbackFailed")
"""EndpointStatus values of an endpoint whose fleet is changing (SageMaker API reference,
DescribeEndpoint: EndpointStatus); UpdateEndpoint is refused in all of them."""


@dataclass(frozen=True)
class RetainedConfiguration:
    """One configuration the endpoint ran or was asked to run."""

    name: str
    created: datetime
    model_version: int | None
    rolled_back: bool
    """SageMaker rolled the update to it back (the stack's post-update check, or an emergency
    rollback, marked it): a rollback never goes back to it."""
    endpoint: str
    """The endpoint the stack made it for (its tag); empty for one the stack did not make."""


@dataclass(frozen=True)
class EndpointHistory:
    endpoint: str
    state: EndpointState
    live: RetainedConfiguration
    """The configuration DescribeEndpoint names: during an update, the one still serving."""
    earlier: tuple[RetainedConfiguration, ...]
    """Retained configurations older than the live one, newest first."""

    @property
    def updating(self) -> bool:
        return self.state.status in UPDATING

    def served_before(self, version: int) -> RetainedConfiguration | None:
        """The newest earlier configuration that served a version other than `version`."""
        return next(
            (
                c
                for c in self.earlier
                if not c.rolled_back and c.model_version not in (None, version)
            ),
            None,
        )

    def with_version(self, version: int) -> RetainedConfiguration | None:
        candidates = (self.live, *self.earlier)
        return next(
            (c for c in candidates if c.model_version == version and not c.rolled_back), None
        )


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _retained(client: Any, summary: Mapping[str, Any]) -> RetainedConfiguration | None:
    """A configuration as ListEndpointConfigs summarises it, read in full; None when its model
    is gone (it cannot serve again)."""
    listed = client.list_tags(ResourceArn=summary["EndpointConfigArn"]).get("Tags", [])
    tags = {t["Key"]: t["Value"] for t in listed}
    try:
        configuration = read_configuration(client, summary["EndpointConfigName"])
    except client.exceptions.ClientError:
        return None
    return RetainedConfiguration(
        name=summary["EndpointConfigName"],
        created=summary["CreationTime"],
        model_version=_number(configuration.model_version),
        rolled_back=ROLLED_BACK_TAG in tags,
        endpoint=tags.get(ENDPOINT_TAG, ""),
    )


def read_endpoint_history(client: Any, endpoint: str, model: str) -> EndpointHistory | None:
    """The endpoint's live configuration and those the stack retained for it (listed by
    `model` in their names, kept when tagged with `endpoint`); None when there is no such
    endpoint."""
    described = describe_endpoint(client, endpoint)
    if described is None:
        return None
    state = endpoint_state(described)
    try:
        pages = client.get_paginator("list_endpoint_configs").paginate(
            NameContains=model, SortBy="CreationTime", SortOrder="Descending"
        )
        listed = [summary for page in pages for summary in page["EndpointConfigs"]]
        live_summary = next(
            (c for c in listed if c["EndpointConfigName"] == state.config_name),
            None,
        ) or client.describe_endpoint_config(EndpointConfigName=state.config_name)
        live = _retained(client, live_summary)
        earlier = [
            config
            for summary in listed
            if summary["EndpointConfigName"] != state.config_name
            and summary["CreationTime"] <= live_summary["CreationTime"]
            for config in [_retained(client, summary)]
            if config is not None and config.endpoint == endpoint
        ]
    except Exception as error:
        raise UnreachableError(
            f"endpoint {endpoint}'s configurations cannot be read: {error}"
        ) from error
    if live is None:
        raise UnreachableError(
            f"endpoint {endpoint} runs configuration {state.config_name}, whose model is gone"
        )
    earlier.sort(key=lambda c: c.created, reverse=True)
    return EndpointHistory(endpoint=endpoint, state=state, live=live, earlier=tuple(earlier))


@dataclass(frozen=True)
class Revision:
    """One template a Deployment has run, as its ReplicaSet keeps it."""

    number: int
    replica_set: str
    model_version: int | None
    package_arn: str
    template: dict[str, Any]
    ready_replicas: int


@dataclass(frozen=True)
class DeploymentHistory:
    namespace: str
    name: str
    current: Revision
    earlier: tuple[Revision, ...]
    """Older revisions, newest first."""
    rolled_out: bool
    deployment: dict[str, Any]

    def served_before(self, version: int) -> Revision | None:
        """The newest earlier revision that ran a version other than `version`."""
        return next(
            (r for r in self.earlier if r.model_version not in (None, version)),
            None,
        )

    def with_version(self, version: int) -> Revision | None:
        return next((r for r in (self.current, *self.earlier) if r.model_version == version), None)


def _get(api: ClusterApi, path: str) -> tuple[int, dict[str, Any]]:
    try:
        return api.call("GET", path)
    except ClusterApiError as error:
        raise UnreachableError(str(error)) from error


def _revision(replica_set: dict[str, Any]) -> Revision:
    template = replica_set["spec"]["template"]
    metadata = template.get("metadata") or {}
    return Revision(
        number=int((replica_set["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, 0)),
        replica_set=replica_set["metadata"]["name"],
        model_version=_number((metadata.get("labels") or {}).get(MODEL_VERSION_LABEL, "")),
        package_arn=(metadata.get("annotations") or {}).get(MODEL_PACKAGE_ANNOTATION, ""),
        template=template,
        ready_replicas=int((replica_set.get("status") or {}).get("readyReplicas", 0)),
    )


def read_deployment_history(api: ClusterApi, namespace: str, name: str) -> DeploymentHistory | None:
    """The Deployment and the revisions its ReplicaSets keep; None when there is no such
    Deployment."""
    status, deployment = _get(api, f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
    if status == 404:
        return None
    if status != 200:
        raise UnreachableError(
            f"Deployment {namespace}/{name} cannot be read: {status} "
            f"{deployment.get('message', '')}"
        )
    status, listed = _get(api, f"/apis/apps/v1/namespaces/{namespace}/replicasets")
    if status != 200:
        raise UnreachableError(
            f"the ReplicaSets of {namespace}/{name} cannot be read: {status} "
            f"{listed.get('message', '')}"
        )
    owned = [
        _revision(item)
        for item in listed.get("items", [])
        if any(
            owner.get("kind") == "Deployment" and owner.get("name") == name
            for owner in item["metadata"].get("ownerReferences") or []
        )
    ]
    number = int((deployment["metadata"].get("annotations") or {}).get(REVISION_ANNOTATION, 0))
    current = next((r for r in owned if r.number == number), None)
    if current is None:
        raise RefusedError(
            f"Deployment {namespace}/{name} is at revision {number}, which no ReplicaSet of it "
            f"holds; `kubectl -n {namespace} rollout history deployment/{name}` shows what it has"
        )
    rollout = deployment.get("status") or {}
    generation = int(deployment["metadata"].get("generation", 0))
    return DeploymentHistory(
        namespace=namespace,
        name=name,
        current=current,
        earlier=tuple(
            sorted((r for r in owned if r.number < number), key=lambda r: r.number, reverse=True)
        ),
        rolled_out=int(rollout.get("observedGeneration", 0)) >= generation
        and int(rollout.get("updatedReplicas", 0)) == int(rollout.get("replicas", 0)),
        deployment=deployment,
    )
