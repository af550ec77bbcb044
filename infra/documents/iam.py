"""IAM trust and permission documents, and the model registry's resource policy.

Every permission names concrete ARNs or ARN prefixes. The only `"Resource": "*"` statements are
for read-only calls AWS does not scope to a resource (`logs:DescribeLogGroups`, the Auto Scaling
and EC2 `Describe*` calls).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from infra.documents.monitoring import DRIFT_NAMESPACE, ENDPOINT_INSTANCES

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


def serving_policy(
    *,
    models_bucket_arn: str,
    kms_key_arn: str,
    capture_bucket_arn: str | None = None,
    capture_prefix: str = "",
) -> dict[str, Any]:
    """Serving reads model artifacts and, when it captures traffic, adds objects under its own
    capture prefix (it never reads, lists or overwrites-by-name anything else there)."""
    statements = [
        _allow("ReadModelArtifacts", ["s3:GetObject"], [f"{models_bucket_arn}/*"]),
        _allow("ListModelArtifacts", ["s3:ListBucket"], [models_bucket_arn]),
        _allow("DecryptModelArtifacts", ["kms:Decrypt"], [kms_key_arn]),
    ]
    if capture_bucket_arn is not None:
        statements += [
            _allow(
                "WriteCapturedTraffic",
                ["s3:PutObject"],
                [f"{capture_bucket_arn}/{capture_prefix.strip('/')}/*"],
            ),
            _allow("EncryptCapturedTraffic", ["kms:GenerateDataKey"], [kms_key_arn]),
        ]
    return _document(*statements)


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


LOAD_BALANCER_CLUSTER_TAG = "elbv2.k8s.aws/cluster"
"""The tag the AWS Load Balancer Controller puts on everything it creates."""


def load_balancer_controller_policy(
    *, partition: str, region: str, account_id: str, vpc_id: str, wafv2: bool = False
) -> dict[str, Any]:
    """The AWS Load Balancer Controller, for Ingresses only: it reads the network and the
    certificates, and creates, changes and deletes Application Load Balancers, their listeners,
    rules and target groups, and their security groups, in the stack's VPC.

    With `wafv2` it also associates its load balancers with this account's regional web ACLs
    (the stack's rate limit). Narrower than the controller's published policy: no Network Load
    Balancers (no Service of type LoadBalancer is served), no WAF Classic, Shield or Cognito
    (turned off in its chart values, and no annotation here uses them), and every write names
    this account's and region's ARNs; what else differs from the published policy of the pinned
    version, and why, is listed in tests/infra/test_cluster_addons.py. What it creates must
    carry its cluster tag, and it changes or deletes only what carries it (security group rules
    excepted: it admits its load balancers into the cluster's node security group, which it did
    not create).
    """
    elb = f"arn:{partition}:elasticloadbalancing:{region}:{account_id}"
    ec2 = f"arn:{partition}:ec2:{region}:{account_id}"
    balancers = [f"{elb}:loadbalancer/app/*/*", f"{elb}:targetgroup/*/*"]
    listeners = [f"{elb}:listener/app/*/*/*", f"{elb}:listener-rule/app/*/*/*/*"]
    security_groups = [f"{ec2}:security-group/*"]
    tagged = {"Null": {f"aws:ResourceTag/{LOAD_BALANCER_CLUSTER_TAG}": "false"}}
    tag_requested = {"Null": {f"aws:RequestTag/{LOAD_BALANCER_CLUSTER_TAG}": "false"}}

    def conditioned(statement: dict[str, Any], condition: dict[str, Any]) -> dict[str, Any]:
        return {**statement, "Condition": condition}

    return _document(
        _allow(
            "ReadNetworkAndLoadBalancers",
            [
                "ec2:DescribeAccountAttributes",
                "ec2:DescribeAddresses",
                "ec2:DescribeAvailabilityZones",
                "ec2:DescribeInternetGateways",
                "ec2:DescribeVpcs",
                "ec2:DescribeSubnets",
                "ec2:DescribeSecurityGroups",
                "ec2:DescribeInstances",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DescribeTags",
                "ec2:DescribeRouteTables",
                "elasticloadbalancing:DescribeLoadBalancers",
                "elasticloadbalancing:DescribeLoadBalancerAttributes",
                "elasticloadbalancing:DescribeListeners",
                "elasticloadbalancing:DescribeListenerAttributes",
                "elasticloadbalancing:DescribeListenerCertificates",
                "elasticloadbalancing:DescribeSSLPolicies",
                "elasticloadbalancing:DescribeRules",
                "elasticloadbalancing:DescribeTargetGroups",
                "elasticloadbalancing:DescribeTargetGroupAttributes",
                "elasticloadbalancing:DescribeTargetHealth",
                "elasticloadbalancing:DescribeTags",
                "elasticloadbalancing:DescribeTrustStores",
                "acm:ListCertificates",
                "acm:DescribeCertificate",
            ],
            ["*"],
        ),
        conditioned(
            _allow(
                "CreateLoadBalancingServiceRole",
                ["iam:CreateServiceLinkedRole"],
                [
                    f"arn:{partition}:iam::{account_id}:role/aws-service-role/"
                    "elasticloadbalancing.amazonaws.com/AWSServiceRoleForElasticLoadBalancing"
                ],
            ),
            {"StringEquals": {"iam:AWSServiceName": "elasticloadbalancing.amazonaws.com"}},
        ),
        _allow(
            "CreateSecurityGroupsInTheStacksVpc",
            ["ec2:CreateSecurityGroup"],
            [*security_groups, f"{ec2}:vpc/{vpc_id}"],
        ),
        conditioned(
            _allow("TagSecurityGroupsAtCreation", ["ec2:CreateTags"], security_groups),
            {"StringEquals": {"ec2:CreateAction": "CreateSecurityGroup"}, **tag_requested},
        ),
        _allow(
            "AdmitLoadBalancersToNodes",
            ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
            security_groups,
        ),
        conditioned(
            _allow(
                "ManageOwnSecurityGroups",
                ["ec2:CreateTags", "ec2:DeleteTags", "ec2:DeleteSecurityGroup"],
                security_groups,
            ),
            tagged,
        ),
        conditioned(
            _allow(
                "CreateTaggedLoadBalancers",
                [
                    "elasticloadbalancing:CreateLoadBalancer",
                    "elasticloadbalancing:CreateTargetGroup",
                ],
                balancers,
            ),
            tag_requested,
        ),
        conditioned(
            _allow(
                "TagAtCreation",
                ["elasticloadbalancing:AddTags"],
                [*balancers, *listeners],
            ),
            {
                "StringEquals": {
                    "elasticloadbalancing:CreateAction": [
                        "CreateLoadBalancer",
                        "CreateTargetGroup",
                        "CreateListener",
                        "CreateRule",
                    ]
                }
            },
        ),
        conditioned(
            _allow(
                "ManageOwnLoadBalancers",
                [
                    "elasticloadbalancing:AddTags",
                    "elasticloadbalancing:RemoveTags",
                    "elasticloadbalancing:ModifyLoadBalancerAttributes",
                    "elasticloadbalancing:SetIpAddressType",
                    "elasticloadbalancing:SetSecurityGroups",
                    "elasticloadbalancing:SetSubnets",
                    "elasticloadbalancing:DeleteLoadBalancer",
                    "elasticloadbalancing:ModifyTargetGroup",
                    "elasticloadbalancing:ModifyTargetGroupAttributes",
                    "elasticloadbalancing:RegisterTargets",
                    "elasticloadbalancing:DeregisterTargets",
                    "elasticloadbalancing:DeleteTargetGroup",
                ],
                balancers,
            ),
            tagged,
        ),
        _allow(
            "ManageListenersOfItsLoadBalancers",
            [
                "elasticloadbalancing:CreateListener",
                "elasticloadbalancing:DeleteListener",
                "elasticloadbalancing:ModifyListener",
                "elasticloadbalancing:ModifyListenerAttributes",
                "elasticloadbalancing:AddListenerCertificates",
                "elasticloadbalancing:RemoveListenerCertificates",
                "elasticloadbalancing:CreateRule",
                "elasticloadbalancing:DeleteRule",
                "elasticloadbalancing:ModifyRule",
                # Reorders the rules when an Ingress's paths or hosts change (v2.17.1
                # pkg/deploy/elbv2/listener_rule_synthesizer.go).
                "elasticloadbalancing:SetRulePriorities",
            ],
            [*listeners, f"{elb}:loadbalancer/app/*/*"],
        ),
        *(
            [
                # What the controller calls for the wafv2-acl-arn annotation (v2.17.1
                # pkg/aws/services/wafv2.go). AssociateWebACL also needs a permission of the
                # protected resource's type, elasticloadbalancing:SetWebAcl for a load balancer
                # (AWS WAF Developer Guide, "Permissions for AssociateWebACL"); v2.17.1's
                # iam_policy.json grants it too.
                _allow(
                    "AssociateWebAclsWithItsLoadBalancers",
                    [
                        "wafv2:GetWebACL",
                        "wafv2:GetWebACLForResource",
                        "wafv2:AssociateWebACL",
                        "wafv2:DisassociateWebACL",
                        "elasticloadbalancing:SetWebAcl",
                    ],
                    [
                        f"arn:{partition}:wafv2:{region}:{account_id}:regional/webacl/*/*",
                        f"{elb}:loadbalancer/app/*/*",
                    ],
                )
            ]
            if wafv2
            else []
        ),
    )


def s3_object_arn(uri: str, partition: str) -> str:
    """`s3://bucket/key` as the ARN IAM scopes it by."""
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return f"arn:{partition}:s3:::{bucket}/{key}"


def endpoint_execution_policy(
    *,
    partition: str,
    model_prefix: str,
    capture_prefix: str,
    kms_key_arn: str,
    repository_arn: str,
    log_group_arn: str,
    rollback_alarm_arns: Sequence[str],
) -> dict[str, Any]:
    """A model's SageMaker endpoint reads that model's versions and no other object (any of
    them: a rollback, SageMaker's own or an emergency one, runs an earlier version on fleets
    that still scale out and replace instances), pulls the serving image from its repository,
    writes captured traffic under its own prefix, logs into its own log group, publishes its
    instances' metrics, and reads the state of its rollback alarms."""
    return _document(
        _allow(
            "ReadTheModelsVersions",
            ["s3:GetObject"],
            [s3_object_arn(model_prefix.rstrip("/") + "/*", partition)],
        ),
        _allow(
            "WriteCapturedTraffic",
            ["s3:PutObject", "s3:AbortMultipartUpload"],
            [s3_object_arn(capture_prefix.rstrip("/") + "/*", partition)],
        ),
        _allow(
            "UseEnvironmentKey",
            ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            [kms_key_arn],
        ),
        _allow(
            "PullServingImage",
            ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            [repository_arn],
        ),
        _allow("AuthenticateToRegistry", ["ecr:GetAuthorizationToken"], ["*"]),
        _allow(
            "WriteOwnLogs",
            ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            [log_group_arn, f"{log_group_arn}:*"],
        ),
        {
            # SageMaker publishes each instance's CPU, memory and disk to /aws/sagemaker/Endpoints
            # with the execution role, which AWS lists as needing cloudwatch:PutMetricData
            # (docs.aws.amazon.com/sagemaker/latest/dg/sagemaker-roles.html, "CreateModel API:
            # Execution Role Permissions"). The action names no resource; the namespace
            # condition keeps it there. The invocation metrics in AWS/SageMaker are the
            # service's own (namespaces under AWS/ are reserved to AWS: PutMetricData's
            # Namespace in the CloudWatch API reference), and the rollback alarms read them, so
            # the role is given no way to write beside them.
            **_allow("PublishInstanceMetrics", ["cloudwatch:PutMetricData"], ["*"]),
            "Condition": {"StringEquals": {"cloudwatch:namespace": ENDPOINT_INSTANCES}},
        },
        # "Ensure that your IAM execution role has permission to perform the
        # cloudwatch:DescribeAlarms action on the auto-rollback alarms you specify"
        # (docs.aws.amazon.com/sagemaker/latest/dg/deployment-guardrails-configuration.html).
        _allow("ReadRollbackAlarms", ["cloudwatch:DescribeAlarms"], list(rollback_alarm_arns)),
    )


def drift_policy(
    *,
    capture_bucket_arn: str,
    capture_prefixes: Sequence[str],
    models_bucket_arn: str,
    kms_key_arn: str,
    model_package_group_arns: Sequence[str],
) -> dict[str, Any]:
    """The drift job reads captured traffic and the versions' training baselines, writes its
    reports beside the capture and its figures to one CloudWatch namespace."""
    prefixes = [prefix.strip("/") for prefix in capture_prefixes]
    captured = [f"{capture_bucket_arn}/{prefix}" for prefix in prefixes]
    packages = [model_package_arns(group_arn=arn) for arn in model_package_group_arns]
    return _document(
        _allow("ReadCapturedTraffic", ["s3:GetObject"], [f"{arn}/*" for arn in captured]),
        {
            **_allow("ListCapturedTraffic", ["s3:ListBucket"], [capture_bucket_arn]),
            "Condition": {"StringLike": {"s3:prefix": [f"{prefix}/*" for prefix in prefixes]}},
        },
        _allow("WriteDriftReports", ["s3:PutObject"], [f"{arn}/*/drift/*" for arn in captured]),
        _allow(
            "ReadTrainingBaselines",
            ["s3:GetObject"],
            [f"{models_bucket_arn}/*/baseline_statistics.json"],
        ),
        _allow(
            "UseEnvironmentKey",
            ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            [kms_key_arn],
        ),
        _allow(
            "FindServedVersions",
            ["sagemaker:DescribeModelPackage", "sagemaker:ListModelPackages"],
            [*model_package_group_arns, *packages],
        ),
        {
            # PutMetricData names no resource; the condition keeps it to the drift namespace.
            **_allow("PublishDriftFigures", ["cloudwatch:PutMetricData"], ["*"]),
            "Condition": {"StringEquals": {"cloudwatch:namespace": DRIFT_NAMESPACE}},
        },
    )


def model_package_arns(*, group_arn: str) -> str:
    """The ARN pattern of the versions in a model package group.

    `arn:...:model-package-group/churn-dev` holds `arn:...:model-package/churn-dev/<version>`.
    """
    return group_arn.replace(":model-package-group/", ":model-package/") + "/*"


MLFLOW_CLIENT_ACTIONS = (
    "sagemaker-mlflow:GetExperimentByName",
    "sagemaker-mlflow:CreateExperiment",
    "sagemaker-mlflow:CreateRun",
    "sagemaker-mlflow:GetRun",
    "sagemaker-mlflow:LogBatch",
    "sagemaker-mlflow:UpdateRun",
)
"""The MLflow API calls training makes (training/tracking.py): find or create its experiment,
start a run, log parameters, metrics and tags in batches, read the run (for its artifact
location) and end it. No delete, no model registry, no UI."""


def mlflow_server_policy(
    *, models_bucket_arn: str, artifact_prefix: str, kms_key_arn: str
) -> dict[str, Any]:
    """A SageMaker managed MLflow tracking server keeps its runs' artifacts under one prefix of
    the models bucket, encrypted with the environment key: it reads, writes and lists there and
    nowhere else, and deletes nothing (the bucket is versioned; its lifecycle rules expire what
    is overwritten). AWS suggests AmazonS3FullAccess for this role; nothing here needs it."""
    prefix = artifact_prefix.strip("/")
    return _document(
        _allow(
            "ReadWriteRunArtifacts",
            ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            [f"{models_bucket_arn}/{prefix}/*"],
        ),
        {
            **_allow("ListRunArtifacts", ["s3:ListBucket"], [models_bucket_arn]),
            "Condition": {"StringLike": {"s3:prefix": [prefix, f"{prefix}/*"]}},
        },
        _allow("LocateArtifactBucket", ["s3:GetBucketLocation"], [models_bucket_arn]),
        _allow(
            "UseEnvironmentKey",
            ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            [kms_key_arn],
        ),
    )


def training_policy(
    *,
    data_bucket_arn: str,
    models_bucket_arn: str,
    kms_key_arn: str,
    model_package_group_arns: Sequence[str],
    mlflow_tracking_server_arn: str | None = None,
) -> dict[str, Any]:
    """Training reads data, writes model artifacts and registers versions into its groups; with
    a tracking server, it records its runs there. The MLflow client uploads run artifacts to
    the server's artifact store itself (`s3://<models bucket>/mlflow/`), which the models
    bucket statement already covers."""
    packages = [model_package_arns(group_arn=arn) for arn in model_package_group_arns]
    tracking = (
        [_allow("RecordRuns", MLFLOW_CLIENT_ACTIONS, [mlflow_tracking_server_arn])]
        if mlflow_tracking_server_arn
        else []
    )
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
        *tracking,
    )


TRAINING_JOB_LOGS = "/aws/sagemaker/TrainingJobs"
TRANSFORM_JOB_LOGS = "/aws/sagemaker/TransformJobs"
"""The log groups SageMaker writes every training and transform job of an account and region
into (a stream per job): shared by every stack there, so the jobs' roles create them if absent
instead of a stack owning them."""


def job_log_group_arn(*, partition: str, region: str, account_id: str, group: str) -> str:
    return f"arn:{partition}:logs:{region}:{account_id}:log-group:{group}"


def _sagemaker_job_statements(
    *, repository_arn: str, log_group_arn: str, metrics_namespace: str
) -> list[dict[str, Any]]:
    """What SageMaker needs of a job's role to run its container: pull the one image, write the
    job's logs, publish the job's metrics."""
    return [
        _allow(
            "PullJobImage",
            ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
            [repository_arn],
        ),
        _allow("AuthenticateToRegistry", ["ecr:GetAuthorizationToken"], ["*"]),
        _allow(
            "WriteJobLogs",
            [
                "logs:CreateLogGroup",
                "logs:CreateLogStream",
                "logs:PutLogEvents",
                "logs:DescribeLogStreams",
            ],
            [log_group_arn, f"{log_group_arn}:*"],
        ),
        {
            # PutMetricData names no resource; the condition keeps it to the jobs' namespace.
            **_allow("PublishJobMetrics", ["cloudwatch:PutMetricData"], ["*"]),
            "Condition": {"StringEquals": {"cloudwatch:namespace": metrics_namespace}},
        },
    ]


def sagemaker_training_policy(
    *,
    data_bucket_arn: str,
    models_bucket_arn: str,
    kms_key_arn: str,
    model_package_group_arns: Sequence[str],
    repository_arn: str,
    log_group_arn: str,
    mlflow_tracking_server_arn: str | None = None,
) -> dict[str, Any]:
    """A SageMaker training job does what the cluster's training does (read data, write
    artifacts, register versions, record its run on the tracking server), plus what SageMaker
    needs to run the training image."""
    statements = training_policy(
        data_bucket_arn=data_bucket_arn,
        models_bucket_arn=models_bucket_arn,
        kms_key_arn=kms_key_arn,
        model_package_group_arns=model_package_group_arns,
        mlflow_tracking_server_arn=mlflow_tracking_server_arn,
    )["Statement"]
    return _document(
        *statements,
        *_sagemaker_job_statements(
            repository_arn=repository_arn,
            log_group_arn=log_group_arn,
            metrics_namespace=TRAINING_JOB_LOGS,
        ),
        _volume_key_grant(kms_key_arn),
    )


def scoring_policy(
    *, data_bucket_arn: str, models_bucket_arn: str, kms_key_arn: str
) -> dict[str, Any]:
    """Batch scoring reads input files and writes predictions in the data bucket, and reads the
    scored version's model artifacts; it registers nothing and reads no capture."""
    return _document(
        _allow(
            "ReadInputWritePredictions",
            ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
            [f"{data_bucket_arn}/*"],
        ),
        _allow("ListInput", ["s3:ListBucket"], [data_bucket_arn]),
        _allow("ReadModelArtifacts", ["s3:GetObject"], [f"{models_bucket_arn}/*"]),
        _allow(
            "UseEnvironmentKey",
            ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
            [kms_key_arn],
        ),
    )


def sagemaker_scoring_policy(
    *,
    data_bucket_arn: str,
    models_bucket_arn: str,
    kms_key_arn: str,
    repository_arn: str,
    log_group_arn: str,
) -> dict[str, Any]:
    """A batch transform job's model: batch scoring's reach, plus running the serving image."""
    statements = scoring_policy(
        data_bucket_arn=data_bucket_arn,
        models_bucket_arn=models_bucket_arn,
        kms_key_arn=kms_key_arn,
    )["Statement"]
    return _document(
        *statements,
        *_sagemaker_job_statements(
            repository_arn=repository_arn,
            log_group_arn=log_group_arn,
            metrics_namespace=TRANSFORM_JOB_LOGS,
        ),
        _volume_key_grant(kms_key_arn),
    )


def _volume_key_grant(kms_key_arn: str) -> dict[str, Any]:
    """SageMaker attaches the job's volumes encrypted with the stack key through a grant made
    with the job's role ("kms:CreateGrant" in the SageMaker developer guide's execution role
    permissions for CreateTrainingJob and CreateTransformJob); only grants for an AWS service
    acting on a resource, not to any principal the role names."""
    return {
        **_allow("GrantVolumeKeyToSageMaker", ["kms:CreateGrant"], [kms_key_arn]),
        "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
    }


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
