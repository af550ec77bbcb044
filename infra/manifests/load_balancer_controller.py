"""The AWS Load Balancer Controller, installed from its Helm chart when the stack serves models
through an ingress: it turns each model's Ingress into an Application Load Balancer.

Its objects come from the chart (a webhook with a generated certificate, CRDs), so they are not
rendered here; what the stack decides, the chart's values, is."""

from __future__ import annotations

from typing import Any

from infra.manifests import hardening
from infra.manifests.namespace import IRSA_ANNOTATION

NAMESPACE = "kube-system"
NAME = "aws-load-balancer-controller"
SERVICE_ACCOUNT = NAME
CHART = "aws-load-balancer-controller"
CHART_VERSION = "1.17.1"
"""Controller v2.17.1; several public EKS 1.35 deployments pin this chart."""
CHART_REPOSITORY = "https://aws.github.io/eks-charts"
INGRESS_CLASS = "alb"


def chart_values(
    *, cluster_name: str, region: str, vpc_id: str, role_arn: str, wafv2: bool = False
) -> dict[str, Any]:
    """Two replicas on the general nodes, its IRSA role, the VPC and region given rather than
    looked up through instance metadata (which the hop limit keeps from pods), and Services of
    type LoadBalancer left alone: only Ingresses are its business here.

    WAF Classic and Shield are turned off, and WAFv2 unless `wafv2` (the stack's web ACL, with
    the permissions its role then has). The controller manages them for every load
    balancer by default ("default true" in the chart's values.yaml at 1.17.1; without a value the
    chart passes no flag and the controller's default holds), and queries them even for an
    Ingress without their annotations; its role here is not granted them, so reconciling fails
    and the Ingress never gets an address (kubernetes-sigs/aws-load-balancer-controller#3445)."""
    return {
        "clusterName": cluster_name,
        "region": region,
        "vpcId": vpc_id,
        "replicaCount": 2,
        "serviceAccount": {
            "create": True,
            "name": SERVICE_ACCOUNT,
            "annotations": {IRSA_ANNOTATION: role_arn},
        },
        "ingressClass": INGRESS_CLASS,
        "createIngressClassResource": True,
        "enableServiceMutatorWebhook": False,
        "enableWaf": False,
        "enableWafv2": wafv2,
        "enableShield": False,
        "nodeSelector": {"mlstack.io/node-group": "general"},
        "podLabels": hardening.labels("load-balancer-controller", NAME),
    }
