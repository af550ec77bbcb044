"""The steps around a SageMaker endpoint's update that the AWS provider does not take, against
moto: the check that fails a deploy SageMaker rolled back, the prune of what the stack retains,
and the pause of autoscaling an instance type change needs; then the dynamic providers that run
them in a deploy, and how Pulumi carries those providers to its provider host.

moto has no UpdateEndpoint: an endpoint "after an update" is one created on the configuration it
ended on (a rollback ends on the old one), which is what DescribeEndpoint shows either way."""

from __future__ import annotations

import base64
import contextlib
import itertools
import subprocess
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from pulumi.dynamic.dynamic import serialize_provider

from infra.components import endpoint_rollout
from infra.components.endpoint_rollout import (
    ROLLOUT_CHECK_ACTIONS,
    SCALING_PAUSE_ACTIONS,
    EndpointRolloutCheck,
)
from infra.operations.endpoint_rollout_check import (
    KEEP_RETAINED,
    SCALABLE_DIMENSION,
    RolloutRolledBackError,
    RolloutUnverifiedError,
    ScalingNotPausedError,
    check_rollout,
    pause_scaling,
    prune_retained,
    scalable_resource_id,
    scaling_blocks_instance_type,
)
from infra.operations.live_state import ENDPOINT_TAG, PACKAGE_TAG, ROLLED_BACK_TAG
from tests.aws import use_emulator_credentials

REGION = "eu-west-1"
ENDPOINT = "demo-prod"
PREFIX = "endpoint-demo-config"
ROLE = "arn:aws:iam::123456789012:role/endpoint-demo-execution-0123456"
NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def package(version: int, environment: str = "prod") -> str:
    return f"arn:aws:sagemaker:{REGION}:123456789012:model-package/demo-{environment}/{version}"


@dataclass
class SageMaker:
    """moto's SageMaker holding what the stack makes for an endpoint: a Model and an
    EndpointConfiguration per version, tagged as the stack tags them."""

    client: Any
    autoscaling: Any

    def version(
        self,
        version: int,
        *,
        endpoint: str = ENDPOINT,
        instance_type: str = "ml.m5.large",
        model: str | None = None,
        suffix: str = "",
    ) -> str:
        """A configuration (and its model, unless `model` names an existing one) for `version`;
        its name, auto-generated as Pulumi does (`<logical name>-<suffix>`)."""
        environment = endpoint.rpartition("-")[2]
        tags = [
            {"Key": PACKAGE_TAG, "Value": package(version, environment)},
            {"Key": ENDPOINT_TAG, "Value": endpoint},
        ]
        if model is None:
            model = f"endpoint-demo-model-{version}{suffix}{environment}"
            self.client.create_model(
                ModelName=model,
                ExecutionRoleArn=ROLE,
                PrimaryContainer={
                    "Image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/serving@sha256:"
                    + "0" * 64,
                    "ModelDataUrl": f"s3://models/models/demo/v{version}/model.tar.gz",
                    "Environment": {"MLSTACK_MODEL_VERSION": str(version)},
                },
                Tags=tags,
            )
        name = f"{PREFIX}-{version}{suffix}{environment}"
        self.client.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "primary",
                    "ModelName": model,
                    "InstanceType": instance_type,
                    "InitialInstanceCount": 2,
                }
            ],
            Tags=tags,
        )
        return name

    def serve(self, config: str, endpoint: str = ENDPOINT) -> None:
        """The endpoint as an update leaves it: InService on `config`."""
        with contextlib.suppress(ClientError):
            self.client.delete_endpoint(EndpointName=endpoint)
        self.client.create_endpoint(EndpointName=endpoint, EndpointConfigName=config)

    def configurations(self) -> list[str]:
        listed = self.client.list_endpoint_configs(MaxResults=100)["EndpointConfigs"]
        return sorted(c["EndpointConfigName"] for c in listed)

    def models(self) -> list[str]:
        return sorted(m["ModelName"] for m in self.client.list_models()["Models"])

    def tags_of(self, config: str) -> dict[str, str]:
        arn = self.client.describe_endpoint_config(EndpointConfigName=config)["EndpointConfigArn"]
        return {t["Key"]: t["Value"] for t in self.client.list_tags(ResourceArn=arn)["Tags"]}

    def register_scaling(self, endpoint: str = ENDPOINT) -> None:
        self.autoscaling.register_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=scalable_resource_id(endpoint, "primary"),
            ScalableDimension=SCALABLE_DIMENSION,
            MinCapacity=1,
            MaxCapacity=4,
        )

    def scaling_targets(self) -> list[str]:
        found = self.autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")
        return [t["ResourceId"] for t in found["ScalableTargets"]]


def denied(client: Any, operation: str) -> None:
    """Make `client` answer `operation` as AWS answers a call the role may not make."""

    def refuse(**_: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": f"not authorized: {operation}"}},
            operation,
        )

    client.meta.events.register(f"before-call.*.{operation}", refuse)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[SageMaker]:
    use_emulator_credentials(monkeypatch, REGION)
    # moto stamps configurations to the millisecond; a clock a second apart per call makes
    # "newest" certain, as it is in AWS for configurations made one deploy after another.
    ticks = itertools.count()
    start = datetime(2026, 12, 1, tzinfo=UTC)
    monkeypatch.setattr(
        "moto.sagemaker.models.utcnow", lambda: start + timedelta(seconds=next(ticks))
    )
    with mock_aws():
        yield SageMaker(
            boto3.client("sagemaker", region_name=REGION),
            boto3.client("application-autoscaling", region_name=REGION),
        )


# --- the check -----------------------------------------------------------------------------------


def test_a_rollout_that_shipped_passes_and_loses_the_mark_an_earlier_attempt_left(
    aws: SageMaker,
) -> None:
    aws.version(1)
    second = aws.version(2)
    aws.client.add_tags(
        ResourceArn=aws.client.describe_endpoint_config(EndpointConfigName=second)[
            "EndpointConfigArn"
        ],
        Tags=[{"Key": ROLLED_BACK_TAG, "Value": "2026-12-05T09:00:00Z"}],
    )
    aws.serve(second)
    check_rollout(aws.client, endpoint=ENDPOINT, expected_config=second, environment="prod")
    assert ROLLED_BACK_TAG not in aws.tags_of(second)


def test_a_rolled_back_rollout_fails_naming_what_serves_and_marks_the_configuration(
    aws: SageMaker,
) -> None:
    first, second = aws.version(1), aws.version(2)
    aws.serve(first)  # SageMaker rolled the update to the second back
    with pytest.raises(RolloutRolledBackError) as failed:
        check_rollout(
            aws.client, endpoint=ENDPOINT, expected_config=second, environment="prod", now=NOW
        )
    assert str(failed.value) == (
        f"endpoint demo-prod did not take {second}: it serves {first} (model version 1, "
        f"package {package(1)}); {second} is marked mlstack:rolled-back; `mlstack rollback prod "
        "--now --reason WHY` pins the version that serves, or fix the model and deploy again"
    )
    assert aws.tags_of(second)[ROLLED_BACK_TAG] == "2026-12-06T10:00:00Z"
    assert ROLLED_BACK_TAG not in aws.tags_of(first)


def test_a_rollback_is_reported_even_when_the_mark_cannot_be_set(aws: SageMaker) -> None:
    first, second = aws.version(1), aws.version(2)
    aws.serve(first)
    denied(aws.client, "AddTags")
    with pytest.raises(RolloutRolledBackError, match=f"it serves {first} "):
        check_rollout(aws.client, endpoint=ENDPOINT, expected_config=second, environment="prod")
    assert ROLLED_BACK_TAG not in aws.tags_of(second)


def test_a_check_that_cannot_read_the_endpoint_fails_in_one_line(aws: SageMaker) -> None:
    second = aws.version(2)
    with pytest.raises(RolloutUnverifiedError) as failed:
        check_rollout(aws.client, endpoint=ENDPOINT, expected_config=second, environment="prod")
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith(f"endpoint demo-prod: whether it serves {second} cannot be read")
    assert "ValidationException: Could not find endpoint" in message
    assert message.endswith("`mlstack verify prod` reads it again")


# --- the prune -----------------------------------------------------------------------------------


def test_a_prune_keeps_the_newest_three_of_the_endpoints_own_and_deletes_the_rest(
    aws: SageMaker,
) -> None:
    configs = [aws.version(v) for v in range(1, 6)]
    theirs = aws.version(1, endpoint="demo-dev")  # same name prefix, another environment
    aws.client.create_endpoint_config(  # not the stack's: no endpoint tag
        EndpointConfigName=f"{PREFIX}-by-hand",
        ProductionVariants=[
            {
                "VariantName": "primary",
                "ModelName": "endpoint-demo-model-5prod",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    aws.serve(configs[-1])
    pruned = prune_retained(
        aws.client, endpoint=ENDPOINT, keep=KEEP_RETAINED, live_config=configs[-1],
        name_contains=PREFIX,
    )  # fmt: skip
    assert pruned.configurations == (configs[1], configs[0])
    assert pruned.models == ("endpoint-demo-model-1prod", "endpoint-demo-model-2prod")
    assert pruned.failures == ()
    assert aws.configurations() == sorted([*configs[2:], theirs, f"{PREFIX}-by-hand"])
    assert aws.models() == [
        "endpoint-demo-model-1dev",
        "endpoint-demo-model-3prod",
        "endpoint-demo-model-4prod",
        "endpoint-demo-model-5prod",
    ]


def test_a_prune_never_deletes_the_serving_configuration_or_the_one_being_deployed(
    aws: SageMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an emergency rollback the endpoint serves an old configuration; while an update
    runs, DescribeEndpoint names the one it moves to in PendingDeploymentSummary."""
    configs = [aws.version(v) for v in range(1, 7)]
    aws.serve(configs[0])
    # Extends moto, which has no UpdateEndpoint and so never shows an update in progress.
    from moto.sagemaker.models import SageMakerModelBackend

    original = SageMakerModelBackend.describe_endpoint

    def in_update(self: Any, endpoint_name: str) -> dict[str, Any]:
        found = dict(original(self, endpoint_name))
        found["PendingDeploymentSummary"] = {"EndpointConfigName": configs[1]}
        return found

    monkeypatch.setattr(SageMakerModelBackend, "describe_endpoint", in_update)
    pruned = prune_retained(
        aws.client, endpoint=ENDPOINT, keep=3, live_config=configs[-1], name_contains=PREFIX
    )
    assert pruned.configurations == (configs[2],)
    assert aws.configurations() == sorted([configs[0], configs[1], *configs[3:]])


def test_a_prune_keeps_a_model_a_kept_configuration_still_runs(aws: SageMaker) -> None:
    """An instance type change makes a new configuration of the same model."""
    old = aws.version(1)
    resized = aws.version(1, model="endpoint-demo-model-1prod", suffix="b")
    newer = [aws.version(v) for v in (2, 3)]
    aws.serve(newer[-1])
    pruned = prune_retained(
        aws.client, endpoint=ENDPOINT, keep=3, live_config=newer[-1], name_contains=PREFIX
    )
    assert pruned.configurations == (old,)
    assert pruned.models == ()
    assert "endpoint-demo-model-1prod" in aws.models()
    assert resized in aws.configurations()


def test_a_prune_that_is_refused_a_call_keeps_what_it_cannot_delete_and_says_why(
    aws: SageMaker,
) -> None:
    configs = [aws.version(v) for v in range(1, 6)]
    aws.serve(configs[-1])
    denied(aws.client, "DeleteModel")
    pruned = prune_retained(
        aws.client, endpoint=ENDPOINT, keep=3, live_config=configs[-1], name_contains=PREFIX
    )
    assert pruned.configurations == (configs[1], configs[0])
    assert pruned.models == ()
    assert pruned.failures == (
        "model endpoint-demo-model-1prod kept: AccessDeniedException: not authorized: DeleteModel",
        "model endpoint-demo-model-2prod kept: AccessDeniedException: not authorized: DeleteModel",
    )
    refused = boto3.client("sagemaker", region_name=REGION)
    denied(refused, "ListEndpointConfigs")
    assert prune_retained(
        refused, endpoint=ENDPOINT, keep=1, live_config=configs[-1], name_contains=PREFIX
    ).failures == ("nothing pruned: AccessDeniedException: not authorized: ListEndpointConfigs",)
    assert len(aws.configurations()) == 3


def test_a_prune_keeps_at_least_the_serving_configuration() -> None:
    with pytest.raises(ValueError, match=r"keep = 0: allowed: 1 or more"):
        prune_retained(None, endpoint=ENDPOINT, keep=0, live_config="x", name_contains=PREFIX)


# --- an instance type change ---------------------------------------------------------------------


def test_an_instance_type_change_is_blocked_only_while_the_variant_is_a_scalable_target(
    aws: SageMaker,
) -> None:
    def blocked(instance_type: str) -> bool:
        return scaling_blocks_instance_type(
            aws.client, aws.autoscaling, endpoint=ENDPOINT, variant="primary",
            instance_type=instance_type,
        )  # fmt: skip

    assert not blocked("ml.m5.xlarge")  # no endpoint yet: it is created, not updated
    aws.serve(aws.version(1, instance_type="ml.m5.large"))
    assert not blocked("ml.m5.xlarge")  # no autoscaling to refuse it
    aws.register_scaling()
    assert not blocked("ml.m5.large")  # a new model on the same type is allowed
    assert blocked("ml.m5.xlarge")
    pause_scaling(aws.autoscaling, endpoint=ENDPOINT, variant="primary")
    assert aws.scaling_targets() == []
    assert not blocked("ml.m5.xlarge")


def test_autoscaling_that_cannot_be_paused_says_how_to_do_it_by_hand(aws: SageMaker) -> None:
    aws.serve(aws.version(1))
    aws.register_scaling()
    denied(aws.autoscaling, "DeregisterScalableTarget")
    with pytest.raises(ScalingNotPausedError) as failed:
        pause_scaling(aws.autoscaling, endpoint=ENDPOINT, variant="primary")
    assert str(failed.value) == (
        "endpoint demo-prod: its autoscaling cannot be paused for the instance type change "
        "(AccessDeniedException: not authorized: DeregisterScalableTarget); deregister it (`aws "
        "application-autoscaling deregister-scalable-target --service-namespace sagemaker "
        "--resource-id endpoint/demo-prod/variant/primary --scalable-dimension "
        "sagemaker:variant:DesiredInstanceCount`), then deploy again: the deploy registers it anew"
    )


# --- the dynamic providers, as a deploy runs them ------------------------------------------------


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every AWS call the providers make, as IAM actions."""
    made: list[str] = []
    prefixes = {"sagemaker": "sagemaker", "application-autoscaling": "application-autoscaling"}

    def recording(service: str, region: str) -> Any:
        client = boto3.client(service, region_name=region)  # type: ignore[call-overload]
        client.meta.events.register(
            "before-call.*.*",
            lambda model, **_: made.append(f"{prefixes[service]}:{model.name}"),
        )
        return client

    monkeypatch.setattr(endpoint_rollout, "aws_client", recording)
    return made


def check_props(expected: str) -> dict[str, Any]:
    return {
        "endpoint": ENDPOINT,
        "expected_config": expected,
        "region": REGION,
        "environment": "prod",
        "keep": float(KEEP_RETAINED),  # numbers cross the provider protocol as floats
        "config_prefix": PREFIX,
    }


def test_a_deploy_that_shipped_records_what_serves_and_what_was_pruned(
    aws: SageMaker, calls: list[str]
) -> None:
    configs = [aws.version(v) for v in range(1, 6)]
    aws.serve(configs[-1])
    provider = endpoint_rollout._RolloutCheckProvider()
    assert provider.diff("demo-prod", check_props(configs[-2]), check_props(configs[-1])).changes
    assert not provider.diff(
        "demo-prod", check_props(configs[-1]), check_props(configs[-1])
    ).changes
    outs = provider.update("demo-prod", check_props(configs[-2]), check_props(configs[-1])).outs
    assert outs is not None
    assert outs["serving_config"] == configs[-1]
    assert outs["pruned_configs"] == [configs[1], configs[0]]
    assert outs["not_pruned"] == []
    assert set(calls) <= set(ROLLOUT_CHECK_ACTIONS), sorted(set(calls) - set(ROLLOUT_CHECK_ACTIONS))


def test_a_deploy_sagemaker_rolled_back_fails_with_one_line_and_no_botocore_frames(
    aws: SageMaker, calls: list[str]
) -> None:
    first, second = aws.version(1), aws.version(2)
    aws.serve(first)
    provider = endpoint_rollout._RolloutCheckProvider()
    with pytest.raises(RolloutRolledBackError) as failed:
        provider.update("demo-prod", check_props(first), check_props(second))
    # What the provider host prints (it formats the traceback of whatever create/update raise).
    printed = "".join(traceback.format_exception(failed.value))
    assert "/botocore/" not in printed
    assert printed.splitlines()[-1].endswith("or fix the model and deploy again"), (
        printed.splitlines()[-1]
    )
    assert aws.configurations() == sorted([first, second])  # nothing pruned after a failure
    aws.client.delete_endpoint(EndpointName=ENDPOINT)
    with pytest.raises(RolloutUnverifiedError) as unread:
        provider.create(check_props(second))
    assert "/botocore/" not in "".join(traceback.format_exception(unread.value))
    assert set(calls) <= set(ROLLOUT_CHECK_ACTIONS)


def test_the_scaling_pause_differs_only_when_an_update_would_be_refused_and_counts_its_pauses(
    aws: SageMaker, calls: list[str]
) -> None:
    provider = endpoint_rollout._ScalingPauseProvider()
    props = {"endpoint": ENDPOINT, "variant": "primary", "region": REGION}
    large, xlarge = (
        {**props, "instance_type": "ml.m5.large"},
        {
            **props,
            "instance_type": "ml.m5.xlarge",
        },
    )
    created = provider.create(large)
    assert created.outs == {**large, "generation": 0}
    aws.serve(aws.version(1, instance_type="ml.m5.large"))
    aws.register_scaling()
    state = {**large, "generation": 0}
    assert not provider.diff(ENDPOINT, state, large).changes  # a new pin on the same type
    assert provider.diff(ENDPOINT, state, xlarge).changes
    updated = provider.update(ENDPOINT, state, xlarge).outs
    assert updated == {**xlarge, "generation": 1}
    assert aws.scaling_targets() == []
    # SageMaker rolled that update back and the deploy registered the target again: the next
    # deploy of the same type must pause it again, though its inputs did not change.
    aws.register_scaling()
    assert provider.diff(ENDPOINT, updated, xlarge).changes
    assert provider.update(ENDPOINT, updated, xlarge).outs == {**xlarge, "generation": 2}
    assert set(calls) == set(SCALING_PAUSE_ACTIONS)


# --- how Pulumi carries the providers ------------------------------------------------------------


@pytest.mark.parametrize(
    "provider", [endpoint_rollout._RolloutCheckProvider, endpoint_rollout._ScalingPauseProvider]
)
def test_a_provider_is_serialized_by_reference_and_the_provider_hosts_python_loads_it(
    provider: Callable[[], Any],
) -> None:
    """What the SDK stores in the `__provider` input and `pulumi-resource-pulumi-python` loads:
    the class's module and name, no code, so the host imports this project's module (it runs
    the project's virtualenv) and a deploy runs the code checked out, never older code."""
    serialized = serialize_provider(provider())
    pickled = base64.b64decode(serialized)
    assert b"infra.components.endpoint_rollout" in pickled
    assert b"check_rollout" not in pickled
    assert len(pickled) < 200
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import base64, sys, dill; p = dill.loads(base64.b64decode(sys.argv[1])); "
            "print(type(p).__module__, type(p).__name__)",
            serialized,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert loaded.stdout.split() == [
        "infra.components.endpoint_rollout",
        provider.__name__,
    ]


def test_a_check_keeps_at_least_the_serving_configuration() -> None:
    with pytest.raises(ValueError, match=r"keep = 0: allowed: 1 or more"):
        EndpointRolloutCheck(
            "x", endpoint=ENDPOINT, expected_config="c", region=REGION, environment="prod",
            config_prefix=PREFIX, keep=0,
        )  # fmt: skip
