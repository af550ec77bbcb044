"""The node autoscaler and the GPU device plugin: where their pods may run, what the autoscaler
may resize, and whether a pod that asks for a GPU has anywhere to go.

Scheduling is judged from the program's own objects (the node groups' labels and taints, the
device plugin's selector and tolerations) with the rules the Kubernetes scheduler applies to
them: node selectors, taints against tolerations, and extended resources only where the device
plugin runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from infra.config.eks_versions import CLUSTER_AUTOSCALER_IMAGES, SUPPORTED_KUBERNETES_VERSIONS
from infra.config.sections.cluster import TAINT_EFFECTS
from infra.documents.iam import cluster_autoscaler_policy, load_balancer_controller_policy
from infra.manifests import gpu_device_plugin, load_balancer_controller, node_autoscaler
from infra.offline.k8s_yaml import kubernetes_objects
from infra.offline.runner import ProgramRun
from mlstack_policy.rules import evaluate

NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
EKS_TO_KUBERNETES = {eks: kubernetes for kubernetes, eks in TAINT_EFFECTS.items()}

# A user's training pod for a GPU model, written as the docs tell them to.
GPU_POD: dict[str, Any] = {
    "tolerations": [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
    ],
    "containers": [
        {"name": "train", "resources": {"limits": {"nvidia.com/gpu": 1}}},
    ],
}


def node_groups(run: ProgramRun) -> dict[str, dict[str, Any]]:
    """Each group's node labels and taints (Kubernetes spelling), by its config name."""
    return {
        group.name.removeprefix("cluster-"): {
            "labels": dict(group.inputs.get("labels") or {}),
            "taints": [
                {**taint, "effect": EKS_TO_KUBERNETES[taint["effect"]]}
                for taint in group.inputs.get("taints") or []
            ],
        }
        for group in run.of_type(NODE_GROUP)
    }


def pod_spec(run: ProgramRun, kind: str, name: str) -> Mapping[str, Any]:
    [found] = [
        obj
        for obj in kubernetes_objects(run)
        if obj["kind"] == kind and obj["metadata"]["name"] == name
    ]
    spec: Mapping[str, Any] = found["spec"]
    if kind == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: Mapping[str, Any] = spec["template"]["spec"]
    return template


def tolerates(pod: Mapping[str, Any], taint: Mapping[str, str]) -> bool:
    for toleration in pod.get("tolerations") or []:
        if toleration.get("effect") not in (None, "", taint["effect"]):
            continue
        if toleration.get("operator") == "Exists" and toleration.get("key") in (None, taint["key"]):
            return True
        if toleration.get("key") == taint["key"] and toleration.get("value") == taint["value"]:
            return True
    return False


def fits(pod: Mapping[str, Any], group: Mapping[str, Any], offers_gpus: bool) -> bool:
    """Would the scheduler place `pod` on a node of `group`?"""
    if any(
        group["labels"].get(key) != value for key, value in (pod.get("nodeSelector") or {}).items()
    ):
        return False
    hard = [t for t in group["taints"] if t["effect"] in ("NoSchedule", "NoExecute")]
    if not all(tolerates(pod, taint) for taint in hard):
        return False
    wants_gpu = any(
        gpu_device_plugin.RESOURCE
        in {**resources.get("requests", {}), **resources.get("limits", {})}
        for resources in (c.get("resources") or {} for c in pod["containers"])
    )
    return offers_gpus or not wants_gpu


def placements(run: ProgramRun, pod: Mapping[str, Any]) -> list[str]:
    """The node groups `pod` could be scheduled onto."""
    groups = node_groups(run)
    plugin = pod_spec(run, "DaemonSet", gpu_device_plugin.NAME)
    return sorted(
        name for name, group in groups.items() if fits(pod, group, fits(plugin, group, False))
    )


@pytest.fixture(scope="module")
def staging(served_runs: dict[str, ProgramRun]) -> ProgramRun:
    """staging has the GPU group (scaling from zero) beside the general one."""
    return served_runs["staging"]


def test_a_gpu_pod_schedules_onto_the_gpu_group_and_only_there(staging: ProgramRun) -> None:
    assert sorted(node_groups(staging)) == ["general", "gpu"]
    assert placements(staging, GPU_POD) == ["gpu"]
    # Without the device plugin on the GPU nodes, no node would offer a GPU at all.
    plugin = pod_spec(staging, "DaemonSet", gpu_device_plugin.NAME)
    assert [name for name, g in node_groups(staging).items() if fits(plugin, g, False)] == ["gpu"]
    # And without the toleration, the GPU taint keeps the pod away everywhere.
    assert placements(staging, {**GPU_POD, "tolerations": []}) == []


def test_nothing_else_lands_on_gpu_nodes(staging: ProgramRun) -> None:
    for kind, name in (
        ("Deployment", "serving-demo"),
        ("CronJob", "training-demo"),
        ("Deployment", node_autoscaler.NAME),
    ):
        assert placements(staging, pod_spec(staging, kind, name)) == ["general"], name


def test_a_stack_without_a_gpu_group_runs_no_device_plugin(
    served_runs: dict[str, ProgramRun],
) -> None:
    objects = kubernetes_objects(served_runs["prod"])
    assert "gpu" not in node_groups(served_runs["prod"])
    assert not [obj for obj in objects if obj["kind"] == "DaemonSet"]
    assert [obj["metadata"]["name"] for obj in objects if obj["kind"] == "Deployment"].count(
        node_autoscaler.NAME
    ) == 1


def test_the_autoscaler_discovers_this_clusters_groups_with_its_own_role(
    staging: ProgramRun,
) -> None:
    [account] = [
        obj
        for obj in kubernetes_objects(staging)
        if obj["kind"] == "ServiceAccount" and obj["metadata"]["name"] == "cluster-autoscaler"
    ]
    [role] = [
        r
        for r in staging.of_type("aws:iam/role:Role")
        if r.inputs.get("tags", {}).get("mlstack:service-account")
        == "kube-system/cluster-autoscaler"
    ]
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": role.props["arn"]}
    pod = pod_spec(staging, "Deployment", node_autoscaler.NAME)
    [container] = pod["containers"]
    assert (
        "--node-group-auto-discovery=asg:tag=k8s.io/cluster-autoscaler/enabled,"
        "k8s.io/cluster-autoscaler/mlstack-staging" in container["command"]
    )
    assert container["image"] == CLUSTER_AUTOSCALER_IMAGES["1.35"]
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_the_autoscaler_resizes_only_its_own_clusters_node_groups() -> None:
    policy = cluster_autoscaler_policy(
        partition="aws", region="eu-west-1", account_id="123456789012", cluster_name="mlstack-dev"
    )
    statements = {s["Sid"]: s for s in policy["Statement"]}
    resize = statements["ResizeOwnNodeGroups"]
    assert resize["Resource"] == [
        "arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:*:autoScalingGroupName/eks-*"
    ]
    assert resize["Condition"]["StringEquals"] == {
        "aws:ResourceTag/k8s.io/cluster-autoscaler/mlstack-dev": "owned",
        "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true",
    }
    assert statements["DescribeOwnNodeGroups"]["Resource"] == [
        "arn:aws:eks:eu-west-1:123456789012:nodegroup/mlstack-dev/*"
    ]
    # Everything on "*" only reads.
    for statement in policy["Statement"]:
        if statement["Resource"] == ["*"]:
            assert all(":Describe" in a or ":Get" in a for a in statement["Action"])


def test_every_supported_version_has_an_autoscaler_of_its_own_minor() -> None:
    assert set(CLUSTER_AUTOSCALER_IMAGES) == set(SUPPORTED_KUBERNETES_VERSIONS)
    for version, image in CLUSTER_AUTOSCALER_IMAGES.items():
        assert f":v{version}." in image


def test_a_version_whose_autoscaler_has_no_digest_fails_policy_naming_it(
    run_stack: Any,
) -> None:
    undigested = [v for v, image in CLUSTER_AUTOSCALER_IMAGES.items() if "@sha256:" not in image]
    if not undigested:
        pytest.skip("every autoscaler image is pinned by digest")
    run = run_stack("dev", kubernetesVersion=undigested[0])
    violations = [v for v in evaluate(run.resources) if v.rule_id == "MLSTACK.K8S.3"]
    assert [v.resource_name for v in violations] == ["cluster-addons-deployment-cluster-autoscaler"]
    assert CLUSTER_AUTOSCALER_IMAGES[undigested[0]] in violations[0].message


def test_the_load_balancer_controller_changes_only_what_it_created_in_the_stacks_vpc() -> None:
    policy = load_balancer_controller_policy(
        partition="aws", region="eu-west-1", account_id="123456789012", vpc_id="vpc-0abc"
    )
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert (
        "arn:aws:ec2:eu-west-1:123456789012:vpc/vpc-0abc"
        in (statements["CreateSecurityGroupsInTheStacksVpc"]["Resource"])
    )
    tag = "elbv2.k8s.aws/cluster"
    create = statements["CreateTaggedLoadBalancers"]
    assert create["Condition"] == {"Null": {f"aws:RequestTag/{tag}": "false"}}
    for sid in ("ManageOwnLoadBalancers", "ManageOwnSecurityGroups"):
        assert statements[sid]["Condition"] == {"Null": {f"aws:ResourceTag/{tag}": "false"}}
    for statement in policy["Statement"]:
        actions = statement["Action"]
        if statement["Resource"] == ["*"]:
            assert all(":Describe" in a or ":List" in a for a in actions), statement["Sid"]
        else:
            assert all(
                ":eu-west-1:123456789012:" in r or r.startswith("arn:aws:iam::123456789012:")
                for r in statement["Resource"]
            ), statement["Sid"]
    # No Network Load Balancers, WAF, Shield or Cognito: nothing here asks for them.
    every_action = {a for s in policy["Statement"] for a in s["Action"]}
    assert not {a for a in every_action if a.split(":")[0] in ("wafv2", "shield", "cognito-idp")}


# Every action of the controller's published policy at the pinned version
# (kubernetes-sigs/aws-load-balancer-controller v2.17.1, docs/install/iam_policy.json), to hold
# this stack's narrower policy against it action by action.
UPSTREAM_POLICY_ACTIONS = frozenset(
    {
        *(f"acm:{a}" for a in ("DescribeCertificate", "ListCertificates")),
        "cognito-idp:DescribeUserPoolClient",
        *(
            f"ec2:{a}"
            for a in (
                "AuthorizeSecurityGroupIngress",
                "CreateSecurityGroup",
                "CreateTags",
                "DeleteSecurityGroup",
                "DeleteTags",
                "DescribeAccountAttributes",
                "DescribeAddresses",
                "DescribeAvailabilityZones",
                "DescribeCoipPools",
                "DescribeInstances",
                "DescribeInternetGateways",
                "DescribeIpamPools",
                "DescribeNetworkInterfaces",
                "DescribeRouteTables",
                "DescribeSecurityGroups",
                "DescribeSubnets",
                "DescribeTags",
                "DescribeVpcPeeringConnections",
                "DescribeVpcs",
                "GetCoipPoolUsage",
                "GetSecurityGroupsForVpc",
                "RevokeSecurityGroupIngress",
            )
        ),
        *(
            f"elasticloadbalancing:{a}"
            for a in (
                "AddListenerCertificates",
                "AddTags",
                "CreateListener",
                "CreateLoadBalancer",
                "CreateRule",
                "CreateTargetGroup",
                "DeleteListener",
                "DeleteLoadBalancer",
                "DeleteRule",
                "DeleteTargetGroup",
                "DeregisterTargets",
                "DescribeCapacityReservation",
                "DescribeListenerAttributes",
                "DescribeListenerCertificates",
                "DescribeListeners",
                "DescribeLoadBalancerAttributes",
                "DescribeLoadBalancers",
                "DescribeRules",
                "DescribeSSLPolicies",
                "DescribeTags",
                "DescribeTargetGroupAttributes",
                "DescribeTargetGroups",
                "DescribeTargetHealth",
                "DescribeTrustStores",
                "ModifyCapacityReservation",
                "ModifyIpPools",
                "ModifyListener",
                "ModifyListenerAttributes",
                "ModifyLoadBalancerAttributes",
                "ModifyRule",
                "ModifyTargetGroup",
                "ModifyTargetGroupAttributes",
                "RegisterTargets",
                "RemoveListenerCertificates",
                "RemoveTags",
                "SetIpAddressType",
                "SetRulePriorities",
                "SetSecurityGroups",
                "SetSubnets",
                "SetWebAcl",
            )
        ),
        *(f"iam:{a}" for a in ("CreateServiceLinkedRole", "GetServerCertificate")),
        "iam:ListServerCertificates",
        *(
            f"shield:{a}"
            for a in (
                "CreateProtection",
                "DeleteProtection",
                "DescribeProtection",
                "GetSubscriptionState",
            )
        ),
        *(
            f"{service}:{a}"
            for service in ("waf-regional", "wafv2")
            for a in ("AssociateWebACL", "DisassociateWebACL", "GetWebACL", "GetWebACLForResource")
        ),
    }
)

# What the published policy grants and this stack's does not, each with why. The controller's
# AWS wrappers name every call they make (pkg/aws/services/*.go at v2.17.1); "not called" below
# means no wrapper makes that call.
NOT_GRANTED = {
    # Turned off in the chart values (enableWaf, enableWafv2, enableShield: false).
    "elasticloadbalancing:SetWebAcl": "WAF Classic, off",
    "waf-regional:AssociateWebACL": "WAF Classic, off",
    "waf-regional:DisassociateWebACL": "WAF Classic, off",
    "waf-regional:GetWebACL": "WAF Classic, off",
    "waf-regional:GetWebACLForResource": "WAF Classic, off",
    "wafv2:AssociateWebACL": "WAFv2, off",
    "wafv2:DisassociateWebACL": "WAFv2, off",
    "wafv2:GetWebACL": "WAFv2, off",
    "wafv2:GetWebACLForResource": "WAFv2, off",
    "shield:CreateProtection": "Shield, off",
    "shield:DeleteProtection": "Shield, off",
    "shield:DescribeProtection": "Shield, off",
    "shield:GetSubscriptionState": "Shield, off",
    # Features no Ingress of this stack asks for.
    "cognito-idp:DescribeUserPoolClient": "Cognito authentication: no Ingress uses auth-type",
    "elasticloadbalancing:DescribeCapacityReservation": (
        "only with the minimum-load-balancer-capacity annotation "
        "(load_balancer_capacity_reservation_reconciler.go returns before any call without it)"
    ),
    "elasticloadbalancing:ModifyCapacityReservation": "as DescribeCapacityReservation",
    "elasticloadbalancing:ModifyIpPools": (
        "only to remove an IPAM pool a load balancer has (load_balancer_manager.go)"
    ),
    "ec2:DescribeIpamPools": "IPAM pools: not called",
    "ec2:DescribeCoipPools": "Outposts customer-owned addresses: not called",
    "ec2:GetCoipPoolUsage": "Outposts customer-owned addresses: not called",
    "ec2:DescribeVpcPeeringConnections": "targets in peered VPCs: not called",
    "ec2:GetSecurityGroupsForVpc": "not called",
    "iam:ListServerCertificates": "certificates are ACM ARNs given in the Ingress: not called",
    "iam:GetServerCertificate": "as ListServerCertificates",
}


def test_the_controller_policy_differs_from_the_published_one_only_as_listed() -> None:
    policy = load_balancer_controller_policy(
        partition="aws", region="eu-west-1", account_id="123456789012", vpc_id="vpc-0abc"
    )
    granted = {a for s in policy["Statement"] for a in s["Action"]}
    assert granted - UPSTREAM_POLICY_ACTIONS == set(), "granted beyond the published policy"
    assert UPSTREAM_POLICY_ACTIONS - granted == set(NOT_GRANTED)


def test_the_controller_leaves_waf_and_shield_alone() -> None:
    values = load_balancer_controller.chart_values(
        cluster_name="c", region="eu-west-1", vpc_id="vpc-0abc", role_arn="arn:aws:iam::1:role/r"
    )
    # The chart passes --enable-waf/--enable-wafv2/--enable-shield only for a boolean value;
    # unset, the controller manages all three (and needs permissions this role lacks).
    assert (values["enableWaf"], values["enableWafv2"], values["enableShield"]) == (
        False,
        False,
        False,
    )


def test_with_a_web_acl_the_controller_may_associate_it_and_nothing_more() -> None:
    off, on = (
        load_balancer_controller_policy(
            partition="aws",
            region="eu-west-1",
            account_id="123456789012",
            vpc_id="vpc-0abc",
            wafv2=wafv2,
        )
        for wafv2 in (False, True)
    )
    added = {a for s in on["Statement"] for a in s["Action"]} - {
        a for s in off["Statement"] for a in s["Action"]
    }
    assert added == {
        "wafv2:GetWebACL",
        "wafv2:GetWebACLForResource",
        "wafv2:AssociateWebACL",
        "wafv2:DisassociateWebACL",
        "elasticloadbalancing:SetWebAcl",
    }
    assert added <= UPSTREAM_POLICY_ACTIONS
    [statement] = [s for s in on["Statement"] if "wafv2:AssociateWebACL" in s["Action"]]
    assert statement["Resource"] == [
        "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/*/*",
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/*/*",
    ]
    values = load_balancer_controller.chart_values(
        cluster_name="c",
        region="eu-west-1",
        vpc_id="vpc-0abc",
        role_arn="arn:aws:iam::1:role/r",
        wafv2=True,
    )
    assert (values["enableWaf"], values["enableWafv2"], values["enableShield"]) == (
        False,
        True,
        False,
    )
