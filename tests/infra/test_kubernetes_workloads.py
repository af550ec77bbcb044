"""The program serving pinned model versions on the cluster: resolved through the registry
(moto), declared through the cluster's provider, and rolled by a pin change alone."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import pulumi
import pytest
from moto import mock_aws

from infra.components.image_sources import source_tag
from infra.offline.mocks import RecordedResource
from infra.offline.runner import ProgramRun
from infra.project import outputs
from infra.project.naming import WORKLOAD_NAMESPACE
from mlstack_common.registry import ModelRegistry
from tests.aws import SERVING_IMAGE, use_emulator_credentials

from .conftest import RunStack

REGION = "eu-west-1"  # the dev and staging stack files'


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """demo-dev and demo-staging: versions 1 and 2 Approved, 3 pending approval."""
    use_emulator_credentials(monkeypatch, REGION)
    with mock_aws():
        client = boto3.client("sagemaker", region_name=REGION)
        for environment in ("dev", "staging"):
            group = f"demo-{environment}"
            client.create_model_package_group(ModelPackageGroupName=group)
            for version, status in ((1, "Approved"), (2, "Approved"), (3, "PendingManualApproval")):
                ModelRegistry(group, client).register(
                    serving_image=SERVING_IMAGE,
                    model_data_url=f"s3://models/demo/v{version}/model.tar.gz",
                    evaluation_url=f"s3://models/demo/v{version}/runs/r/evaluation.json",
                    approval_status=status,
                    description="test",
                    metrics={"roc_auc": 0.9},
                    lineage={"model_sha256": str(version) * 64},
                    commit="abc",
                )
        yield


def kubernetes(run: ProgramRun) -> dict[str, RecordedResource]:
    """The workloads' objects: the `mlstack` namespace and what is in it."""
    return {
        f"{r.resource_type}/{r.inputs['metadata']['name']}": r
        for r in run.resources
        if r.resource_type.startswith("kubernetes:")
        and r.custom
        and "metadata" in r.inputs  # not a Helm release
        and WORKLOAD_NAMESPACE
        in (r.inputs["metadata"].get("namespace"), r.inputs["metadata"]["name"])
    }


def deployment(run: ProgramRun) -> Mapping[str, Any]:
    [found] = [
        r for key, r in kubernetes(run).items() if key.startswith("kubernetes:apps/v1:Deployment/")
    ]
    return found.inputs


def test_a_pinned_version_is_served_by_the_image_the_stack_built(
    registry: None, run_stack: RunStack
) -> None:
    run = run_stack("dev", servingModelVersions=["demo=2"])
    declared = kubernetes(run)
    assert sorted(declared) == [
        "kubernetes:apps/v1:Deployment/serving-demo",
        "kubernetes:autoscaling/v2:HorizontalPodAutoscaler/serving-demo",
        "kubernetes:batch/v1:CronJob/drift-demo",
        "kubernetes:batch/v1:CronJob/training-demo",
        "kubernetes:core/v1:Namespace/mlstack",
        "kubernetes:core/v1:Service/serving-demo",
        "kubernetes:core/v1:ServiceAccount/drift",
        "kubernetes:core/v1:ServiceAccount/scoring",
        "kubernetes:core/v1:ServiceAccount/serving",
        "kubernetes:core/v1:ServiceAccount/training",
        "kubernetes:networking.k8s.io/v1:NetworkPolicy/default-deny-ingress",
        "kubernetes:networking.k8s.io/v1:NetworkPolicy/serving-demo",
    ]  # dev runs one replica: no disruption budget; it checks drift daily
    [container] = deployment(run)["spec"]["template"]["spec"]["containers"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["MLSTACK_MODEL_URI"] == "s3://models/demo/v2/model.tar.gz"
    assert env["MLSTACK_MODEL_VERSION"] == "2"
    assert container["image"] == run.outputs[outputs.SERVING_IMAGE]
    assert "@sha256:" in container["image"]
    accounts = {
        name.rsplit("/", 1)[1]: r.inputs["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
        for name, r in declared.items()
        if "ServiceAccount" in name
    }
    roles = {r.name: r.props["arn"] for r in run.of_type("aws:iam/role:Role")}
    assert accounts == {
        "serving": run.outputs[outputs.SERVING_ROLE_ARN],
        "training": run.outputs[outputs.TRAINING_ROLE_ARN],
        "drift": roles["workloads-drift-role"],
        "scoring": roles["workloads-scoring-role"],
    }
    provider = next(r for r in run.resources if r.resource_type == "pulumi:providers:kubernetes")
    assert all(r.provider.startswith(f"{provider.urn}::") for r in declared.values())
    assert run.outputs[outputs.SERVED_MODEL_VERSIONS]["demo"].endswith("model-package/demo-dev/2")


def test_changing_only_the_pin_changes_only_the_deployments_pod_template(
    registry: None, run_stack: RunStack
) -> None:
    before = run_stack("staging", servingModelVersions=["demo=1"])
    after = run_stack("staging", servingModelVersions=["demo=2"])
    inputs_before = {r.urn: r.inputs for r in before.resources}
    everything_changed = [r for r in after.resources if inputs_before.get(r.urn) != r.inputs]

    # staging also serves on a SageMaker endpoint, whose Model and configuration follow the pin
    # (tests/infra/test_sagemaker_endpoint.py; its execution role reads every version, so it
    # does not), and so does the endpoint's drift job (the version whose baseline it compares
    # with); among the serving objects only the Deployment. Nothing of the platform changes:
    # a pin is the workloads layer's alone.
    def platform(run: ProgramRun) -> dict[str, RecordedResource]:
        return {r.urn: r for r in run.of_layer("platform").resources}

    assert platform(before) == platform(after)
    drift_job = [
        r for r in everything_changed if r.inputs.get("metadata", {}).get("name") == "drift-demo"
    ]
    changed = [
        r
        for r in everything_changed
        if r.resource_type.startswith("kubernetes:") and r not in drift_job
    ]
    assert [r.resource_type for r in changed] == ["kubernetes:apps/v1:Deployment"]
    assert sorted(
        r.resource_type for r in everything_changed if r not in changed and r not in drift_job
    ) == [
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
        "aws:sagemaker/model:Model",
    ]
    [job] = drift_job
    assert "demo-staging/2" in str(job.inputs["spec"]["jobTemplate"])
    [was] = [inputs_before[r.urn] for r in changed]
    now = changed[0].inputs
    assert now["spec"]["selector"] == was["spec"]["selector"]
    assert {k: v for k, v in now["spec"].items() if k != "template"} == {
        k: v for k, v in was["spec"].items() if k != "template"
    }
    assert {r.urn for r in after.resources} == set(inputs_before)  # nothing added or replaced
    budget = kubernetes(after)["kubernetes:policy/v1:PodDisruptionBudget/serving-demo"]
    assert budget.inputs["spec"]["minAvailable"] == 1  # staging: two replicas, one may go


@pytest.mark.parametrize(
    ("pin", "message"),
    [
        (
            "demo=9",
            "demo=9: model package group 'demo-dev' has no version 9; versions there: 1, 2, 3",
        ),
        ("demo=3", "demo=3: version 3 of model package group 'demo-dev' is PendingManualApproval"),
    ],
    ids=["missing", "not approved"],
)
def test_a_pin_the_registry_cannot_serve_stops_the_program(
    registry: None, run_stack: RunStack, pin: str, message: str
) -> None:
    with pytest.raises(pulumi.RunError) as stopped:
        run_stack("dev", servingModelVersions=[pin])
    assert message in str(stopped.value)


def test_serving_on_sagemaker_only_declares_nothing_to_serve_on_the_cluster(
    registry: None, run_stack: RunStack
) -> None:
    run = run_stack("dev", servingModelVersions=["demo=2"], servingTarget="sagemaker")
    declared = sorted(kubernetes(run))
    assert not [name for name in declared if "serving-demo" in name]
    assert "kubernetes:batch/v1:CronJob/training-demo" in declared  # training still runs there


def test_client_namespaces_from_the_stack_are_the_only_ones_admitted(
    registry: None, run_stack: RunStack
) -> None:
    run = run_stack("dev", servingModelVersions=["demo=1"], servingClientNamespaces=["apps"])
    policy = kubernetes(run)["kubernetes:networking.k8s.io/v1:NetworkPolicy/serving-demo"]
    [rule] = policy.inputs["spec"]["ingress"]
    assert rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}}
    ]


CERTIFICATE = "arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012"
RELEASE = "kubernetes:helm.sh/v3:Release"


def test_a_certificate_puts_each_model_behind_an_internal_https_load_balancer(
    registry: None, run_stack: RunStack
) -> None:
    plain = run_stack("dev", servingModelVersions=["demo=1"])
    assert "kubernetes:networking.k8s.io/v1:Ingress/serving-demo" not in kubernetes(plain)
    assert plain.of_type(RELEASE) == []

    run = run_stack(
        "dev", servingModelVersions=["demo=1"], servingIngressCertificateArn=CERTIFICATE
    )
    declared = kubernetes(run)
    ingress = declared["kubernetes:networking.k8s.io/v1:Ingress/serving-demo"].inputs
    annotations = ingress["metadata"]["annotations"]
    assert annotations["alb.ingress.kubernetes.io/certificate-arn"] == CERTIFICATE
    assert annotations["alb.ingress.kubernetes.io/scheme"] == "internal"
    # The load balancer forwards from the VPC's addresses, which the model's policy admits.
    policy = declared["kubernetes:networking.k8s.io/v1:NetworkPolicy/serving-demo"].inputs
    [rule] = policy["spec"]["ingress"]
    assert rule["from"] == [{"ipBlock": {"cidr": "10.40.0.0/16"}}]
    namespace = declared["kubernetes:core/v1:Namespace/mlstack"].inputs
    assert namespace["metadata"]["labels"]["elbv2.k8s.aws/pod-readiness-gate-inject"] == "enabled"
    # The controller that makes the load balancers, with an IAM role of its own.
    [release] = run.of_type(RELEASE)
    assert (release.inputs["chart"], release.inputs["version"]) == (
        "aws-load-balancer-controller",
        "1.17.1",
    )
    [role] = [
        r
        for r in run.of_type("aws:iam/role:Role")
        if r.inputs.get("tags", {}).get("mlstack:service-account")
        == "kube-system/aws-load-balancer-controller"
    ]
    values = release.inputs["values"]
    assert values["serviceAccount"]["annotations"] == {
        "eks.amazonaws.com/role-arn": role.props["arn"]
    }
    [vpc] = run.of_type("aws:ec2/vpc:Vpc")
    assert values["vpcId"] == vpc.physical_id
    # WAF and Shield off: the role is not granted them (test_cluster_addons.py).
    assert [values[key] for key in ("enableWaf", "enableWafv2", "enableShield")] == [False] * 3
    # The Ingress waits for the controller, whose webhook admits it.
    ingress_resource = declared["kubernetes:networking.k8s.io/v1:Ingress/serving-demo"]
    workloads = next(r for r in run.resources if r.urn == ingress_resource.parent_urn)
    assert release.urn in workloads.dependencies


TRUST_STORE = (
    "arn:aws:elasticloadbalancing:eu-west-1:123456789012:truststore/clients/0123456789abcdef"
)
ALB = "alb.ingress.kubernetes.io"


def test_an_internet_facing_model_admits_only_certified_clients_at_a_limited_rate(
    registry: None, run_stack: RunStack
) -> None:
    run = run_stack(
        "dev",
        servingModelVersions=["demo=1"],
        servingIngressCertificateArn=CERTIFICATE,
        servingIngressInternetFacing=True,
        servingIngressTrustStoreArn=TRUST_STORE,
        servingIngressRateLimit=2000,
    )
    ingress = kubernetes(run)["kubernetes:networking.k8s.io/v1:Ingress/serving-demo"].inputs
    annotations = ingress["metadata"]["annotations"]
    assert annotations[f"{ALB}/scheme"] == "internet-facing"
    # Mutual TLS: the listener completes no handshake without a certificate from the store.
    assert json.loads(annotations[f"{ALB}/mutual-authentication"]) == [
        {"port": 443, "mode": "verify", "trustStore": TRUST_STORE}
    ]
    # A WAF rule blocks any client address over 2000 requests in 5 minutes.
    [acl] = run.of_type("aws:wafv2/webAcl:WebAcl")
    assert annotations[f"{ALB}/wafv2-acl-arn"] == acl.props["arn"]
    assert acl.inputs["scope"] == "REGIONAL"
    [rule] = acl.inputs["rules"]
    assert rule["action"] == {"block": {}}
    assert rule["statement"]["rateBasedStatement"] == {
        "limit": 2000,
        "aggregateKeyType": "IP",
        "evaluationWindowSec": 300,
    }
    # The controller manages WAFv2 for it, with the permissions to.
    [release] = run.of_type(RELEASE)
    values = release.inputs["values"]
    assert (values["enableWafv2"], values["enableWaf"], values["enableShield"]) == (
        True,
        False,
        False,
    )
    [policy] = [
        p
        for p in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if "AssociateWebAclsWithItsLoadBalancers" in p.inputs["policy"]
    ]
    assert "load-balancer-controller" in policy.name


def test_an_internal_model_gets_no_web_acl_and_mutual_tls_stated_off(
    registry: None, run_stack: RunStack
) -> None:
    run = run_stack(
        "dev", servingModelVersions=["demo=1"], servingIngressCertificateArn=CERTIFICATE
    )
    ingress = kubernetes(run)["kubernetes:networking.k8s.io/v1:Ingress/serving-demo"].inputs
    annotations = ingress["metadata"]["annotations"]
    assert json.loads(annotations[f"{ALB}/mutual-authentication"]) == [{"port": 443, "mode": "off"}]
    assert f"{ALB}/wafv2-acl-arn" not in annotations
    assert run.of_type("aws:wafv2/webAcl:WebAcl") == []


def test_a_prebuilt_digest_is_deployed_instead_of_building_that_image(run_stack: RunStack) -> None:
    digest = "sha256:" + "ab" * 32
    run = run_stack("dev", imageDigests=[f"serving={digest}"])
    built = [r.name for r in run.of_type("docker-build:index:Image")]
    assert built == ["build-training"]
    assert run.outputs[outputs.SERVING_IMAGE].endswith(f"@{digest}")
    assert run.outputs[outputs.SERVING_IMAGE].startswith(
        run.outputs[outputs.SERVING_REPOSITORY_URL]
    )


def test_images_are_built_on_up_only_tagged_with_their_sources_and_cached_in_the_registry(
    run_stack: RunStack,
) -> None:
    run = run_stack("dev")
    [image] = [r for r in run.of_type("docker-build:index:Image") if r.name == "build-serving"]
    repository = run.outputs[outputs.SERVING_REPOSITORY_URL]
    assert image.inputs["tags"] == [f"{repository}:{source_tag('serving')}"]
    assert image.inputs["push"] is True
    assert image.inputs["buildOnPreview"] is False
    assert image.inputs["platforms"] == ["linux/amd64"]
    assert image.inputs["dockerfile"]["location"].endswith("serving/Dockerfile")
    assert image.inputs["cacheTo"][0]["registry"]["ref"] == f"{repository}:buildcache"
    assert run.outputs[outputs.SERVING_IMAGE] == f"{repository}@{image.props['digest']}"


def test_scheduled_training_runs_the_training_image_on_the_stacks_schedule(
    run_stack: RunStack,
) -> None:
    run = run_stack("dev", trainingMaxRuntimeMinutes=90, autoApproveModels=True)
    [job] = run.of_type("kubernetes:batch/v1:CronJob")
    spec = job.inputs["spec"]
    assert spec["schedule"] == "0 3 * * *"  # the dev stack file's
    assert spec["concurrencyPolicy"] == "Forbid"
    assert spec["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 90 * 60
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "training"
    [container] = pod["containers"]
    assert container["image"] == run.outputs[outputs.TRAINING_IMAGE]
    arguments = container["args"]
    value = dict(zip(arguments[::2], arguments[1::2], strict=False))
    assert value["--data"] == f"s3://{run.outputs[outputs.DATA_BUCKET]}/demo/"
    assert value["--models-uri"] == f"s3://{run.outputs[outputs.MODELS_BUCKET]}/models"
    assert value["--model-package-group"] == "demo-dev"
    assert value["--serving-image"] == run.outputs[outputs.SERVING_IMAGE]
    assert arguments[-1] == "--auto-approve"
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["MLSTACK_GIT_COMMIT"] == source_tag("training")


def test_without_a_schedule_training_is_on_demand_only(run_stack: RunStack) -> None:
    run = run_stack("dev", trainingSchedule="")
    assert run.of_type("kubernetes:batch/v1:CronJob") == []
    assert run.of_type("kubernetes:core/v1:ServiceAccount")  # its identity is still there


def test_serving_size_keys_reach_the_pods_and_the_autoscaler(
    registry: None, run_stack: RunStack
) -> None:
    run = run_stack(
        "dev",
        servingModelVersions=["demo=1"],
        servingCpuMillicores=3000,
        servingMemoryMib=3072,
        servingMinReplicas=2,
        servingMaxReplicas=5,
    )
    [container] = deployment(run)["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"] == {"cpu": "3000m", "memory": "3072Mi"}
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["MLSTACK_WORKERS"] == "3"
    [autoscaler] = run.of_type("kubernetes:autoscaling/v2:HorizontalPodAutoscaler")
    assert (autoscaler.inputs["spec"]["minReplicas"], autoscaler.inputs["spec"]["maxReplicas"]) == (
        2,
        5,
    )
    assert run.of_type("kubernetes:policy/v1:PodDisruptionBudget")  # two replicas: a budget
