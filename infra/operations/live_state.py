"""What is running, read back from SageMaker and the cluster, in the terms the stack declares:
the model version, its model data and package, the image digest, and whether a rollout finished.

SageMaker is read through boto3, the cluster through `serving.cluster_api` — the same calls,
against AWS, an emulator, or an API server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.manifests.serving import MODEL_PACKAGE_ANNOTATION, MODEL_VERSION_LABEL
from infra.operations.errors import UnreachableError
from infra.project import naming
from serving.cluster_api import ClusterApi, ClusterApiError

PACKAGE_TAG = "mlstack:model-package"
"""The tag the stack puts on each endpoint's Model and EndpointConfiguration."""


def digest_of(image: str) -> str:
    """`sha256:…` of an image reference by digest; empty for a reference by tag."""
    return image.rpartition("@")[2] if "@sha256:" in image else ""


@dataclass(frozen=True)
class LiveEndpoint:
    name: str
    status: str
    failure_reason: str
    config_name: str
    model_name: str
    image: str
    model_data_url: str
    model_version: str
    package_arn: str


def read_endpoint(client: Any, name: str) -> LiveEndpoint | None:
    """The endpoint's current configuration and the model its primary variant runs; None when
    there is no such endpoint."""
    try:
        endpoint = client.describe_endpoint(EndpointName=name)
    except client.exceptions.ClientError as error:
        if "Could not find endpoint" in str(error):
            return None
        raise UnreachableError(f"endpoint {name} cannot be read: {error}") from error
    except Exception as error:
        raise UnreachableError(f"endpoint {name} cannot be read: {error}") from error
    try:
        config_name = endpoint["EndpointConfigName"]
        config = client.describe_endpoint_config(EndpointConfigName=config_name)
        variant = next(
            (
                v
                for v in config["ProductionVariants"]
                if v["VariantName"] == naming.ENDPOINT_VARIANT
            ),
            config["ProductionVariants"][0],
        )
        model = client.describe_model(ModelName=variant["ModelName"])
        tags = client.list_tags(ResourceArn=model["ModelArn"]).get("Tags", [])
    except Exception as error:
        raise UnreachableError(
            f"endpoint {name}'s configuration cannot be read: {error}"
        ) from error
    container = model.get("PrimaryContainer") or (model.get("Containers") or [{}])[0]
    return LiveEndpoint(
        name=name,
        status=endpoint.get("EndpointStatus", ""),
        failure_reason=endpoint.get("FailureReason", ""),
        config_name=config_name,
        model_name=variant["ModelName"],
        image=container.get("Image", ""),
        model_data_url=container.get("ModelDataUrl", ""),
        model_version=(container.get("Environment") or {}).get("MLSTACK_MODEL_VERSION", ""),
        package_arn=next((t["Value"] for t in tags if t["Key"] == PACKAGE_TAG), ""),
    )


@dataclass(frozen=True)
class LiveDeployment:
    name: str
    image: str
    model_version: str
    package_arn: str
    generation: int
    observed_generation: int
    replicas: int
    updated_replicas: int
    ready_replicas: int

    @property
    def rolled_out(self) -> bool:
        """The controller has seen the newest spec and every pod runs it."""
        return (
            self.observed_generation >= self.generation and self.updated_replicas == self.replicas
        )


def read_deployment(api: ClusterApi, namespace: str, name: str) -> LiveDeployment | None:
    """The Deployment's pod template and rollout status; None when there is no such Deployment."""
    path = f"/apis/apps/v1/namespaces/{namespace}/deployments/{name}"
    try:
        status, found = api.call("GET", path)
    except ClusterApiError as error:
        raise UnreachableError(str(error)) from error
    if status == 404:
        return None
    if status != 200:
        raise UnreachableError(
            f"Deployment {namespace}/{name} cannot be read: {status} {found.get('message', '')}"
        )
    template = found["spec"]["template"]
    containers = template["spec"]["containers"]
    rollout = found.get("status") or {}
    return LiveDeployment(
        name=name,
        image=containers[0].get("image", "") if containers else "",
        model_version=(template["metadata"].get("labels") or {}).get(MODEL_VERSION_LABEL, ""),
        package_arn=(template["metadata"].get("annotations") or {}).get(
            MODEL_PACKAGE_ANNOTATION, ""
        ),
        generation=int(found["metadata"].get("generation", 0)),
        observed_generation=int(rollout.get("observedGeneration", 0)),
        replicas=int(rollout.get("replicas", 0)),
        updated_replicas=int(rollout.get("updatedReplicas", 0)),
        ready_replicas=int(rollout.get("readyReplicas", 0)),
    )
