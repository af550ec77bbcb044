"""What serves a model, as the stack leaves it, for the tests of `rollback` and `verify`: a
SageMaker endpoint in moto with the configurations the stack retains for it, and a Deployment
with its ReplicaSets as an API server holds them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from infra.documents.monitoring import rollback_alarm_names
from infra.manifests.serving import MODEL_PACKAGE_ANNOTATION, MODEL_VERSION_LABEL
from infra.operations.live_state import ENDPOINT_TAG, PACKAGE_TAG, ROLLED_BACK_TAG
from infra.operations.serving_history import POD_TEMPLATE_HASH, REVISION_ANNOTATION
from tests.infra.operating import REGION

ROLE = "arn:aws:iam::123456789012:role/endpoint-demo-execution"
IMAGE = f"123456789012.dkr.ecr.{REGION}.amazonaws.com/serving@sha256:{'5' * 64}"


@dataclass
class EndpointFleet:
    """One model's endpoint in moto: a Model and an EndpointConfiguration per version deployed,
    tagged as the stack tags them, and the endpoint on one of them."""

    sagemaker: Any
    endpoint: str
    model: str = "demo"
    configs: dict[int, str] = field(default_factory=dict)

    def configuration(self, version: int, *, rolled_back: bool = False, deploy: int = 1) -> str:
        """The Model and EndpointConfiguration the `deploy`th deploy of `version` creates
        (SageMaker's alarms rolled the update to it back when `rolled_back`)."""
        model_name = f"endpoint-{self.model}-model-{version:05x}{deploy:02x}"
        self.sagemaker.create_model(
            ModelName=model_name,
            ExecutionRoleArn=ROLE,
            PrimaryContainer={
                "Image": IMAGE,
                "ModelDataUrl": f"s3://models/{self.model}/{version}/model.tar.gz",
                "Environment": {"MLSTACK_MODEL_VERSION": str(version)},
            },
        )
        name = f"endpoint-{self.model}-config-{version:05x}{deploy:02x}"
        tags = [
            {"Key": ENDPOINT_TAG, "Value": self.endpoint},
            {"Key": PACKAGE_TAG, "Value": f"package-{version}"},
        ]
        if rolled_back:
            tags.append({"Key": ROLLED_BACK_TAG, "Value": datetime.now(UTC).isoformat()})
        self.sagemaker.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "primary",
                    "ModelName": model_name,
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": 2,
                }
            ],
            Tags=tags,
        )
        self.configs[version] = name
        return name

    def serve(self, version: int) -> None:
        """The endpoint on `version`'s configuration (created when there is no endpoint yet)."""
        try:
            self.sagemaker.describe_endpoint(EndpointName=self.endpoint)
        except self.sagemaker.exceptions.ClientError:
            self.sagemaker.create_endpoint(
                EndpointName=self.endpoint, EndpointConfigName=self.configs[version]
            )
        else:
            self.sagemaker.update_endpoint(
                EndpointName=self.endpoint, EndpointConfigName=self.configs[version]
            )

    def deployed(self, *versions: int, rolled_back: Iterable[int] = ()) -> None:
        """Deploys of `versions` in order: each one's configuration made and served, except
        those SageMaker's alarms rolled back (made, marked, and the one before still serving)."""
        refused = set(rolled_back)
        for version in versions:
            self.configuration(version, rolled_back=version in refused)
            if version not in refused:
                self.serve(version)

    def live_config(self) -> str:
        return str(
            self.sagemaker.describe_endpoint(EndpointName=self.endpoint)["EndpointConfigName"]
        )

    def tags(self, version: int) -> dict[str, str]:
        arn = self.sagemaker.describe_endpoint_config(EndpointConfigName=self.configs[version])[
            "EndpointConfigArn"
        ]
        return {t["Key"]: t["Value"] for t in self.sagemaker.list_tags(ResourceArn=arn)["Tags"]}


def rollback_alarms(cloudwatch: Any, endpoint: str) -> list[str]:
    """The endpoint's rollback alarms as the stack declares them, in OK."""
    names = list(rollback_alarm_names(endpoint))
    for name in names:
        cloudwatch.put_metric_alarm(
            AlarmName=name,
            Namespace="AWS/SageMaker",
            MetricName="Invocation5XXErrors",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=3,
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="quiet")
    return names


NAMESPACE = "mlstack"


def deployment_objects(
    name: str, versions: list[int], *, rolled_out: bool = True, replicas: int = 2
) -> dict[str, dict[str, Any]]:
    """A Deployment that has run `versions` in order (revision 1 is the first), at the last,
    with one ReplicaSet per revision, as the API server returns them."""

    def template(version: int, revision: int) -> dict[str, Any]:
        return {
            "metadata": {
                "labels": {
                    "app.kubernetes.io/name": name,
                    MODEL_VERSION_LABEL: str(version),
                    POD_TEMPLATE_HASH: f"hash{revision}",
                },
                "annotations": {MODEL_PACKAGE_ANNOTATION: f"package-{version}"},
            },
            "spec": {"containers": [{"name": "server", "image": IMAGE}]},
        }

    current = len(versions)
    deployment_template = template(versions[-1], current)
    deployment_template["metadata"]["labels"].pop(POD_TEMPLATE_HASH)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "generation": current,
            "resourceVersion": "7",
            "annotations": {REVISION_ANNOTATION: str(current)},
        },
        "spec": {"replicas": replicas, "template": deployment_template},
        "status": {
            "observedGeneration": current,
            "replicas": replicas,
            "updatedReplicas": replicas if rolled_out else 1,
            "readyReplicas": replicas,
        },
    }
    replica_sets = [
        {
            "metadata": {
                "name": f"{name}-hash{revision}",
                "annotations": {REVISION_ANNOTATION: str(revision)},
                "ownerReferences": [{"kind": "Deployment", "name": name}],
            },
            "spec": {"template": template(version, revision)},
            "status": {"readyReplicas": replicas if revision == current else 0},
        }
        for revision, version in enumerate(versions, start=1)
    ]
    return {
        f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}": deployment,
        f"/apis/apps/v1/namespaces/{NAMESPACE}/replicasets": {
            "kind": "ReplicaSetList",
            "items": replica_sets,
        },
    }
