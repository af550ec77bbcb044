"""The pure builders of policy, lifecycle and alarm documents, checked for what they grant, deny
and watch."""

from __future__ import annotations

from typing import Any

from infra.documents.iam import endpoint_execution_policy
from infra.documents.kms import environment_key_policy
from infra.documents.monitoring import Alarm, dashboard_body, endpoint_alarms, rollback_alarm_names
from infra.documents.s3 import lifecycle_rules, secure_bucket_policy
from tests.iam import Request, evaluate, needs_simulator

BUCKET = "arn:aws:s3:::models-abc"
KEY = "arn:aws:kms:eu-west-1:111122223333:key/k-1"


def by_sid(document: dict) -> dict[str, dict]:  # type: ignore[type-arg]
    return {statement["Sid"]: statement for statement in document["Statement"]}


def test_key_policy_gives_administration_to_the_account_not_to_everyone() -> None:
    policy = environment_key_policy(
        account_id="111122223333", partition="aws", region="eu-west-1", node_volumes=True
    )
    statements = by_sid(policy)
    admin = statements["AccountAdministersKeyThroughIam"]
    assert admin["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    assert all(s["Principal"] != "*" for s in policy["Statement"])


def test_key_policy_lets_only_this_accounts_log_groups_in_this_region_encrypt() -> None:
    policy = environment_key_policy(
        account_id="111122223333", partition="aws-cn", region="cn-north-1", node_volumes=True
    )
    logs = by_sid(policy)["CloudWatchLogsOfThisAccountEncrypt"]
    assert logs["Principal"] == {"Service": "logs.cn-north-1.amazonaws.com"}
    assert logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"] == (
        "arn:aws-cn:logs:cn-north-1:111122223333:log-group:*"
    )
    assert "kms:*" not in logs["Action"]
    assert not any(action.startswith(("kms:Delete", "kms:Put")) for action in logs["Action"])


def test_key_policy_lets_auto_scaling_encrypt_node_disks_and_grant_only_for_aws_resources() -> None:
    policy = environment_key_policy(
        account_id="111122223333", partition="aws", region="eu-west-1", node_volumes=True
    )
    statements = by_sid(policy)
    role = (
        "arn:aws:iam::111122223333:role/aws-service-role/autoscaling.amazonaws.com/"
        "AWSServiceRoleForAutoScaling"
    )
    use, grants = (
        statements["AutoScalingEncryptsNodeVolumes"],
        statements["AutoScalingGrantsForNodeVolumes"],
    )
    assert use["Principal"] == grants["Principal"] == {"AWS": role}
    assert "kms:CreateGrant" not in use["Action"]
    assert grants["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}


def test_bucket_policy_denies_plain_http_and_old_tls_on_bucket_and_objects() -> None:
    statements = by_sid(secure_bucket_policy(bucket_arn=BUCKET, kms_key_arn=KEY))
    tls = statements["DenyInsecureTransport"]
    assert (tls["Effect"], tls["Principal"], tls["Action"]) == ("Deny", "*", "s3:*")
    assert tls["Resource"] == [BUCKET, f"{BUCKET}/*"]
    assert tls["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statements["DenyOutdatedTls"]["Condition"] == {
        "NumericLessThan": {"s3:TlsVersion": "1.2"}
    }


def test_bucket_policy_refuses_uploads_under_another_key_or_s3_managed_keys() -> None:
    statements = by_sid(secure_bucket_policy(bucket_arn=BUCKET, kms_key_arn=KEY))
    other_key = statements["DenyUploadsNotEncryptedWithEnvironmentKey"]
    assert other_key["Action"] == "s3:PutObject"
    assert other_key["Resource"] == f"{BUCKET}/*"
    assert other_key["Condition"]["StringNotEqualsIfExists"] == {
        "s3:x-amz-server-side-encryption-aws-kms-key-id": KEY
    }
    sse_s3 = statements["DenyUploadsWithS3ManagedKeys"]
    assert sse_s3["Condition"] == {"StringEquals": {"s3:x-amz-server-side-encryption": "AES256"}}
    assert all(s["Effect"] == "Deny" for s in statements.values())


def test_lifecycle_rules_bound_old_versions_and_abandoned_uploads() -> None:
    rules = {
        r["id"]: r for r in lifecycle_rules(noncurrent_version_days=30, incomplete_upload_days=2)
    }
    assert set(rules) == {"expire-noncurrent-versions", "abort-incomplete-multipart-uploads"}
    assert rules["expire-noncurrent-versions"]["noncurrent_version_expiration"] == {
        "noncurrent_days": 30
    }
    assert rules["abort-incomplete-multipart-uploads"]["abort_incomplete_multipart_upload"] == {
        "days_after_initiation": 2
    }
    assert all(r["status"] == "Enabled" and r["filter"] == {"prefix": ""} for r in rules.values())


def test_lifecycle_rules_expire_live_objects_only_when_asked() -> None:
    rules = lifecycle_rules(
        noncurrent_version_days=30, incomplete_upload_days=2, current_version_days=14
    )
    expiring = [r for r in rules if "expiration" in r]
    assert [r["expiration"] for r in expiring] == [{"days": 14}]


ACCOUNT = "111122223333"
ENDPOINT_LOGS = f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/demo-prod"


def alarms_of(**overrides: Any) -> dict[str, Alarm]:
    arguments: dict[str, Any] = {
        "endpoint": "demo-prod",
        "variant": "primary",
        "configuration": "demo-prod-config-1a2b",
        "latency_p99_ms": 250,
        "min_instances": 2,
        "max_instances": 6,
        "invocations_per_instance": 1000,
    }
    return endpoint_alarms(**{**arguments, **overrides})


def test_rollback_alarms_watch_the_new_fleet_and_paging_alarms_every_fleet() -> None:
    alarms = {alarm.name: alarm for alarm in alarms_of().values()}
    every_fleet = {"EndpointName": "demo-prod", "VariantName": "primary"}
    new_fleet = {**every_fleet, "EndpointConfigName": "demo-prod-config-1a2b"}
    # The endpoint's deployment configuration names these two: their names are fixed.
    assert alarms["demo-prod-5xx"].dimensions == new_fleet
    assert alarms["demo-prod-latency-p99"].dimensions == new_fleet
    assert alarms["demo-prod-5xx-all-fleets"].dimensions == every_fleet
    assert alarms["demo-prod-latency-p99-all-fleets"].dimensions == every_fleet
    for signal in ("5xx", "latency-p99"):
        rollback, paging = alarms[f"demo-prod-{signal}"], alarms[f"demo-prod-{signal}-all-fleets"]
        assert (rollback.metric, rollback.threshold) == (paging.metric, paging.threshold)
    assert alarms["demo-prod-latency-p99"].threshold == 250_000  # microseconds


def test_the_endpoint_outgrowing_its_autoscaling_is_told_by_load_not_by_counting_instances() -> (
    None
):
    alarm = alarms_of()["over-scaling-target"]
    assert (alarm.namespace, alarm.metric, alarm.statistic) == (
        "AWS/SageMaker",
        "InvocationsPerInstance",
        "Sum",
    )
    assert alarm.dimensions == {"EndpointName": "demo-prod", "VariantName": "primary"}
    # Above the target tracking's own target, a full quarter of an hour.
    assert (alarm.comparison, alarm.threshold) == ("GreaterThanThreshold", 1000)
    assert (alarm.period_seconds, alarm.evaluation_periods, alarm.datapoints_to_alarm) == (
        60,
        15,
        15,
    )
    assert "6 instances" in alarm.description
    assert not [a for a in alarms_of().values() if a.statistic == "SampleCount"]


def test_an_endpoint_that_cannot_scale_has_no_alarm_for_outgrowing_its_scaling() -> None:
    assert sorted(alarms_of(min_instances=3, max_instances=3)) == [
        "errors",
        "errors-all-fleets",
        "latency",
        "latency-all-fleets",
    ]


def test_the_dashboard_graphs_invocations_per_instance_not_cpu_samples() -> None:
    body = dashboard_body(region="eu-west-1", endpoints=[("demo-prod", "primary")])
    graphs = {w["properties"]["title"]: w["properties"] for w in body["widgets"]}
    load = graphs["demo-prod invocations per instance"]
    assert load["metrics"] == [
        [
            "AWS/SageMaker",
            "InvocationsPerInstance",
            "EndpointName",
            "demo-prod",
            "VariantName",
            "primary",
        ]
    ]
    assert load["stat"] == "Sum"
    assert not [g for g in graphs.values() if g["stat"] == "SampleCount"]


def execution_policy() -> dict[str, Any]:
    return endpoint_execution_policy(
        partition="aws",
        model_prefix="s3://models-abc/models/demo/",
        capture_prefix="s3://capture-abc/sagemaker/demo-prod/",
        kms_key_arn=KEY,
        repository_arn=f"arn:aws:ecr:eu-west-1:{ACCOUNT}:repository/serving",
        log_group_arn=ENDPOINT_LOGS,
        rollback_alarm_arns=[
            f"arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:{name}"
            for name in rollback_alarm_names("demo-prod")
        ],
    )


@needs_simulator
def test_an_endpoints_role_reads_its_rollback_alarms_as_sagemaker_requires_and_no_others() -> None:
    """SageMaker reads the auto-rollback alarms with the execution role during a deploy."""

    def describe(alarm: str) -> Request:
        arn = f"arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:{alarm}"
        return Request("cloudwatch:DescribeAlarms", arn, {}, alarm)

    found = evaluate(
        [
            describe("demo-prod-5xx"),
            describe("demo-prod-latency-p99"),
            describe("churn-prod-5xx"),
        ],
        identity={"execution": execution_policy()},
        principal=f"arn:aws:sts::{ACCOUNT}:assumed-role/endpoint-demo-execution/SageMaker",
        account=ACCOUNT,
    )
    assert [v.allowed for v in found] == [True, True, False], "\n".join(map(str, found))


def test_an_endpoints_role_may_publish_metrics_to_the_endpoint_instance_namespace_only() -> None:
    publish = by_sid(execution_policy())["PublishInstanceMetrics"]
    assert publish["Action"] == ["cloudwatch:PutMetricData"]
    assert publish["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "/aws/sagemaker/Endpoints"}
    }


@needs_simulator
def test_iam_lets_an_endpoint_publish_its_instance_metrics_and_nothing_beside_them() -> None:
    def publish(namespace: str) -> Request:
        return Request(
            "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": namespace}, namespace
        )

    found = evaluate(
        [
            publish("/aws/sagemaker/Endpoints"),
            # The invocation metrics the rollback alarms read, and the drift job's figures.
            publish("AWS/SageMaker"),
            publish("mlstack/Drift"),
        ],
        identity={"execution": execution_policy()},
        principal=f"arn:aws:sts::{ACCOUNT}:assumed-role/endpoint-demo-execution/SageMaker",
        account=ACCOUNT,
    )
    assert [v.allowed for v in found] == [True, False, False], "\n".join(map(str, found))
