"""IAM trust and permission documents, and the model registry's resource policy.

Every permission names concrete ARNs or ARN prefixes. The only `"Resource": "*"` statements are
for read-only calls AWS does not scope to a resource (`logs:DescribeLogGroups`, the Auto Scaling
and EC2 `Describe*` calls).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

VERSION = "2012-10-17"


def _document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": VERSION, "Statement": list(statements)}


def _allow(sid: str, actions: Sequence[str], resources: Sequence[str]) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": list(actions), "Resource": list(resources)}


def service_trust_policy(service: str, *, account_id: str | None = None) -> dict[str, Any]:
    """Let one AWS service assume the role; with `account_id`, only on this account's behalf.

    The source-account condition stops the confused-deputy case where the service acts for
    another account.
    """
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"Service": service},
        "Action": ["sts:AssumeRole", "sts:TagSession"],
    }
    if account_id is not None:
        statement["Condition"] = {"StringEquals": {"aws:SourceAccount": account_id}}
    return _document(statement)


def service_account_trust_policy(
    *, oidc_provider_arn: str, issuer: str, namespace: str, service_account: str
) -> dict[str, Any]:
    """Let exactly one Kubernetes service account assume the role through the cluster's OIDC
    provider (IRSA): the `sub` names the account, the `aud` is STS. No wildcards."""
    host = issuer.removeprefix("https://")
    return _document(
        {
            "Effect": "Allow",
            "Principal": {"Federated": oidc_provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": {
                "StringEquals": {
                    f"{host}:sub": f"system:serviceaccount:{namespace}:{service_account}",
                    f"{host}:aud": "sts.amazonaws.com",
                }
            },
        }
    )


def flow_log_delivery_policy(*, log_group_arn: str) -> dict[str, Any]:
    """What VPC flow logs need to write into one log group."""
    return _document(
        _allow(
            "WriteFlowLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            [log_group_arn, f"{log_group_arn}:*"],
        ),
        _allow("FindLogGroup", ["logs:DescribeLogGroups"], ["*"]),
    )


def serving_policy(*, models_bucket_arn: str, kms_key_arn: str) -> dict[str, Any]:
    """Serving reads model artifacts and nothing else."""
    return _document(
        _allow("ReadModelArtifacts", ["s3:GetObject"], [f"{models_bucket_arn}/*"]),
        _allow("ListModelArtifacts", ["s3:ListBucket"], [models_bucket_arn]),
        _allow("DecryptModelArtifacts", ["kms:Decrypt"], [kms_key_arn]),
    )


def cluster_autoscaler_policy(
    *, partition: str, region: str, account_id: str, cluster_name: str
) -> dict[str, Any]:
    """The cluster autoscaler resizes the cluster's own node groups and nothing else.

    EKS names a managed node group's Auto Scaling group `eks-<group>-<uuid>`, unknown until it
    exists, so writes name the `eks-*` groups of this account and region and are narrowed to
    this cluster's by the tags EKS puts on them (`k8s.io/cluster-autoscaler/<cluster>: owned`);
    `eks:DescribeNodegroup` gives the labels and taints a group at zero nodes will have, which
    is how a pod that needs a GPU lifts the GPU group from zero.
    """
    owned = {
        "StringEquals": {
            f"aws:ResourceTag/k8s.io/cluster-autoscaler/{cluster_name}": "owned",
            "aws:ResourceTag/k8s.io/cluster-autoscaler/enabled": "true",
        }
    }
    return _document(
        _allow(
            "DiscoverNodeGroups",
            [
                "autoscaling:DescribeAutoScalingGroups",
                "autoscaling:DescribeAutoScalingInstances",
                "autoscaling:DescribeLaunchConfigurations",
                "autoscaling:DescribeScalingActivities",
                "autoscaling:DescribeTags",
                "ec2:DescribeImages",
                "ec2:DescribeInstanceTypes",
                "ec2:DescribeLaunchTemplateVersions",
                "ec2:GetInstanceTypesFromInstanceRequirements",
            ],
            ["*"],
        ),
        _allow(
            "DescribeOwnNodeGroups",
            ["eks:DescribeNodegroup"],
            [f"arn:{partition}:eks:{region}:{account_id}:nodegroup/{cluster_name}/*"],
        ),
        {
            **_allow(
                "ResizeOwnNodeGroups",
                [
                    "autoscaling:SetDesiredCapacity",
                    "autoscaling:TerminateInstanceInAutoScalingGroup",
                ],
                [
                    f"arn:{partition}:autoscaling:{region}:{account_id}:autoScalingGroup:*:"
                    "autoScalingGroupName/eks-*"
                ],
            ),
            "Condition": owned,
        },
    )


def model_package_arns(*, group_arn: str) -> str:
    """The ARN pattern of the versions in a model package group.

    `arn:...:model-package-group/churn-dev` holds `arn:...:model-package/churn-dev/<version>`.
    """
    return group_arn.replace(":model-package-group/", ":model-package/") + "/*"


def training_policy(
    *,
    data_bucket_arn: str,
    models_bucket_arn: str,
    kms_key_arn: str,
    model_package_group_arns: Sequence[str],
) -> dict[str, Any]:
    """Training reads data, writes model artifacts and registers versions into its groups."""
    packages = [model_package_arns(group_arn=arn) for arn in model_package_group_arns]
    return _document(
        _allow("ReadTrainingData", ["s3:GetObject"], [f"{data_bucket_arn}/*"]),
        _allow(
            "ReadWriteModelArtifacts",
            ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            [f"{models_bucket_arn}/*"],
        ),
        _allow("ListBuckets", ["s3:ListBucket"], [data_bucket_arn, models_bucket_arn]),
        _allow(
            "UseEnvironmentKey",
            ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            [kms_key_arn],
        ),
        _allow(
            "RegisterModelVersions",
            [
                "sagemaker:CreateModelPackage",
                "sagemaker:DescribeModelPackage",
                "sagemaker:DescribeModelPackageGroup",
                "sagemaker:ListModelPackages",
                "sagemaker:AddTags",
            ],
            [*model_package_group_arns, *packages],
        ),
    )


def model_registry_policy(
    *, group_arn: str, writer_arns: Sequence[str], reader_arns: Sequence[str]
) -> dict[str, Any]:
    """The resource policy of a model package group: writers register, readers look up."""
    packages = model_package_arns(group_arn=group_arn)
    return _document(
        {
            "Sid": "WritersRegisterVersions",
            "Effect": "Allow",
            "Principal": {"AWS": list(writer_arns)},
            "Action": ["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackageGroup"],
            "Resource": [group_arn, packages],
        },
        {
            "Sid": "ReadersLookUpVersions",
            "Effect": "Allow",
            "Principal": {"AWS": list(reader_arns)},
            "Action": [
                "sagemaker:DescribeModelPackage",
                "sagemaker:DescribeModelPackageGroup",
                "sagemaker:ListModelPackages",
            ],
            "Resource": [group_arn, packages],
        },
    )
