"""A pinned model version served by a SageMaker endpoint, with guarded rollouts.

The endpoint keeps its name across versions: a new pin replaces the Model and the
EndpointConfiguration (both auto-named) and updates the Endpoint in place, which SageMaker
carries out blue/green, shifting traffic in steps while the alarms on this endpoint and variant
watch, and rolling back when one fires. The role it runs as and its log group are the model's,
declared by the platform layer (`infra.components.endpoint_identity`).

What SageMaker does that the AWS provider does not follow (`infra.components.endpoint_rollout`):
- A rollback leaves the endpoint `InService` on the old configuration, which the provider takes
  for success. So Pulumi never deletes a Model or EndpointConfiguration (either may serve again),
  and a check after the update fails the deploy when the endpoint does not serve the new one,
  then keeps the newest few of each and deletes the rest.
- An update that changes the instance type is refused while the variant is a registered
  scalable target: it is deregistered just before, and registered again after.
- `auto_rollback_configuration` forces a new endpoint in the provider
  (internal/service/sagemaker/endpoint.go: `ForceNew: true`), which its fixed name makes fail:
  the rollback alarms keep their names."""

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

from infra.components.endpoint_rollout import EndpointRolloutCheck, ScalingPause
from infra.components.monitoring import metric_alarm
from infra.config.sections.serving import TERMINATION_WAIT_SECONDS
from infra.documents.monitoring import endpoint_alarms
from infra.operations.endpoint_rollout_check import (
    SCALABLE_DIMENSION,
    SCALING_NAMESPACE,
    VERSION_VARIABLE,
    scalable_resource_id,
)
from infra.operations.live_state import ENDPOINT_TAG, PACKAGE_TAG
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
    rollout: EndpointRolloutCheck
    """Fails the deploy when SageMaker rolled the update back; prunes what is retained."""

    def __init__(
        self, name: str, args: SageMakerEndpointArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:sagemaker:Endpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        endpoint_name = naming.endpoint_name(args.model, args.environment)
        variant = naming.ENDPOINT_VARIANT
        configuration = self._configuration(name, args, self._model(name, args))
        specs = endpoint_alarms(
            endpoint=endpoint_name,
            variant=variant,
            configuration=configuration.name,
            latency_p99_ms=args.latency_p99_ms,
            min_instances=args.min_instances,
            max_instances=args.max_instances,
            invocations_per_instance=args.invocations_per_instance,
        )
        self.alarms = {
            key: metric_alarm(f"{name}-{key}", spec, args.alarm_topic_arn, child)
            for key, spec in specs.items()
        }
        region = aws.get_region_output(opts=pulumi.InvokeOutputOptions(parent=self)).region
        pause = ScalingPause(
            f"{name}-scaling-pause",
            endpoint=endpoint_name,
            variant=variant,
            instance_type=args.instance_type,
            region=region,
            opts=child,
        )
        self.endpoint = aws.sagemaker.Endpoint(
            f"{name}-endpoint",
            name=endpoint_name,
            endpoint_config_name=configuration.name,
            deployment_config={
                "blue_green_update_policy": {
                    "traffic_routing_configuration": _traffic_routing(args),
                    # Keep the old fleet a while after the shift, so a late alarm can still
                    # roll back to it.
                    "termination_wait_in_seconds": TERMINATION_WAIT_SECONDS,
                },
                "auto_rollback_configuration": {
                    "alarms": [{"alarm_name": self.alarms[key].name} for key in ROLLBACK_ALARMS]
                },
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[pause]),
        )
        self.rollout = EndpointRolloutCheck(
            f"{name}-rollout",
            endpoint=endpoint_name,
            expected_config=configuration.name,
            region=region,
            environment=args.environment,
            config_prefix=f"{name}-config",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.endpoint]),
        )
        self._scaling(name, args, pause)
        self.register_outputs(
            {"endpoint": self.endpoint.name, "servingConfig": self.rollout.serving_config}
        )

    def _tags(self, args: SageMakerEndpointArgs) -> dict[str, str]:
        """Who a retained Model or EndpointConfiguration belongs to: a rollback lists the
        endpoint's by `ENDPOINT_TAG`, and reads the version each ran by `PACKAGE_TAG`."""
        return {
            PACKAGE_TAG: args.package.arn,
            ENDPOINT_TAG: naming.endpoint_name(args.model, args.environment),
        }

    def _retained(self) -> pulumi.ResourceOptions:
        """Pulumi never deletes a Model or EndpointConfiguration: after SageMaker rolls an
        update back, the one a new pin replaced serves again, and until then it is what a
        rollback goes back to. `EndpointRolloutCheck` deletes the old ones a deploy no longer
        needs."""
        return pulumi.ResourceOptions(parent=self, retain_on_delete=True)

    def _model(self, name: str, args: SageMakerEndpointArgs) -> aws.sagemaker.Model:
        return aws.sagemaker.Model(
            f"{name}-model",
            execution_role_arn=args.execution_role_arn,
            primary_container={
                "image": args.image,
                "model_data_url": args.package.model_data_url,
                "environment": {VERSION_VARIABLE: str(args.package.version)},
            },
            # The server needs nothing from the network: SageMaker brings the model data.
            enable_network_isolation=True,
            tags=self._tags(args),
            opts=self._retained(),
        )

    def _configuration(
        self, name: str, args: SageMakerEndpointArgs, model: aws.sagemaker.Model
    ) -> aws.sagemaker.EndpointConfiguration:
        """The variant starts at `max_instances`, never at the minimum: the provider cannot ask
        UpdateEndpoint to keep the running count (RetainAllVariantProperties), auto scaling is
        paused while an update runs, and every field of a configuration forces a new one, so a
        count that followed the load would redeploy on every change in load. Starting at the
        most the scalable target allows is never below what runs now; auto scaling scales in
        after the update, so the cost is the maximum for the shift plus the scale-in
        cooldown."""
        capture_uri = pulumi.Output.concat(
            "s3://", args.capture_bucket, f"/{naming.ENDPOINT_CAPTURE_PREFIX}"
        )
        return aws.sagemaker.EndpointConfiguration(
            f"{name}-config",
            kms_key_arn=args.kms_key_arn,
            production_variants=[
                {
                    "variant_name": naming.ENDPOINT_VARIANT,
                    "model_name": model.name,
                    "instance_type": args.instance_type,
                    "initial_instance_count": args.max_instances,
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
            tags=self._tags(args),
            opts=self._retained(),
        )

    def _scaling(self, name: str, args: SageMakerEndpointArgs, pause: ScalingPause) -> None:
        """Target tracking on invocations per instance. Both are registered after the
        Endpoint's update (the target names the endpoint's output), and registered anew —
        deleted first, as the two name the same variant — whenever `pause` deregistered them
        for an instance type change."""
        anew = pulumi.ResourceOptions(
            parent=self, replacement_trigger=pause.generation, delete_before_replace=True
        )
        target = aws.appautoscaling.Target(
            f"{name}-scaling",
            service_namespace=SCALING_NAMESPACE,
            scalable_dimension=SCALABLE_DIMENSION,
            resource_id=self.endpoint.name.apply(
                lambda endpoint: scalable_resource_id(endpoint, naming.ENDPOINT_VARIANT)
            ),
            min_capacity=args.min_instances,
            max_capacity=args.max_instances,
            opts=anew,
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
            opts=anew,
        )


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
