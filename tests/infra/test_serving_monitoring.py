"""The monitoring loop of models served on the cluster, through the program as the dev stack
file declares it (the cluster only, capture at 100 %): the servers capture to the capture
bucket with a role that may add objects there and nothing else, a drift job reads that capture,
and alarms watch the Service's running pods (Container Insights) and the drift figures. And what
watches a SageMaker endpoint, as staging and prod declare it: rollback alarms on the fleet a
deployment brings, paging alarms on every fleet, and load above what autoscaling can absorb."""

from __future__ import annotations

import json
from typing import Any

from infra.offline.mocks import RecordedResource
from infra.offline.runner import ProgramRun
from infra.project import naming

from .conftest import run_served

ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
ADDON = "aws:eks/addon:Addon"
ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
CONFIGURATION = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"


def named(run: ProgramRun, resource_type: str, name: str) -> RecordedResource:
    [found] = [
        r
        for r in run.of_type(resource_type)
        if (r.inputs.get("metadata") or {}).get(
            "name", r.inputs.get("name", r.inputs.get("addonName"))
        )
        == name
    ]
    return found


def statements(run: ProgramRun, role_policy: str) -> dict[str, Any]:
    policy = next(r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == role_policy)
    return {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}


def container_env(run: ProgramRun) -> dict[str, str]:
    deployment = named(run, "kubernetes:apps/v1:Deployment", "serving-demo")
    [container] = deployment.inputs["spec"]["template"]["spec"]["containers"]
    return {item["name"]: item["value"] for item in container["env"]}


def test_dev_servers_capture_every_request_under_the_kubernetes_prefix(
    served_runs: dict[str, ProgramRun],
) -> None:
    run = served_runs["dev"]
    bucket = run.outputs["captureBucketName"]
    env = container_env(run)
    assert env["MLSTACK_CAPTURE_URI"] == f"s3://{bucket}/kubernetes"
    assert env["MLSTACK_CAPTURE_PERCENT"] == "100"
    # Filed under the endpoint name a SageMaker endpoint of the model would have.
    assert env["MLSTACK_CAPTURE_ENDPOINT"] == "demo-dev"
    allowed = statements(run, "workloads-serving-permissions")
    capture_arn = next(
        r for r in run.of_type("aws:s3/bucket:Bucket") if r.name == "storage-capture-bucket"
    )
    assert allowed["WriteCapturedTraffic"]["Action"] == ["s3:PutObject"]
    assert allowed["WriteCapturedTraffic"]["Resource"] == [
        f"{capture_arn.props['arn']}/kubernetes/*"
    ]
    assert allowed["EncryptCapturedTraffic"]["Action"] == ["kms:GenerateDataKey"]


def test_without_capture_the_servers_capture_nothing_and_may_write_nothing() -> None:
    run = run_served("dev", dataCapturePercent=0)
    assert not [name for name in container_env(run) if name.startswith("MLSTACK_CAPTURE")]
    assert "WriteCapturedTraffic" not in statements(run, "workloads-serving-permissions")
    assert not [
        job
        for job in run.of_type("kubernetes:batch/v1:CronJob")
        if job.inputs["metadata"]["name"] == "drift-demo"
    ]


def test_dev_checks_drift_daily_on_the_clusters_capture_and_alarms_on_it(
    served_runs: dict[str, ProgramRun],
) -> None:
    run = served_runs["dev"]
    job = named(run, "kubernetes:batch/v1:CronJob", "drift-demo")
    assert job.inputs["spec"]["schedule"] == "0 6 * * *"
    [container] = job.inputs["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    bucket = run.outputs["captureBucketName"]
    assert container["args"][2:6] == [
        *("--capture", f"s3://{bucket}/kubernetes"),
        *("--endpoint", "demo-dev"),
    ]
    alarm = named(run, ALARM, "demo-dev-drift").inputs
    assert "WHERE EndpointName = 'demo-dev'" in alarm["metricQueries"][0]["expression"]
    [reads] = statements(run, "workloads-drift-permissions")["ReadCapturedTraffic"]["Resource"]
    assert reads.endswith("/kubernetes/*")


def test_an_alarm_fires_when_a_models_running_pods_fall_below_its_floor(
    served_runs: dict[str, ProgramRun],
) -> None:
    for stack, floor in (("dev", 1), ("prod", 3)):
        run = served_runs[stack]
        cluster = naming.cluster_name(stack)
        alarm = named(run, ALARM, f"{cluster}-serving-demo-replicas").inputs
        assert (alarm["namespace"], alarm["metricName"]) == (
            "ContainerInsights",
            "service_number_of_running_pods",
        )
        assert alarm["dimensions"] == {
            "ClusterName": cluster,
            "Namespace": "mlstack",
            "Service": "serving-demo",
        }
        assert (alarm["comparisonOperator"], alarm["threshold"]) == ("LessThanThreshold", floor)
        # No datapoint means no agent or no pods: either way nobody is serving.
        assert alarm["treatMissingData"] == "breaching"
        topic = run.of_type("aws:sns/topic:Topic")[0].props["arn"]
        assert alarm["alarmActions"] == [topic]
        body = json.loads(
            run.of_type("aws:cloudwatch/dashboard:Dashboard")[0].inputs["dashboardBody"]
        )
        assert "serving-demo running pods" in [w["properties"]["title"] for w in body["widgets"]]


def test_the_cluster_runs_container_insights_for_metrics_without_shipping_request_logs(
    served_runs: dict[str, ProgramRun],
) -> None:
    run = served_runs["dev"]
    addon = named(run, ADDON, "amazon-cloudwatch-observability").inputs
    assert json.loads(addon["configurationValues"]) == {"containerLogs": {"enabled": False}}
    role = next(
        r
        for r in run.of_type("aws:iam/role:Role")
        if r.name == "cluster-amazon-cloudwatch-observability-role"
    )
    trust = json.loads(role.inputs["assumeRolePolicy"])
    [condition] = [s["Condition"]["StringEquals"] for s in trust["Statement"]]
    assert "system:serviceaccount:amazon-cloudwatch:cloudwatch-agent" in condition.values()


def test_retraining_on_drift_is_off_unless_asked_and_then_may_start_only_training(
    served_runs: dict[str, ProgramRun],
) -> None:
    job = named(served_runs["dev"], "kubernetes:batch/v1:CronJob", "drift-demo").inputs
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert "--retrain-cronjob" not in pod["containers"][0]["args"]
    assert pod["automountServiceAccountToken"] is False
    roles = served_runs["dev"].of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")
    assert "drift-demo-retrain" not in [r.inputs["metadata"]["name"] for r in roles]

    run = run_served("dev", driftRetrains=True)
    job = named(run, "kubernetes:batch/v1:CronJob", "drift-demo").inputs
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"][-2:] == ["--retrain-cronjob", "training-demo"]
    # It calls the API server, so it gets its token, and says why to the scanners.
    assert pod["automountServiceAccountToken"] is True
    assert "CKV_K8S_38=" in job["metadata"]["annotations"]["checkov.io/skip1"]
    role = named(run, "kubernetes:rbac.authorization.k8s.io/v1:Role", "drift-demo-retrain")
    assert role.inputs["rules"] == [
        {
            "apiGroups": ["batch"],
            "resources": ["cronjobs"],
            "resourceNames": ["training-demo"],
            "verbs": ["get"],
        },
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create"]},
    ]
    binding = named(
        run, "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "drift-demo-retrain"
    ).inputs
    assert binding["roleRef"]["name"] == "drift-demo-retrain"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "drift", "namespace": "mlstack"}
    ]


def alarms_by_name(run: ProgramRun) -> dict[str, dict[str, Any]]:
    return {alarm.inputs["name"]: dict(alarm.inputs) for alarm in run.of_type(ALARM)}


def test_rollback_alarms_watch_the_configuration_the_endpoint_is_set_to_and_page_too(
    served_runs: dict[str, ProgramRun],
) -> None:
    """A deployment is stopped when its rollback alarms fire on the old fleet; watching only the
    configuration the endpoint is being set to, they judge the new fleet alone, and a deployment
    away from a failing fleet does not start with them already firing."""
    for stack in ("staging", "prod"):
        run = served_runs[stack]
        [endpoint] = run.of_type(ENDPOINT)
        [configuration] = run.of_type(CONFIGURATION)
        config_name = endpoint.inputs["endpointConfigName"]
        assert config_name == configuration.props["name"]
        rollback = [
            alarm["alarmName"]
            for alarm in endpoint.inputs["deploymentConfig"]["autoRollbackConfiguration"]["alarms"]
        ]
        assert rollback == [f"demo-{stack}-5xx", f"demo-{stack}-latency-p99"], stack
        alarms = alarms_by_name(run)
        every_fleet = {"EndpointName": f"demo-{stack}", "VariantName": "primary"}
        for name in rollback:
            assert alarms[name]["dimensions"] == {**every_fleet, "EndpointConfigName": config_name}
        paging = [f"demo-{stack}-5xx-all-fleets", f"demo-{stack}-latency-p99-all-fleets"]
        for name in paging:
            assert alarms[name]["dimensions"] == every_fleet, name
        topic = run.of_type("aws:sns/topic:Topic")[0].props["arn"]
        for name in [*rollback, *paging]:
            assert alarms[name]["alarmActions"] == alarms[name]["okActions"] == [topic], name


def test_an_endpoint_that_can_scale_pages_when_its_load_stays_above_the_scaling_target(
    served_runs: dict[str, ProgramRun],
) -> None:
    run = served_runs["prod"]
    alarm = alarms_by_name(run)["demo-prod-over-scaling-target"]
    assert (alarm["namespace"], alarm["metricName"], alarm["statistic"]) == (
        "AWS/SageMaker",
        "InvocationsPerInstance",
        "Sum",
    )
    policy = run.of_type("aws:appautoscaling/policy:Policy")[0].inputs
    target = policy["targetTrackingScalingPolicyConfiguration"]["targetValue"]
    assert (alarm["threshold"], alarm["evaluationPeriods"]) == (target, 15)
    assert not [a for a in alarms_by_name(run).values() if a.get("statistic") == "SampleCount"]
    # With its minimum at its maximum, nothing scales, and nothing is paged for it.
    fixed = run_served("staging", endpointMinInstances=2, endpointMaxInstances=2)
    assert "demo-staging-over-scaling-target" not in alarms_by_name(fixed)
    assert "demo-staging-5xx" in alarms_by_name(fixed)
