"""The pinned model served by a SageMaker endpoint, through the program as each stack file
declares it: guarded rollouts, alarms that watch this endpoint, capture, autoscaling, an
execution role that reads only the pinned model, and the environment's topic and budget."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pytest

from infra.components.endpoint_rollout import ROLLOUT_CHECK_TYPE, SCALING_PAUSE_TYPE
from infra.config.stack import load_config
from infra.config.stackfiles import load_stack_settings
from infra.documents.iam import endpoint_execution_policy
from infra.documents.monitoring import endpoint_alarms
from infra.offline.mocks import AwsAnswers, RecordedResource, RecordingMonitor
from infra.offline.registry import offline_registry
from infra.offline.runner import ProgramRun, run_program
from infra.operations.endpoint_rollout_check import KEEP_RETAINED
from infra.operations.live_state import ENDPOINT_TAG, PACKAGE_TAG
from infra.project import naming, outputs
from tests.iam import Request, evaluate, needs_simulator

from .conftest import run_served

ENDPOINT = "aws:sagemaker/endpoint:Endpoint"
CONFIGURATION = "aws:sagemaker/endpointConfiguration:EndpointConfiguration"
MODEL = "aws:sagemaker/model:Model"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"


def one(run: ProgramRun, resource_type: str) -> RecordedResource:
    [found] = run.of_type(resource_type)
    return found


def test_staging_serves_the_pin_on_an_endpoint_that_shifts_a_canary_and_rolls_back(
    served_runs: dict[str, ProgramRun],
) -> None:
    run = served_runs["staging"]
    endpoint = one(run, ENDPOINT).inputs
    assert endpoint["name"] == "demo-staging"
    assert endpoint["endpointConfigName"] == one(run, CONFIGURATION).props["name"]
    policy = endpoint["deploymentConfig"]["blueGreenUpdatePolicy"]
    assert policy["trafficRoutingConfiguration"] == {
        "type": "CANARY",
        "waitIntervalInSeconds": 300,
        "canarySize": {"type": "CAPACITY_PERCENT", "value": 10},
    }
    alarms = {a.inputs["name"]: a.inputs for a in run.of_type(ALARM)}
    rollback = [
        a["alarmName"] for a in endpoint["deploymentConfig"]["autoRollbackConfiguration"]["alarms"]
    ]
    assert rollback == ["demo-staging-5xx", "demo-staging-latency-p99"]
    for name in rollback:
        assert alarms[name]["dimensions"] == {
            "EndpointName": "demo-staging",
            "VariantName": "primary",
            "EndpointConfigName": endpoint["endpointConfigName"],
        }
    # Latency is published in microseconds.
    assert alarms["demo-staging-latency-p99"]["threshold"] == 250_000
    assert alarms["demo-staging-latency-p99"]["extendedStatistic"] == "p99"


def test_prod_shifts_in_linear_steps_on_at_least_two_instances(
    served_runs: dict[str, ProgramRun],
) -> None:
    run = served_runs["prod"]
    routing = one(run, ENDPOINT).inputs["deploymentConfig"]["blueGreenUpdatePolicy"][
        "trafficRoutingConfiguration"
    ]
    assert routing == {
        "type": "LINEAR",
        "waitIntervalInSeconds": 600,
        "linearStepSize": {"type": "CAPACITY_PERCENT", "value": 33},
    }
    [variant] = one(run, CONFIGURATION).inputs["productionVariants"]
    # A new configuration starts at the most autoscaling allows (see the test of a deploy
    # under load); autoscaling keeps at least two.
    assert (variant["instanceType"], variant["initialInstanceCount"]) == ("ml.m6i.xlarge", 6)
    target = one(run, "aws:appautoscaling/target:Target").inputs
    assert (target["minCapacity"], target["maxCapacity"]) == (2, 6)
    assert target["resourceId"] == "endpoint/demo-prod/variant/primary"
    policy = one(run, "aws:appautoscaling/policy:Policy").inputs
    tracking = policy["targetTrackingScalingPolicyConfiguration"]
    assert tracking["predefinedMetricSpecification"] == {
        "predefinedMetricType": "SageMakerVariantInvocationsPerInstance"
    }
    assert tracking["targetValue"] == 1000


def test_the_endpoint_runs_the_pinned_version_from_the_built_image_encrypted_and_captured(
    served_runs: dict[str, ProgramRun],
) -> None:
    run = served_runs["staging"]
    model = one(run, MODEL).inputs
    container = model["primaryContainer"]
    assert container["image"] == run.outputs["servingImage"]
    assert "@sha256:" in container["image"]
    assert container["modelDataUrl"].endswith("model.tar.gz")
    assert container["environment"] == {"MLSTACK_MODEL_VERSION": "1"}
    assert model["enableNetworkIsolation"] is True
    configuration = one(run, CONFIGURATION).inputs
    [key] = run.of_type("aws:kms/key:Key")
    assert configuration["kmsKeyArn"] == key.props["arn"]
    capture = configuration["dataCaptureConfig"]
    assert capture["initialSamplingPercentage"] == 10
    assert capture["kmsKeyId"] == key.props["arn"]
    assert capture["destinationS3Uri"] == f"s3://{run.outputs['captureBucketName']}/sagemaker"
    assert [o["captureMode"] for o in capture["captureOptions"]] == ["Input", "Output"]


def test_the_execution_role_reads_the_models_versions_and_no_other_object(
    served_runs: dict[str, ProgramRun],
) -> None:
    run = served_runs["staging"]
    role = next(r for r in run.of_type("aws:iam/role:Role") if r.name == "endpoint-demo-execution")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    assert trust["Statement"][0]["Principal"] == {"Service": "sagemaker.amazonaws.com"}
    policy = next(
        r
        for r in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if r.name == "endpoint-demo-execution"
    )
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    # Every version of the model, not only the pinned one: a rollback runs an earlier version
    # on a fleet that still scales out and replaces instances.
    models = run.outputs["modelsBucketName"]
    assert statements["ReadTheModelsVersions"]["Resource"] == [
        f"arn:aws:s3:::{models}/models/demo/*"
    ]
    # It is the model's, declared by the platform; the workloads hand it to SageMaker.
    assert role.urn.split("::")[1] == "mlstack"
    assert one(run, MODEL).inputs["executionRoleArn"] == role.props["arn"]
    assert statements["WriteCapturedTraffic"]["Resource"] == [
        f"arn:aws:s3:::{run.outputs['captureBucketName']}/sagemaker/demo-staging/*"
    ]
    repository = next(
        r for r in run.of_type("aws:ecr/repository:Repository") if "serving" in r.name
    )
    assert statements["PullServingImage"]["Resource"] == [repository.props["arn"]]


def test_a_new_pin_replaces_the_model_and_keeps_the_endpoint() -> None:
    """SageMaker has no UpdateModel or UpdateEndpointConfig: a changed Model or
    EndpointConfiguration is a new one, under a new auto-generated name, and the Endpoint,
    whose name is fixed, takes the new configuration with UpdateEndpoint (blue/green)."""
    before, after = run_served("staging", 1), run_served("staging", 2)

    def inputs(run: ProgramRun) -> dict[str, Mapping[str, Any]]:
        return {r.urn: r.inputs for r in run.resources}

    was, now = inputs(before), inputs(after)
    changed = {r.resource_type for r in after.resources if was.get(r.urn) != r.inputs}
    assert {MODEL, CONFIGURATION} <= changed
    assert ENDPOINT not in changed
    assert one(after, ENDPOINT).inputs["name"] == one(before, ENDPOINT).inputs["name"]
    assert set(now) == set(was)  # no endpoint, alarm or scaling target added or removed


def test_capture_off_declares_no_capture() -> None:
    run = run_served("staging", dataCapturePercent=0)
    assert "dataCaptureConfig" not in one(run, CONFIGURATION).inputs


def test_dev_serves_on_the_cluster_only_and_still_has_its_topic_and_budget(
    served_runs: dict[str, ProgramRun],
) -> None:
    run = served_runs["dev"]
    assert run.of_type(ENDPOINT) == []
    # No endpoint alarms: only the cluster's serving and its drift are watched.
    assert sorted(a.inputs["name"] for a in run.of_type(ALARM)) == [
        "demo-dev-drift",
        "mlstack-dev-serving-demo-replicas",
    ]
    topic = one(run, "aws:sns/topic:Topic")
    [key] = run.of_type("aws:kms/key:Key")
    assert topic.inputs["kmsMasterKeyId"] == key.props["arn"]
    assert run.of_type("aws:sns/topicSubscription:TopicSubscription") == []
    budget = one(run, "aws:budgets/budget:Budget").inputs
    assert (budget["limitAmount"], budget["timeUnit"]) == ("300", "MONTHLY")
    assert budget["costFilters"] == [{"name": "TagKeyValue", "values": ["user:environment$dev"]}]
    notices = budget["notifications"]
    # Actual cost too: a new account has no forecast for weeks.
    assert [(n["threshold"], n["notificationType"]) for n in notices] == [
        (80, "ACTUAL"),
        (100, "ACTUAL"),
        (80, "FORECASTED"),
        (100, "FORECASTED"),
    ]
    assert all(n["subscriberSnsTopicArns"] == [topic.props["arn"]] for n in notices)


def test_prod_alarms_reach_the_on_call_address_and_its_dashboard_shows_the_endpoint(
    served_runs: dict[str, ProgramRun],
) -> None:
    run = served_runs["prod"]
    subscription = one(run, "aws:sns/topicSubscription:TopicSubscription").inputs
    assert (subscription["protocol"], subscription["endpoint"]) == (
        "email",
        "ml-oncall@example.com",
    )
    topic = one(run, "aws:sns/topic:Topic").props["arn"]
    assert all(a.inputs["alarmActions"] == [topic] for a in run.of_type(ALARM))
    body = json.loads(one(run, "aws:cloudwatch/dashboard:Dashboard").inputs["dashboardBody"])
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert titles == [
        "demo-prod invocations",
        "demo-prod errors",
        "demo-prod model latency p99 (µs)",
        "demo-prod invocations per instance",
        "serving-demo running pods",
        "demo-prod drift by feature (PSI)",
    ]


def test_every_alarm_needs_the_dimensions_of_what_it_watches() -> None:
    alarms = endpoint_alarms(
        endpoint="e",
        variant="v",
        configuration="c",
        latency_p99_ms=100,
        min_instances=1,
        max_instances=3,
        invocations_per_instance=1000,
    )
    every_fleet = {"EndpointName": "e", "VariantName": "v"}
    assert {a.name: a.dimensions for a in alarms.values()} == {
        "e-5xx": {**every_fleet, "EndpointConfigName": "c"},
        "e-latency-p99": {**every_fleet, "EndpointConfigName": "c"},
        "e-5xx-all-fleets": every_fleet,
        "e-latency-p99-all-fleets": every_fleet,
        "e-over-scaling-target": every_fleet,
    }
    with pytest.raises(ValueError, match="dimensions"):
        type(alarms["errors"])(**{**alarms["errors"].__dict__, "dimensions": {}})


def test_each_served_model_gets_a_drift_job_on_the_cluster_and_an_alarm_on_its_figures(
    served_runs: dict[str, ProgramRun],
) -> None:
    run = served_runs["staging"]
    [job] = [
        r
        for r in run.of_type("kubernetes:batch/v1:CronJob")
        if r.inputs["metadata"]["name"] == "drift-demo"
    ]
    spec = job.inputs["spec"]
    assert spec["schedule"] == "0 6 * * *"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "drift"
    [container] = pod["containers"]
    assert container["image"] == run.outputs["servingImage"]
    assert container["command"] == ["python", "-m", "serving.drift"]
    bucket = run.outputs["captureBucketName"]
    # staging serves on both targets: the job reads what each captured.
    assert list(zip(container["args"][::2], container["args"][1::2], strict=True)) == [
        ("--model-package", "demo-staging/1"),
        ("--capture", f"s3://{bucket}/sagemaker"),
        ("--capture", f"s3://{bucket}/kubernetes"),
        ("--endpoint", "demo-staging"),
        ("--variant", "primary"),
        ("--hours", "24"),
        ("--psi-threshold", "0.2"),
        ("--out-of-range-threshold", "0.05"),
    ]
    [alarm] = [a.inputs for a in run.of_type(ALARM) if a.inputs["name"] == "demo-staging-drift"]
    [query] = alarm["metricQueries"]
    assert "FROM \"mlstack/Drift\" WHERE EndpointName = 'demo-staging'" in query["expression"]
    assert alarm["threshold"] == 0.2
    # Its role may publish figures to the drift namespace only.
    policy = next(
        r
        for r in run.of_type("aws:iam/rolePolicy:RolePolicy")
        if r.name == "workloads-drift-permissions"
    )
    statements = {s["Sid"]: s for s in json.loads(policy.inputs["policy"])["Statement"]}
    assert statements["PublishDriftFigures"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "mlstack/Drift"}
    }


def test_without_capture_or_a_schedule_there_is_no_drift_job() -> None:
    for overrides in ({"dataCapturePercent": 0}, {"driftSchedule": ""}):
        run = run_served("staging", **overrides)
        names = [r.inputs["metadata"]["name"] for r in run.of_type("kubernetes:batch/v1:CronJob")]
        assert "drift-demo" not in names, overrides
        assert "demo-staging-drift" not in [a.inputs["name"] for a in run.of_type(ALARM)]


def test_a_stack_without_the_cluster_can_still_serve_on_sagemaker() -> None:
    run = run_served("local", servingTarget="sagemaker")
    assert one(run, ENDPOINT).inputs["name"] == "demo-local"
    assert "@sha256:" in one(run, MODEL).inputs["primaryContainer"]["image"]
    assert not [r for r in run.resources if r.resource_type.startswith("kubernetes:")]
    # Training has no cluster to run on, so SageMaker training jobs are its engine.
    builds = [r.name for r in run.resources if r.resource_type.startswith("docker-build:")]
    assert sorted(builds) == ["build-serving", "build-training"]
    training = run.outputs[outputs.TRAINING_IMAGE].split("@")[0]
    assert training == run.outputs[outputs.TRAINING_REPOSITORY_URL]
    # The drift job runs on the cluster: without one, no job and no alarm on its figures.
    assert "demo-local-drift" not in [a.inputs["name"] for a in run.of_type(ALARM)]


# --- what SageMaker does that the provider does not follow ----------------------------------------

ENDPOINT_STACKS = ("staging", "prod")
"""The stack files that serve the pinned model on a SageMaker endpoint."""
ROLLBACK_ALARM_NAMES = ("{endpoint}-5xx", "{endpoint}-latency-p99")
"""The alarms every endpoint rolls back on, by name. `auto_rollback_configuration` forces a new
endpoint in the AWS provider (terraform-provider-aws, internal/service/sagemaker/endpoint.go:
`ForceNew: true`), and the endpoint's fixed name makes that replacement fail: changing these
names replaces the endpoint, and needs an explicit migration rather than a `pulumi up`."""


@pytest.mark.parametrize("stack", ENDPOINT_STACKS)
def test_the_rollback_alarms_keep_their_names(
    served_runs: dict[str, ProgramRun], stack: str
) -> None:
    endpoint = one(served_runs[stack], ENDPOINT).inputs
    rollback = endpoint["deploymentConfig"]["autoRollbackConfiguration"]["alarms"]
    assert [a["alarmName"] for a in rollback] == [
        name.format(endpoint=endpoint["name"]) for name in ROLLBACK_ALARM_NAMES
    ]


@pytest.mark.parametrize("stack", ENDPOINT_STACKS)
def test_a_deploy_under_load_keeps_the_instance_count(
    served_runs: dict[str, ProgramRun], stack: str
) -> None:
    """UpdateEndpoint starts the new fleet at the configuration's initial count (the provider
    cannot ask to retain the running one), and autoscaling waits while it runs: a configuration
    that starts at the minimum would drop a loaded endpoint to it."""
    run = served_runs[stack]
    [variant] = one(run, CONFIGURATION).inputs["productionVariants"]
    target = one(run, "aws:appautoscaling/target:Target").inputs
    allowed = range(target["minCapacity"], target["maxCapacity"] + 1)
    assert all(variant["initialInstanceCount"] >= count for count in allowed)


@pytest.mark.parametrize("stack", ENDPOINT_STACKS)
def test_pulumi_never_deletes_a_model_or_configuration_the_endpoint_may_serve_again(
    served_runs: dict[str, ProgramRun], stack: str
) -> None:
    run = served_runs[stack]
    for resource_type in (MODEL, CONFIGURATION):
        retained = one(run, resource_type)
        assert retained.retain_on_delete, retained.name
        assert retained.inputs["tags"] == {
            PACKAGE_TAG: f"arn:aws:sagemaker:eu-west-1:123456789012:model-package/demo-{stack}/1",
            ENDPOINT_TAG: f"demo-{stack}",
        }, retained.name


@pytest.mark.parametrize("stack", ENDPOINT_STACKS)
def test_a_deploy_fails_unless_the_endpoint_serves_what_it_deployed(
    served_runs: dict[str, ProgramRun], stack: str
) -> None:
    run = served_runs[stack]
    [check] = run.of_type(ROLLOUT_CHECK_TYPE)
    endpoint, configuration = one(run, ENDPOINT), one(run, CONFIGURATION)
    assert endpoint.urn in check.dependencies  # it runs after the endpoint's update
    assert check.inputs["expected_config"] == configuration.props["name"]
    assert check.inputs["endpoint"] == endpoint.inputs["name"]
    assert check.inputs["environment"] == stack
    assert check.inputs["region"] == "eu-west-1"  # the stack's AWS provider's
    assert check.inputs["keep"] == KEEP_RETAINED
    # It finds the endpoint's retained configurations by the start of their generated names.
    assert configuration.props["name"].startswith(check.inputs["config_prefix"] + "-")
    assert check.parent_urn == one(run, "mlstack:sagemaker:Endpoint").urn


def test_a_new_pin_is_checked_again_and_nothing_else_of_the_check_changes() -> None:
    before, after = run_served("staging", 1), run_served("staging", 2)
    [was], [now] = before.of_type(ROLLOUT_CHECK_TYPE), after.of_type(ROLLOUT_CHECK_TYPE)
    # Offline, the generated name does not change with the pin; in AWS it does, and so the
    # check's `expected_config`, which is what makes it run.
    assert now.inputs["expected_config"] == one(after, CONFIGURATION).props["name"]
    assert {k: v for k, v in now.inputs.items() if k != "expected_config"} == {
        k: v for k, v in was.inputs.items() if k != "expected_config"
    }


def run_with_pauses(stack: str, generation: int, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The stack serving the demo model, its `ScalingPause` having paused autoscaling
    `generation` times, and the engine's registration requests by type and name."""
    requests: dict[tuple[str, str], Any] = {}
    original = RecordingMonitor.RegisterResource

    def register(self: RecordingMonitor, request: Any) -> Any:
        requests[request.type, request.name] = request
        return original(self, request)

    monkeypatch.setattr(RecordingMonitor, "RegisterResource", register)
    config = load_config(load_stack_settings(stack).values)
    answers = AwsAnswers(region=config.region)
    answers.computed[SCALING_PAUSE_TYPE] = lambda *_: {"generation": generation}
    with offline_registry(config.environment, {"demo": 1}, config.region):
        run = run_program(
            stack, overrides={"mlstack:servingModelVersions": ["demo=1"]}, answers=answers
        )
    return run, requests


def test_an_instance_type_change_pauses_autoscaling_before_the_update_and_registers_it_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SageMaker refuses to change the instance type of a variant that is a registered scalable
    target ("Update endpoints that use auto scaling", SageMaker developer guide;
    hashicorp/terraform-provider-aws#14337). `ScalingPause` deregisters it before the
    Endpoint's update and counts it; the scaling Target and Policy, which the engine registers
    after the update, are replaced whenever the count grows — deleted first, since the new ones
    name the same variant."""
    run, requests = run_with_pauses("prod", 4, monkeypatch)
    [pause] = run.of_type(SCALING_PAUSE_TYPE)
    assert pause.inputs["instance_type"] == "ml.m6i.xlarge"
    assert (pause.inputs["endpoint"], pause.inputs["variant"]) == ("demo-prod", "primary")
    endpoint = one(run, ENDPOINT)
    assert pause.urn in endpoint.dependencies
    for resource_type in ("aws:appautoscaling/target:Target", "aws:appautoscaling/policy:Policy"):
        request = requests[resource_type, one(run, resource_type).name]
        assert request.replacement_trigger.number_value == 4, resource_type
        assert request.deleteBeforeReplace, resource_type
    assert endpoint.urn in one(run, "aws:appautoscaling/target:Target").dependencies


@needs_simulator
def test_the_execution_role_reads_the_model_data_of_every_version_it_may_fall_back_to() -> None:
    """A rollback runs an earlier version's Model, whose data lies beside the pinned one's under
    the model's prefix; another model's does not."""
    bucket = "storage-models-bucket-0123456"
    policy = endpoint_execution_policy(
        partition="aws",
        model_prefix=f"s3://{bucket}/models/demo/",
        capture_prefix="s3://capture/sagemaker/demo-prod/",
        kms_key_arn="arn:aws:kms:eu-west-1:123456789012:key/k",
        repository_arn="arn:aws:ecr:eu-west-1:123456789012:repository/serving",
        log_group_arn="arn:aws:logs:eu-west-1:123456789012:log-group:/aws/sagemaker/Endpoints/x",
        rollback_alarm_arns=["arn:aws:cloudwatch:eu-west-1:123456789012:alarm:demo-prod-5xx"],
    )
    versions = [
        f"arn:aws:s3:::{bucket}/models/demo/{data}-{model}/model.tar.gz"
        for data, model in (("3f2a9c", "9c1d07"), ("77b0e1", "a4e2f3"))
    ]
    neighbours = [
        f"arn:aws:s3:::{bucket}/models/churn/3f2a9c-9c1d07/model.tar.gz",
        f"arn:aws:s3:::{bucket}/models/demolition/3f2a9c-9c1d07/model.tar.gz",
    ]
    found = evaluate(
        [Request("s3:GetObject", arn, why="a version") for arn in [*versions, *neighbours]],
        identity={"execution": policy},
        principal="arn:aws:iam::123456789012:role/endpoint-demo-execution-0123456",
        account="123456789012",
    )
    assert [v.allowed for v in found] == [True, True, False, False], "\n".join(map(str, found))


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_longest_model_name_config_allows_gives_names_within_every_limit(stack: str) -> None:
    model = "m" * naming.MAX_MODEL_NAME
    config = load_config(load_stack_settings(stack).values)
    values = {"mlstack:models": [model], "mlstack:servingModelVersions": [f"{model}=1"]}
    with offline_registry(config.environment, {model: 1}, config.region):
        run = run_program(stack, overrides=values)
    limits = {
        "aws:iam/role:Role": 64,
        "aws:sagemaker/model:Model": 63,
        "aws:sagemaker/endpointConfiguration:EndpointConfiguration": 63,
        "aws:sagemaker/endpoint:Endpoint": 63,
        "kubernetes:batch/v1:CronJob": 52,
        "kubernetes:core/v1:Service": 63,
    }
    checked = []
    for resource in run.resources:
        limit = limits.get(resource.resource_type)
        if limit is None:
            continue
        metadata = resource.inputs.get("metadata") or {}
        name = str(metadata.get("name") or resource.props.get("name") or resource.physical_id)
        checked.append(resource.resource_type)
        assert len(name) <= limit, f"{resource.resource_type} {name}: {len(name)} > {limit}"
        assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", name), name
    # The names made from the model were among them.
    expected = {"aws:iam/role:Role", "kubernetes:batch/v1:CronJob"}
    if stack == "prod":
        expected |= {
            "aws:sagemaker/model:Model",
            "aws:sagemaker/endpointConfiguration:EndpointConfiguration",
        }
    assert expected <= set(checked)
