"""The platform components as the whole program declares them, and how environments differ."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest

from infra.config.eks_versions import ADDON_VERSIONS
from infra.offline.mocks import RecordedResource
from infra.offline.runner import ProgramRun, run_program
from infra.project import outputs
from mlstack_policy.rules import evaluate

from .conftest import CLUSTER_STACKS, STACKS, RunStack

NAT = "aws:ec2/natGateway:NatGateway"
SUBNET = "aws:ec2/subnet:Subnet"
CLUSTER = "aws:eks/cluster:Cluster"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
ADDON = "aws:eks/addon:Addon"
ROLE = "aws:iam/role:Role"


def only(run: ProgramRun, resource_type: str) -> RecordedResource:
    [resource] = run.of_type(resource_type)
    return resource


def private_subnets(run: ProgramRun) -> list[RecordedResource]:
    return sorted(
        (s for s in run.of_type(SUBNET) if "internal-elb" in json.dumps(s.inputs["tags"])),
        key=lambda s: s.name,
    )


def test_prod_has_one_nat_gateway_per_zone_and_dev_one_in_all(
    stack_runs: dict[str, ProgramRun],
) -> None:
    prod, dev = stack_runs["prod"], stack_runs["dev"]
    assert len(private_subnets(prod)) == 3
    nat_subnets = {n.inputs["subnetId"] for n in prod.of_type(NAT)}
    assert len(nat_subnets) == 3
    routes = [
        r
        for r in prod.of_type("aws:ec2/routeTable:RouteTable")
        if r.name.startswith("network-private")
    ]
    assert {r.inputs["routes"][0]["natGatewayId"] for r in routes} == {
        n.physical_id for n in prod.of_type(NAT)
    }
    assert len(dev.of_type(NAT)) == 1
    dev_routes = [
        r
        for r in dev.of_type("aws:ec2/routeTable:RouteTable")
        if r.name.startswith("network-private")
    ]
    assert len({r.inputs["routes"][0]["natGatewayId"] for r in dev_routes}) == 1


def test_without_nat_private_subnets_have_no_route_out_but_reach_aws_through_endpoints(
    run_stack: RunStack,
    stack_runs: dict[str, ProgramRun],
) -> None:
    # (No CI runner: it reaches GitHub through NAT, so the config refuses it without.)
    local = run_stack(
        "dev",
        natGateways="none",
        privateEndpoints=True,
        ciGithubRepository="",
        ciGithubConnectionArn="",
    )
    assert local.of_type(NAT) == []
    routes = [
        r
        for r in local.of_type("aws:ec2/routeTable:RouteTable")
        if r.name.startswith("network-private")
    ]
    assert all(r.inputs.get("routes", []) == [] for r in routes)
    interface = [
        e
        for e in local.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
        if e.inputs["vpcEndpointType"] == "Interface"
    ]
    services = {e.inputs["serviceName"].rsplit(".", 1)[-1] for e in interface}
    assert {"api", "dkr", "sts", "ec2", "logs"} <= services
    assert not any(
        e.inputs["vpcEndpointType"] == "Interface"
        for e in stack_runs["prod"].of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
    )


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_subnets_spread_across_distinct_zones_with_eks_tags(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    run = stack_runs[stack]
    private = private_subnets(run)
    zones = [s.inputs["availabilityZone"] for s in private]
    assert len(set(zones)) == len(zones)
    region = run.settings.values["aws:region"]
    # The region's own zones ("eu-west-1a"), never an opt-in Local Zone ("eu-west-1-loc-1a"),
    # although the account has one and its name sorts first.
    assert all(re.fullmatch(rf"{region}[a-z]", zone) for zone in zones), zones
    [(_, asked)] = [c for c in run.calls if c[0].endswith("getAvailabilityZones")]
    assert asked["filters"] == [{"name": "opt-in-status", "values": ["opt-in-not-required"]}]
    assert all(
        s.inputs["tags"][f"kubernetes.io/cluster/mlstack-{stack}"] == "shared" for s in private
    )
    public = [s for s in run.of_type(SUBNET) if s not in private]
    assert all(s.inputs["tags"]["kubernetes.io/role/elb"] == "1" for s in public)
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in public)


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_s3_gateway_endpoint_serves_the_private_route_tables(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    run = stack_runs[stack]
    [s3] = [
        e
        for e in run.of_type("aws:ec2/vpcEndpoint:VpcEndpoint")
        if e.inputs["vpcEndpointType"] == "Gateway"
    ]
    assert s3.inputs["serviceName"] == f"com.amazonaws.{run.settings.values['aws:region']}.s3"
    private_tables = {
        r.physical_id
        for r in run.of_type("aws:ec2/routeTable:RouteTable")
        if r.name.startswith("network-private")
    }
    assert set(s3.inputs["routeTableIds"]) == private_tables


def test_flow_logs_go_to_an_encrypted_log_group_with_the_stacks_retention(
    stack_runs: dict[str, ProgramRun],
) -> None:
    for stack, days in (("dev", 7), ("prod", 365)):
        run = stack_runs[stack]
        flow_log = only(run, "aws:ec2/flowLog:FlowLog")
        group = next(
            g
            for g in run.of_type("aws:cloudwatch/logGroup:LogGroup")
            if g.props["arn"] == flow_log.inputs["logDestination"]
        )
        assert group.inputs["retentionInDays"] == days
        assert group.inputs["kmsKeyId"] == run.outputs[outputs.KMS_KEY_ARN]
        assert flow_log.inputs["trafficType"] == "ALL"


def test_prod_api_is_private_and_dev_api_is_public_to_its_allow_list_only(
    stack_runs: dict[str, ProgramRun],
) -> None:
    prod = only(stack_runs["prod"], CLUSTER).inputs["vpcConfig"]
    assert prod["endpointPublicAccess"] is False
    assert prod["endpointPrivateAccess"] is True
    assert "publicAccessCidrs" not in prod
    dev = only(stack_runs["dev"], CLUSTER).inputs["vpcConfig"]
    assert dev["endpointPublicAccess"] is True
    assert dev["publicAccessCidrs"] == ["203.0.113.0/24"]


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_cluster_encrypts_secrets_logs_the_control_plane_and_uses_access_entries(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    run = stack_runs[stack]
    cluster = only(run, CLUSTER).inputs
    assert cluster["name"] == f"mlstack-{stack}"
    assert cluster["version"] == run.settings.values["mlstack:kubernetesVersion"]
    assert cluster["encryptionConfig"] == {
        "provider": {"keyArn": run.outputs[outputs.KMS_KEY_ARN]},
        "resources": ["secrets"],
    }
    assert {"api", "audit", "authenticator"} <= set(cluster["enabledClusterLogTypes"])
    assert cluster["accessConfig"]["authenticationMode"] == "API"
    assert set(cluster["vpcConfig"]["subnetIds"]) == {s.physical_id for s in private_subnets(run)}
    log_group = run.named("cluster-control-plane-logs").inputs
    assert log_group["name"] == f"/aws/eks/mlstack-{stack}/cluster"


def test_admin_principals_from_config_get_cluster_admin_access_entries(run_stack: RunStack) -> None:
    admins = ["arn:aws:iam::111122223333:role/platform", "arn:aws:iam::111122223333:role/oncall"]
    run = run_stack("prod", clusterAdminArns=admins)
    entries = [
        e for e in run.of_type("aws:eks/accessEntry:AccessEntry") if e.name.startswith("cluster-")
    ]
    associations = [
        a
        for a in run.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
        if a.name.startswith("cluster-")
    ]
    assert sorted(e.inputs["principalArn"] for e in entries) == sorted(admins)
    assert all(a.inputs["policyArn"].endswith("AmazonEKSClusterAdminPolicy") for a in associations)
    assert all(a.inputs["accessScope"] == {"type": "cluster"} for a in associations)


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_node_launch_templates_require_imdsv2_with_hop_limit_one_and_encrypted_disks(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    run = stack_runs[stack]
    for template in run.of_type(LAUNCH_TEMPLATE):
        metadata = template.inputs["metadataOptions"]
        assert metadata["httpTokens"] == "required"
        assert metadata["httpPutResponseHopLimit"] == 1
        [disk] = template.inputs["blockDeviceMappings"]
        assert disk["ebs"]["encrypted"] == "true"
        assert disk["ebs"]["kmsKeyId"] == run.outputs[outputs.KMS_KEY_ARN]
    for group in run.of_type(NODE_GROUP):
        template = next(
            t
            for t in run.of_type(LAUNCH_TEMPLATE)
            if t.props["id"] == group.inputs["launchTemplate"]["id"]
        )
        assert template.name == group.name


def test_dev_nodes_are_spot_and_prod_nodes_on_demand_at_their_sizes(
    stack_runs: dict[str, ProgramRun],
) -> None:
    dev, prod = (only(stack_runs[s], NODE_GROUP).inputs for s in ("dev", "prod"))
    assert dev["capacityType"] == "SPOT"
    assert dev["instanceTypes"] == ["m6i.large", "m5.large", "m7i.large"]
    assert dev["scalingConfig"] == {"minSize": 1, "desiredSize": 1, "maxSize": 3}
    assert prod["capacityType"] == "ON_DEMAND"
    assert prod["scalingConfig"] == {"minSize": 3, "desiredSize": 3, "maxSize": 9}
    assert len(prod["subnetIds"]) == 3


def _shape(run: ProgramRun) -> Counter[tuple[str, str, str]]:
    return Counter(
        (r.resource_type, r.name, json.dumps(r.inputs, sort_keys=True)) for r in run.resources
    )


def test_turning_on_the_gpu_group_adds_that_group_what_scales_it_from_zero_and_its_plugin(
    stack_runs: dict[str, ProgramRun], run_stack: RunStack
) -> None:
    before = stack_runs["prod"]
    after = run_stack("prod", gpuNodeGroup=True)
    added = _shape(after) - _shape(before)
    removed = _shape(before) - _shape(after)
    assert removed == Counter()
    template = "k8s.io/cluster-autoscaler/node-template"
    assert sorted((t, n) for t, n, _ in added) == [
        ("aws:autoscaling/tag:Tag", "cluster-gpu-label/k8s.amazonaws.com/accelerator"),
        ("aws:autoscaling/tag:Tag", "cluster-gpu-label/mlstack.io/accelerator"),
        ("aws:autoscaling/tag:Tag", "cluster-gpu-label/mlstack.io/node-group"),
        ("aws:autoscaling/tag:Tag", "cluster-gpu-taint/nvidia.com/gpu"),
        (LAUNCH_TEMPLATE, "cluster-gpu"),
        (NODE_GROUP, "cluster-gpu"),
        ("kubernetes:apps/v1:DaemonSet", "cluster-addons-daemonset-nvidia-device-plugin"),
    ]
    # The autoscaler knows the group's taint while it has no node, from its Auto Scaling group.
    [taint] = [t for t in after.of_type("aws:autoscaling/tag:Tag") if "taint" in t.name]
    assert taint.inputs["tag"] == {
        "key": f"{template}/taint/nvidia.com/gpu",
        "value": "true:NoSchedule",
        "propagateAtLaunch": False,
    }
    [gpu] = [g for g in after.of_type(NODE_GROUP) if g.name == "cluster-gpu"]
    assert gpu.inputs["amiType"] == "AL2023_x86_64_NVIDIA"
    assert gpu.inputs["taints"] == [
        {"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}
    ]
    assert gpu.inputs["scalingConfig"]["minSize"] == 0
    assert gpu.inputs["instanceTypes"] == ["g5.xlarge"]
    # Offline, GPU types are offered in zones a and b only: the group skips zone c's subnet.
    zones = {s.physical_id: s.inputs["availabilityZone"] for s in private_subnets(after)}
    assert sorted(zones[s] for s in gpu.inputs["subnetIds"]) == ["eu-west-1a", "eu-west-1b"]


def test_addons_are_pinned_to_the_clusters_kubernetes_version(
    stack_runs: dict[str, ProgramRun],
) -> None:
    run = stack_runs["prod"]
    pins = ADDON_VERSIONS[run.settings.values["mlstack:kubernetesVersion"]]
    assert {a.inputs["addonName"]: a.inputs["addonVersion"] for a in run.of_type(ADDON)} == dict(
        pins
    )


def test_the_metrics_the_serving_autoscalers_need_are_served_once_nodes_exist(
    stack_runs: dict[str, ProgramRun],
) -> None:
    run = stack_runs["prod"]
    [metrics] = [a for a in run.of_type(ADDON) if a.inputs["addonName"] == "metrics-server"]
    node_groups = {n.urn for n in run.of_type("aws:eks/nodeGroup:NodeGroup")}
    assert node_groups
    assert node_groups <= metrics.dependencies


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_container_insights_writes_to_a_log_group_the_stack_declared_first(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    run = stack_runs[stack]
    group = run.named("cluster-container-insights-logs")
    assert group.inputs["name"] == f"/aws/containerinsights/mlstack-{stack}/performance"
    assert group.inputs["kmsKeyId"] == run.outputs[outputs.KMS_KEY_ARN]
    assert group.inputs["retentionInDays"] == run.settings.values["mlstack:logRetentionDays"]
    # Its environment tag is the provider's (aws:defaultTags, required by the config).
    [insights] = [
        a for a in run.of_type(ADDON) if a.inputs["addonName"] == "amazon-cloudwatch-observability"
    ]
    assert group.urn in insights.dependencies
    assert not [v for v in evaluate(run.resources) if v.rule_id == "MLSTACK.LOGS.1"]


def test_cni_and_ebs_csi_use_their_own_irsa_roles_not_the_node_role(
    stack_runs: dict[str, ProgramRun],
) -> None:
    run = stack_runs["prod"]
    addons = {a.inputs["addonName"]: a for a in run.of_type(ADDON)}
    roles = {r.props["arn"]: r for r in run.of_type(ROLE)}
    for addon, service_account in (
        ("vpc-cni", "aws-node"),
        ("aws-ebs-csi-driver", "ebs-csi-controller-sa"),
    ):
        role = roles[addons[addon].inputs["serviceAccountRoleArn"]]
        assert (
            f"system:serviceaccount:kube-system:{service_account}"
            in role.inputs["assumeRolePolicy"]
        )
    node_role = run.named("cluster-nodes")
    attached = {
        a.inputs["policyArn"].rsplit("/", 1)[-1]
        for a in run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
        if a.inputs["role"] == node_role.props["name"]
    }
    assert attached == {"AmazonEKSWorkerNodePolicy", "AmazonEC2ContainerRegistryPullOnly"}


def test_workload_roles_trust_their_service_accounts_through_the_clusters_oidc_provider(
    stack_runs: dict[str, ProgramRun],
) -> None:
    run = stack_runs["prod"]
    oidc = run.named("cluster-oidc")
    assert oidc.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    for service_account, output in (
        ("training", outputs.TRAINING_ROLE_ARN),
        ("serving", outputs.SERVING_ROLE_ARN),
    ):
        role = next(r for r in run.of_type(ROLE) if r.props["arn"] == run.outputs[output])
        trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
        assert trust["Principal"] == {"Federated": oidc.props["arn"]}
        assert (
            f"system:serviceaccount:mlstack:{service_account}"
            in trust["Condition"]["StringEquals"].values()
        )


def test_training_registers_into_the_stacks_groups_which_name_it_as_writer(
    stack_runs: dict[str, ProgramRun],
) -> None:
    run = stack_runs["prod"]
    [group] = run.of_type("aws:sagemaker/modelPackageGroup:ModelPackageGroup")
    assert group.inputs["modelPackageGroupName"] == "demo-prod"
    assert run.outputs[outputs.MODEL_PACKAGE_GROUPS] == {"demo": "demo-prod"}
    training = json.loads(run.named("workloads-training-permissions").inputs["policy"])
    register = next(s for s in training["Statement"] if s["Sid"] == "RegisterModelVersions")
    assert group.props["arn"] in register["Resource"]
    policy = json.loads(
        only(run, "aws:sagemaker/modelPackageGroupPolicy:ModelPackageGroupPolicy").inputs[
            "resourcePolicy"
        ]
    )
    writers = next(s for s in policy["Statement"] if s["Sid"] == "WritersRegisterVersions")
    # The cluster's training and SageMaker training jobs (`mlstack train --on sagemaker`).
    assert writers["Principal"] == {
        "AWS": [
            run.outputs[outputs.TRAINING_ROLE_ARN],
            run.outputs[outputs.SAGEMAKER_TRAINING_ROLE_ARN],
        ]
    }
    readers = next(s for s in policy["Statement"] if s["Sid"] == "ReadersLookUpVersions")
    assert readers["Principal"] == {"AWS": ["arn:aws:iam::123456789012:root"]}


def test_model_package_groups_survive_stack_deletion_by_config_not_code(
    run_stack: RunStack,
) -> None:
    run = run_stack("dev", models=["churn", "fraud"])
    groups = run.of_type("aws:sagemaker/modelPackageGroup:ModelPackageGroup")
    assert sorted(g.inputs["modelPackageGroupName"] for g in groups) == ["churn-dev", "fraud-dev"]


@pytest.mark.parametrize("stack", STACKS)
def test_image_repositories_scan_keep_tags_immutable_encrypt_and_prune(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    run = stack_runs[stack]
    repositories = run.of_type("aws:ecr/repository:Repository")
    assert sorted(r.name for r in repositories) == ["images-serving", "images-training"]
    keep = run.settings.values["mlstack:imageRetentionCount"]
    for repository in repositories:
        # Every tag immutable but the build cache's, which each build rewrites.
        assert repository.inputs["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
        assert repository.inputs["imageTagMutabilityExclusionFilters"] == [
            {"filter": "buildcache", "filterType": "WILDCARD"}
        ]
        assert repository.inputs["imageScanningConfiguration"] == {"scanOnPush": True}
        assert repository.inputs["encryptionConfigurations"] == [
            {"encryptionType": "KMS", "kmsKey": run.outputs[outputs.KMS_KEY_ARN]}
        ]
        policy = next(
            p
            for p in run.of_type("aws:ecr/lifecyclePolicy:LifecyclePolicy")
            if p.inputs["repository"] == repository.props["name"]
        )
        assert json.loads(policy.inputs["policy"])["rules"][1]["selection"]["countNumber"] == keep


@pytest.mark.parametrize("stack", CLUSTER_STACKS)
def test_stack_outputs_point_at_the_declared_platform(
    stack_runs: dict[str, ProgramRun], stack: str
) -> None:
    run = stack_runs[stack]
    assert run.outputs[outputs.VPC_ID] == only(run, "aws:ec2/vpc:Vpc").physical_id
    assert sorted(run.outputs[outputs.PRIVATE_SUBNET_IDS]) == sorted(
        s.physical_id for s in private_subnets(run)
    )
    assert run.outputs[outputs.CLUSTER_NAME] == f"mlstack-{stack}"
    assert run.outputs[outputs.CLUSTER_ENDPOINT] == only(run, CLUSTER).props["endpoint"]
    assert outputs.KUBECONFIG in run.secret_outputs
    kubeconfig = json.loads(run.outputs[outputs.KUBECONFIG])
    assert kubeconfig["clusters"][0]["cluster"]["server"] == run.outputs[outputs.CLUSTER_ENDPOINT]
    urls = [
        run.outputs[outputs.TRAINING_REPOSITORY_URL],
        run.outputs[outputs.SERVING_REPOSITORY_URL],
    ]
    assert all(url.startswith("123456789012.dkr.ecr.") for url in urls)


def test_the_kubernetes_provider_uses_the_secret_kubeconfig(
    stack_runs: dict[str, ProgramRun],
) -> None:
    run = stack_runs["prod"]
    provider = only(run, "pulumi:providers:kubernetes")
    assert "kubeconfig" in provider.secret_inputs
    assert provider.inputs["kubeconfig"] == run.outputs[outputs.KUBECONFIG]


def test_prod_cluster_is_protected_from_deletion_and_dev_cluster_is_not(
    stack_runs: dict[str, ProgramRun],
) -> None:
    prod, dev = (only(stack_runs[s], CLUSTER) for s in ("prod", "dev"))
    assert prod.inputs["deletionProtection"] is True
    assert prod.protect
    assert dev.inputs["deletionProtection"] is False
    assert not dev.protect


def test_the_upgrade_policy_is_standard_unless_extended_support_is_chosen(
    run_stack: RunStack,
) -> None:
    # Without a policy EKS would default to EXTENDED and bill the extended rate silently.
    assert only(run_stack("prod"), CLUSTER).inputs["upgradePolicy"] == {"supportType": "STANDARD"}
    extended = run_stack("prod", clusterUpgradePolicy="EXTENDED")
    assert only(extended, CLUSTER).inputs["upgradePolicy"] == {"supportType": "EXTENDED"}


def test_every_arn_of_a_stack_in_a_china_region_is_in_the_aws_cn_partition() -> None:
    run = run_program(
        "prod",
        overrides={
            "aws:region": "cn-north-1",
            "mlstack:gpuNodeGroup": True,
            "mlstack:gpuInstanceType": "g4dn.xlarge",
            "mlstack:clusterAdminArns": ["arn:aws-cn:iam::111122223333:role/platform"],
            "mlstack:ciGithubConnectionArn": (
                "arn:aws-cn:codeconnections:cn-north-1:123456789012:connection/"
                "0f6a3c4e-5b1d-4e8f-9a2b-7c3d1e5f6a70"
            ),
        },
    )
    everything = json.dumps(
        [[r.inputs, dict(r.props)] for r in run.resources] + [run.outputs], default=str
    )
    partitions = Counter(re.findall(r"\barn:([a-z-]*):", everything))
    assert set(partitions) == {"aws-cn"}, partitions
    assert partitions["aws-cn"] > 50


def test_without_the_cluster_switch_nothing_hangs_on_a_cluster(run_stack: RunStack) -> None:
    run = run_stack("local")  # cluster: false; a stack setting the cluster's keys is refused
    types = {r.resource_type for r in run.resources}
    assert not [t for t in types if t.startswith(("aws:eks/", "pulumi:providers:kubernetes"))]
    assert "aws:ec2/launchTemplate:LaunchTemplate" not in types
    assert "aws:sagemaker/modelPackageGroupPolicy:ModelPackageGroupPolicy" not in types
    assert "mlstack:iam:WorkloadIdentities" not in types
    assert {"aws:kms/key:Key", "aws:s3/bucket:Bucket", "aws:ecr/repository:Repository"} <= types
    assert "aws:sagemaker/modelPackageGroup:ModelPackageGroup" in types
    assert outputs.CLUSTER_NAME not in run.outputs
    with_cluster = run_stack("local", cluster=True)
    assert len(with_cluster.of_type(CLUSTER)) == 1


def test_each_environment_has_an_encrypted_audit_log_kept_ten_years(
    stack_runs: dict[str, ProgramRun],
) -> None:
    """Where `mlstack promote` and `rollback` append their records; its name follows from the
    environment alone, so operators find it without the stack's outputs."""
    for stack in ("dev", "prod"):
        run = stack_runs[stack]
        [audit] = [
            g
            for g in run.of_type("aws:cloudwatch/logGroup:LogGroup")
            if g.inputs.get("name") == f"/mlstack/{stack}/audit"
        ]
        assert audit.inputs["retentionInDays"] == 3653
        assert audit.inputs["kmsKeyId"] == run.outputs[outputs.KMS_KEY_ARN]
