"""Reaching a stack's EKS API server from an operator's machine: its address and CA from EKS,
and a token as `aws eks get-token` makes one — a presigned STS GetCallerIdentity URL bound to the
cluster's name — so nothing but boto3 and the caller's AWS credentials is needed."""

from __future__ import annotations

import base64
import ssl
from typing import Any

from infra.operations.aws_access import StackAws
from infra.operations.errors import UnreachableError
from serving.cluster_api import ClusterApi

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 (the token format's prefix, not a secret)
CLUSTER_ID_HEADER = "x-k8s-aws-id"
TOKEN_LIFETIME_SECONDS = 60


def eks_token(sts: Any, cluster: str) -> str:
    """A bearer token the cluster's authenticator accepts for the caller's identity."""

    def add_cluster_header(request: Any, **_: Any) -> None:
        request.headers[CLUSTER_ID_HEADER] = cluster

    sts.meta.events.register("before-sign.sts.GetCallerIdentity", add_cluster_header)
    url = sts.generate_presigned_url(
        "get_caller_identity", Params={}, ExpiresIn=TOKEN_LIFETIME_SECONDS, HttpMethod="GET"
    )
    return TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")


def cluster_api(aws: StackAws, cluster: str, namespace: str) -> ClusterApi:
    try:
        described = aws.client("eks").describe_cluster(name=cluster)["cluster"]
    except Exception as error:
        raise UnreachableError(f"EKS cluster {cluster} cannot be read: {error}") from error
    try:
        authority = base64.b64decode(described["certificateAuthority"]["data"]).decode()
        context = ssl.create_default_context(cadata=authority)
    except (KeyError, ValueError, ssl.SSLError) as error:
        raise UnreachableError(
            f"EKS cluster {cluster} has no usable certificate authority: {error}"
        ) from error
    return ClusterApi(
        base_url=str(described["endpoint"]).rstrip("/"),
        token=eks_token(aws.client("sts"), cluster),
        context=context,
        namespace=namespace,
    )
