"""Pure builders of the platform: IAM documents, kubeconfig, ECR lifecycle, subnet plan."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from infra.components.addressing import plan_subnets
from infra.documents.ecr import image_lifecycle_policy
from infra.documents.iam import (
    flow_log_delivery_policy,
    mlflow_server_policy,
    model_package_arns,
    model_registry_policy,
    sagemaker_scoring_policy,
    sagemaker_training_policy,
    scoring_policy,
    service_account_trust_policy,
    service_trust_policy,
    serving_policy,
    training_policy,
)
from infra.documents.kms import environment_key_policy
from infra.documents.kubeconfig import eks_kubeconfig
from infra.project import naming
from tests.iam import Request, evaluate, needs_simulator

KEY = "arn:aws:kms:eu-west-1:111122223333:key/k"
DATA = "arn:aws:s3:::data-1"
MODELS = "arn:aws:s3:::models-1"
GROUP = naming.model_package_group_arn(
    partition="aws", region="eu-west-1", account_id="111122223333", group="churn-prod"
)


def by_sid(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["Sid"]: s for s in document["Statement"]}


def test_irsa_trust_names_one_service_account_and_the_sts_audience() -> None:
    trust = service_account_trust_policy(
        oidc_provider_arn="arn:aws:iam::111122223333:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/AB",
        issuer="https://oidc.eks.eu-west-1.amazonaws.com/id/AB",
        namespace="mlstack",
        service_account="serving",
    )
    [statement] = trust["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"]["Federated"].endswith(
        "oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/AB"
    )
    assert statement["Condition"] == {
        "StringEquals": {
            "oidc.eks.eu-west-1.amazonaws.com/id/AB:sub": "system:serviceaccount:mlstack:serving",
            "oidc.eks.eu-west-1.amazonaws.com/id/AB:aud": "sts.amazonaws.com",
        }
    }


def test_service_trust_can_be_pinned_to_the_account() -> None:
    pinned = service_trust_policy("vpc-flow-logs.amazonaws.com", account_id="111122223333")
    [statement] = pinned["Statement"]
    assert statement["Principal"] == {"Service": "vpc-flow-logs.amazonaws.com"}
    assert statement["Condition"] == {"StringEquals": {"aws:SourceAccount": "111122223333"}}
    assert "Condition" not in service_trust_policy("eks.amazonaws.com")["Statement"][0]


def test_serving_may_only_read_model_artifacts() -> None:
    statements = by_sid(serving_policy(models_bucket_arn=MODELS, kms_key_arn=KEY))
    actions = {a for s in statements.values() for a in s["Action"]}
    assert actions == {"s3:GetObject", "s3:ListBucket", "kms:Decrypt"}
    assert statements["ReadModelArtifacts"]["Resource"] == [f"{MODELS}/*"]
    assert statements["DecryptModelArtifacts"]["Resource"] == [KEY]


def test_training_reads_data_writes_models_and_registers_only_into_its_groups() -> None:
    statements = by_sid(
        training_policy(
            data_bucket_arn=DATA,
            models_bucket_arn=MODELS,
            kms_key_arn=KEY,
            model_package_group_arns=[GROUP],
        )
    )
    assert statements["ReadTrainingData"] == {
        "Sid": "ReadTrainingData",
        "Effect": "Allow",
        "Action": ["s3:GetObject"],
        "Resource": [f"{DATA}/*"],
    }
    assert "s3:PutObject" in statements["ReadWriteModelArtifacts"]["Action"]
    assert statements["ReadWriteModelArtifacts"]["Resource"] == [f"{MODELS}/*"]
    register = statements["RegisterModelVersions"]
    assert register["Resource"] == [
        "arn:aws:sagemaker:eu-west-1:111122223333:model-package-group/churn-prod",
        "arn:aws:sagemaker:eu-west-1:111122223333:model-package/churn-prod/*",
    ]
    assert "sagemaker:UpdateModelPackage" not in register["Action"]  # approval is a human step
    resources = [r for s in statements.values() for r in s["Resource"]]
    assert "*" not in resources


REPOSITORY = "arn:aws:ecr:eu-west-1:111122223333:repository/training-1"
LOGS = "arn:aws:logs:eu-west-1:111122223333:log-group:/aws/sagemaker/TrainingJobs"


def test_a_sagemaker_training_job_does_what_cluster_training_does_plus_run_its_image() -> None:
    on_cluster = training_policy(
        data_bucket_arn=DATA, models_bucket_arn=MODELS, kms_key_arn=KEY,
        model_package_group_arns=[GROUP],
    )  # fmt: skip
    statements = by_sid(
        sagemaker_training_policy(
            data_bucket_arn=DATA, models_bucket_arn=MODELS, kms_key_arn=KEY,
            model_package_group_arns=[GROUP], repository_arn=REPOSITORY, log_group_arn=LOGS,
        )
    )  # fmt: skip
    assert all(statements[s["Sid"]] == s for s in on_cluster["Statement"])
    assert statements["PullJobImage"]["Resource"] == [REPOSITORY]
    assert statements["WriteJobLogs"]["Resource"] == [LOGS, f"{LOGS}:*"]
    assert statements["PublishJobMetrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TrainingJobs"}
    }
    unscoped = {a for s in statements.values() if s["Resource"] == ["*"] for a in s["Action"]}
    assert unscoped == {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData"}


def test_scoring_reads_and_writes_the_data_bucket_reads_models_and_registers_nothing() -> None:
    statements = by_sid(
        scoring_policy(data_bucket_arn=DATA, models_bucket_arn=MODELS, kms_key_arn=KEY)
    )
    assert statements["ReadInputWritePredictions"]["Resource"] == [f"{DATA}/*"]
    assert statements["ReadModelArtifacts"] == {
        "Sid": "ReadModelArtifacts",
        "Effect": "Allow",
        "Action": ["s3:GetObject"],
        "Resource": [f"{MODELS}/*"],
    }
    actions = {a for s in statements.values() for a in s["Action"]}
    assert not {a for a in actions if a.startswith("sagemaker:")}
    on_sagemaker = by_sid(
        sagemaker_scoring_policy(
            data_bucket_arn=DATA, models_bucket_arn=MODELS, kms_key_arn=KEY,
            repository_arn=REPOSITORY.replace("training", "serving"),
            log_group_arn=LOGS.replace("Training", "Transform"),
        )
    )  # fmt: skip
    assert on_sagemaker["PullJobImage"]["Resource"] == [REPOSITORY.replace("training", "serving")]
    assert on_sagemaker["PublishJobMetrics"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/TransformJobs"}
    }


TRACKING_SERVER = "arn:aws:sagemaker:eu-west-1:111122223333:mlflow-tracking-server/mlstack-prod"


def test_training_records_runs_on_its_tracking_server_only_and_deletes_nothing_there() -> None:
    without = training_policy(
        data_bucket_arn=DATA, models_bucket_arn=MODELS, kms_key_arn=KEY,
        model_package_group_arns=[GROUP],
    )  # fmt: skip
    assert "RecordRuns" not in by_sid(without)
    statements = by_sid(
        training_policy(
            data_bucket_arn=DATA, models_bucket_arn=MODELS, kms_key_arn=KEY,
            model_package_group_arns=[GROUP], mlflow_tracking_server_arn=TRACKING_SERVER,
        )
    )  # fmt: skip
    runs = statements["RecordRuns"]
    assert runs["Resource"] == [TRACKING_SERVER]
    assert set(runs["Action"]) == {
        "sagemaker-mlflow:GetExperimentByName",
        "sagemaker-mlflow:CreateExperiment",
        "sagemaker-mlflow:CreateRun",
        "sagemaker-mlflow:GetRun",
        "sagemaker-mlflow:LogBatch",
        "sagemaker-mlflow:UpdateRun",
    }
    # The client uploads the run's artifacts under mlflow/ itself, with the models statement.
    assert statements["ReadWriteModelArtifacts"]["Resource"] == [f"{MODELS}/*"]


def test_the_tracking_server_reaches_its_artifact_prefix_and_the_key_only() -> None:
    statements = by_sid(
        mlflow_server_policy(models_bucket_arn=MODELS, artifact_prefix="mlflow/", kms_key_arn=KEY)
    )
    assert statements["ReadWriteRunArtifacts"]["Resource"] == [f"{MODELS}/mlflow/*"]
    assert statements["ListRunArtifacts"]["Condition"] == {
        "StringLike": {"s3:prefix": ["mlflow", "mlflow/*"]}
    }
    assert statements["UseEnvironmentKey"]["Resource"] == [KEY]
    actions = {a for s in statements.values() for a in s["Action"]}
    assert not [a for a in actions if "Delete" in a or a.endswith("*")]
    resources = {r for s in statements.values() for r in s["Resource"]}
    assert resources == {MODELS, f"{MODELS}/mlflow/*", KEY}


def test_model_package_arns_are_the_versions_of_a_group() -> None:
    assert model_package_arns(group_arn=GROUP) == (
        "arn:aws:sagemaker:eu-west-1:111122223333:model-package/churn-prod/*"
    )


def test_registry_policy_separates_writers_from_readers() -> None:
    statements = by_sid(
        model_registry_policy(
            group_arn=GROUP,
            writer_arns=["arn:aws:iam::111122223333:role/training"],
            reader_arns=["arn:aws:iam::111122223333:root"],
        )
    )
    writers, readers = statements["WritersRegisterVersions"], statements["ReadersLookUpVersions"]
    assert writers["Principal"] == {"AWS": ["arn:aws:iam::111122223333:role/training"]}
    assert "sagemaker:CreateModelPackage" in writers["Action"]
    assert readers["Principal"] == {"AWS": ["arn:aws:iam::111122223333:root"]}
    assert all(a.startswith(("sagemaker:Describe", "sagemaker:List")) for a in readers["Action"])


def test_flow_logs_write_only_to_their_log_group() -> None:
    group = "arn:aws:logs:eu-west-1:111122223333:log-group:flow"
    statements = by_sid(flow_log_delivery_policy(log_group_arn=group))
    assert statements["WriteFlowLogs"]["Resource"] == [group, f"{group}:*"]
    assert statements["FindLogGroup"]["Action"] == ["logs:DescribeLogGroups"]


def test_kubeconfig_authenticates_through_aws_eks_get_token_and_stores_no_credential() -> None:
    config = eks_kubeconfig(
        cluster_name="mlstack-prod",
        endpoint="https://ABC.gr7.eu-west-1.eks.amazonaws.com",
        certificate_authority="Q0E=",
        region="eu-west-1",
    )
    [cluster] = config["clusters"]
    assert cluster["cluster"] == {
        "server": "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
        "certificate-authority-data": "Q0E=",
    }
    assert config["current-context"] == "mlstack-prod"
    [user] = config["users"]
    assert user["user"]["exec"]["command"] == "aws"
    assert " ".join(user["user"]["exec"]["args"]) == (
        "eks get-token --cluster-name mlstack-prod --region eu-west-1 --output json"
    )
    assert "token" not in str(user["user"]).replace("get-token", "")


def test_ecr_lifecycle_expires_untagged_first_then_keeps_the_newest_tagged() -> None:
    rules = image_lifecycle_policy(untagged_expiry_days=2, keep_tagged=15)["rules"]
    assert [r["rulePriority"] for r in rules] == [1, 2]
    assert rules[0]["selection"] == {
        "tagStatus": "untagged",
        "countType": "sinceImagePushed",
        "countUnit": "days",
        "countNumber": 2,
    }
    assert rules[1]["selection"]["countType"] == "imageCountMoreThan"
    assert rules[1]["selection"]["countNumber"] == 15
    with pytest.raises(ValueError, match="1 or more"):
        image_lifecycle_policy(untagged_expiry_days=0, keep_tagged=1)


@pytest.mark.parametrize(
    ("cidr", "zones"), [("10.40.0.0/16", 3), ("172.16.0.0/20", 6), ("10.0.0.0/18", 2)]
)
def test_subnets_do_not_overlap_and_private_ones_are_larger(cidr: str, zones: int) -> None:
    plan = plan_subnets(cidr, zones)
    networks = [ipaddress.IPv4Network(c) for c in plan.public + plan.private]
    vpc = ipaddress.IPv4Network(cidr)
    assert len(plan.public) == len(plan.private) == zones
    assert all(n.subnet_of(vpc) for n in networks)
    assert all(not a.overlaps(b) for i, a in enumerate(networks) for b in networks[i + 1 :])
    assert all(
        ipaddress.ip_network(p).num_addresses > ipaddress.ip_network(q).num_addresses
        for p, q in zip(plan.private, plan.public, strict=True)
    )


def test_adding_a_zone_keeps_existing_subnets_in_place() -> None:
    two, three = plan_subnets("10.40.0.0/16", 2), plan_subnets("10.40.0.0/16", 3)
    assert three.private[:2] == two.private
    assert three.public[:2] == two.public


@needs_simulator
def test_job_roles_grant_the_volume_key_to_sagemaker_and_to_no_one_else() -> None:
    policies = {
        "training": sagemaker_training_policy(
            data_bucket_arn=DATA, models_bucket_arn=MODELS, kms_key_arn=KEY,
            model_package_group_arns=[GROUP], repository_arn=REPOSITORY, log_group_arn=LOGS,
        ),
        "scoring": sagemaker_scoring_policy(
            data_bucket_arn=DATA, models_bucket_arn=MODELS, kms_key_arn=KEY,
            repository_arn=REPOSITORY, log_group_arn=LOGS,
        ),
    }  # fmt: skip
    # The key's own policy leaves its use to IAM in the account, as the stack's key does.
    key_policy = environment_key_policy(
        account_id="111122223333", partition="aws", region="eu-west-1", node_volumes=True
    )

    def grant(key: str, for_aws_resource: str, why: str) -> Request:
        context = {"kms:GrantIsForAWSResource": for_aws_resource}
        return Request("kms:CreateGrant", key, context, why, resource_policy="key")

    for role, policy in policies.items():
        verdicts = evaluate(
            [
                grant(KEY, "true", "SageMaker attaching the job's volume"),
                grant(KEY, "false", "a grant to any principal"),
                grant(KEY.replace("key/k", "key/other"), "true", "another key"),
            ],
            identity={role: policy},
            principal=f"arn:aws:sts::111122223333:assumed-role/{role}/SageMaker",
            account="111122223333",
            resource_policies={"key": key_policy},
        )
        assert [v.allowed for v in verdicts] == [True, False, False], "\n".join(map(str, verdicts))
