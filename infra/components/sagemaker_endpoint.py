"""A pinned model version served by a SageMaker endpoint, with guarded rollouts.

The endpoint keeps its name across versions: a new pin replaces the Model and the
EndpointConfiguration (both auto-named) and updates the Endpoint in place, which SageMaker
carries out blue/green, shifting traffic in steps while the alarms on this endpoint and variant
watch, and rolling back when one fires. The role it runs as and its log group are the model's,
declared by the platform layer (`infra.components.endpoint_identity`)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
from pulumi_aws.sagemaker import (
    EndpointDeploymentConfigBlueGreenUpdatePolicyTrafficRoutingConfigurationArgsDict as Routing,
)
from pulumi_aws.sagemaker import (
    EndpointDeploymentConfigBlueGreenUpdatePolicyTrafficRoutingConfigurationCanarySizeArgsDict as StepSize,  # noqa: E501
)

from infra.components.monitoring import metric_alarm
from infra.documents.monitoring import endpoint_alarms
from infra.project import naming
from mlstack_common.registry import ModelPackage

TRAFFIC_ROUTING = {"canary": "CANARY", "linear": "LINEAR", "all-at-once": "ALL_AT_ONCE"}
ROLLBACK_ALARMS = ("errors", "latency")


@dataclass(frozen=True, kw_only=True)
class SageMakerEndpointArgs:
    environment: str
    model: str
    package: ModelPackage
    """The pinned version, resolved through the registry."""
    image: pulumi.Input[str]
    """The serving image by digest."""
    execution_role_arn: pulumi.Input[str]
    """The model's execution role (its `EndpointIdentity`)."""
    capture_bucket: pulumi.Input[str]
    capture_percent: int
    """0 turns capture off."""
    kms_key_arn: pulumi.Input[str]
    instance_type: str
    min_instances: int
    max_instances: int
    invocations_per_instance: int
    traffic_shifting: str
    shift_percent: int
    shift_wait_minutes: int
    latency_p99_ms: int
    alarm_topic_arn: pulumi.Input[str]

    def __post_init__(self) -> None:
        if self.traffic_shifting not in TRAFFIC_ROUTING:
            raise ValueError(
                f"traffic_shifting = {self.traffic_shifting!r}: allowed: "
                + ", ".join(TRAFFIC_ROUTING)
            )
        if not 1 <= self.min_instances <= self.max_instances:
            raise ValueError(
                f"min_instances = {self.min_instances}, max_instances = {self.max_instances}: "
                "allowed: 1 <= min_instances <= max_instances"
            )


class SageMakerEndpoint(pulumi.ComponentResource):
    endpoint: aws.sagemaker.Endpoint
    alarms: dict[str, aws.cloudwatch.MetricAlarm]

    def __init__(
        self, name: str, args: SageMakerEndpointArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:sagemaker:Endpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        endpoint_name = naming.endpoint_name(args.model, args.environment)
        variant = naming.ENDPOINT_VARIANT
        capture_uri = pulumi.Output.concat(
            "s3://", args.capture_bucket, f"/{naming.ENDPOINT_CAPTURE_PREFIX}"
        )
        model = aws.sagemaker.Model(
            f"{name}-model",
            execution_role_arn=args.execution_role_arn,
            primary_container={
                "image": args.image,
                "model_data_url": args.package.model_data_url,
                "environment": {"MLSTACK_MODEL_VERSION": str(args.package.version)},
            },
            # The server needs nothing from the network: SageMaker brings the model data.
            enable_network_isolation=True,
            tags={"mlstack:model-package": args.package.arn},
            opts=child,
        )
        configuration = aws.sagemaker.EndpointConfiguration(
            f"{name}-config",
            kms_key_arn=args.kms_key_arn,
            production_variants=[
                {
                    "variant_name": variant,
                    "model_name": model.name,
                    "instance_type": args.instance_type,
                    "initial_instance_count": args.min_instances,
                }
            ],
            data_capture_config={
                "enable_capture": True,
                "initial_sampling_percentage": args.capture_percent,
                "destination_s3_uri": capture_uri,
                "kms_key_id": args.kms_key_arn,
                "capture_options": [{"capture_mode": "Input"}, {"capture_mode": "Output"}],
                "capture_content_type_header": {
                    "csv_content_types": ["text/csv"],
                    "json_content_types": ["application/json"],
                },
            }
            if args.capture_percent
            else None,
            tags={"mlstack:model-package": args.package.arn},
            opts=child,
        )
        specs = endpoint_alarms(
            endpoint=endpoint_name,
            variant=variant,
            latency_p99_ms=args.latency_p99_ms,
            max_instances=args.max_instances,
        )
        self.alarms = {
            key: metric_alarm(f"{name}-{key}", spec, args.alarm_topic_arn, child)
            for key, spec in specs.items()
        }
        self.endpoint = aws.sagemaker.Endpoint(
            f"{name}-endpoint",
            name=endpoint_name,
            endpoint_config_name=configuration.name,
            deployment_config={
                "blue_green_update_policy": {
                    "traffic_routing_configuration": _traffic_routing(args),
                    # Keep the old fleet a while after the shift, so a late alarm can still
                    # roll back to it.
                    "termination_wait_in_seconds": 300,
                },
                "auto_rollback_configuration": {
                    "alarms": [{"alarm_name": self.alarms[key].name} for key in ROLLBACK_ALARMS]
                },
            },
            opts=child,
        )
        target = aws.appautoscaling.Target(
            f"{name}-scaling",
            service_namespace="sagemaker",
            scalable_dimension="sagemaker:variant:DesiredInstanceCount",
            resource_id=self.endpoint.name.apply(
                lambda endpoint: f"endpoint/{endpoint}/variant/{variant}"
            ),
            min_capacity=args.min_instances,
            max_capacity=args.max_instances,
            opts=child,
        )
        aws.appautoscaling.Policy(
            f"{name}-scaling",
            policy_type="TargetTrackingScaling",
            service_namespace=target.service_namespace,
            scalable_dimension=target.scalable_dimension,
            resource_id=target.resource_id,
            target_tracking_scaling_policy_configuration={
                "target_value": args.invocations_per_instance,
                "predefined_metric_specification": {
                    "predefined_metric_type": "SageMakerVariantInvocationsPerInstance"
                },
                "scale_in_cooldown": 300,
                "scale_out_cooldown": 60,
            },
            opts=child,
        )
        self.register_outputs({"endpoint": self.endpoint.name})


def _traffic_routing(args: SageMakerEndpointArgs) -> Routing:
    size: StepSize = {"type": "CAPACITY_PERCENT", "value": args.shift_percent}
    routing: Routing = {
        "type": TRAFFIC_ROUTING[args.traffic_shifting],
        "wait_interval_in_seconds": args.shift_wait_minutes * 60,
    }
    if args.traffic_shifting == "canary":
        routing["canary_size"] = size
    elif args.traffic_shifting == "linear":
        routing["linear_step_size"] = {"type": size["type"], "value": size["value"]}
    return routing
