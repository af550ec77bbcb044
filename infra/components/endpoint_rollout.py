"""Two steps of a SageMaker endpoint's deploy that the AWS provider does not take, as Pulumi dynamic
resources around the Endpoint: `ScalingPause` before it (an instance type change is refused while
the variant is a registered scalable target) and `EndpointRolloutCheck` after it (the provider
reports success when SageMaker rolled the update back). What they call is in
`infra.operations.endpoint_rollout_check`, as plain functions over boto3 clients.

How they run. The Python SDK pickles a dynamic resource's provider with dill into the resource's
`__provider` input (pulumi/dynamic/dynamic.py, `serialize_provider`: `dill.dumps(provider,
recurse=True)`), and `pulumi-resource-pulumi-python` unpickles it in its own Python process to
call check/diff/create/update (pulumi/dynamic/__main__.py, `get_provider`: `dill.loads`). dill
pickles a class that lives in an importable module by reference — module and name, no code
(uqfoundation/dill#128; pulumi/pulumi#7453) — so the state holds a few dozen bytes and the provider
host imports this module, which works because that host runs the program's own virtualenv when
the project uses the uv toolchain (pulumi/pulumi#18126) and the project is installed in it (the
same reason the program can `import infra`). Importing this module creates nothing, so the
provider host registers no resource (the failure pulumi/pulumi#7453 describes). A change to the
code here takes effect at the next deploy; the state never pins old code.

They reach AWS as boto3 does in the deploy's process: the workloads deploy role's credentials (or
`AWS_ENDPOINT_URL` and an emulator's), in the region the stack's AWS provider is in. What the role
needs for them is `ROLLOUT_CHECK_ACTIONS` and `SCALING_PAUSE_ACTIONS`, which
`infra.documents.ci.workloads_deploy_policy` grants on the stack's own resources; a preview runs
only `ScalingPause`'s diff, whose reads the preview role has.

The provider host answers any exception with its traceback (`_abort_with_traceback` in
pulumi/dynamic/__main__.py), so the methods here raise their one-line errors with the cause
dropped: the traceback is then this module's few frames, and never botocore's."""

from __future__ import annotations

from typing import Any

import boto3
import pulumi
import pulumi.dynamic
from botocore.exceptions import BotoCoreError
from pulumi.runtime.rpc import UNKNOWN

from infra.operations.endpoint_rollout_check import (
    KEEP_RETAINED,
    RolloutUnverifiedError,
    ScalingNotPausedError,
    check_rollout,
    pause_scaling,
    prune_retained,
    reason,
    scaling_blocks_instance_type,
)
from infra.operations.errors import OperationError

ROLLOUT_CHECK_TYPE = "pulumi-python:dynamic/mlstack:EndpointRolloutCheck"
SCALING_PAUSE_TYPE = "pulumi-python:dynamic/mlstack:ScalingPause"
ROLLOUT_CHECK_ACTIONS = (
    "sagemaker:DescribeEndpoint",
    "sagemaker:DescribeEndpointConfig",
    "sagemaker:DescribeModel",
    "sagemaker:ListTags",
    "sagemaker:AddTags",
    "sagemaker:DeleteTags",
    "sagemaker:ListEndpointConfigs",
    "sagemaker:DeleteEndpointConfig",
    "sagemaker:DeleteModel",
)
"""Every AWS call `EndpointRolloutCheck` makes, as IAM actions."""
SCALING_PAUSE_ACTIONS = (
    "sagemaker:DescribeEndpoint",
    "sagemaker:DescribeEndpointConfig",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DeregisterScalableTarget",
)
"""Every AWS call `ScalingPause` makes, as IAM actions (all but the last in its diff too)."""
_CHECK_INPUTS = ("endpoint", "expected_config", "region", "environment", "keep", "config_prefix")


def aws_client(service: str, region: str) -> Any:
    """A boto3 client in the provider host (tests replace it with recording ones)."""
    return boto3.client(service, region_name=region)  # type: ignore[call-overload]


def _inputs(props: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {key: props.get(key) for key in keys}


class _RolloutCheckProvider(pulumi.dynamic.ResourceProvider):
    """Runs `check_rollout` whenever the configuration the endpoint is set to changes, and
    after it passes, `prune_retained`."""

    def diff(
        self, _id: str, olds: dict[str, Any], news: dict[str, Any]
    ) -> pulumi.dynamic.DiffResult:
        changed = [key for key in _CHECK_INPUTS if olds.get(key) != news.get(key)]
        return pulumi.dynamic.DiffResult(changes=bool(changed), replaces=[])

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult(str(props["endpoint"]), self._check(props))

    def update(
        self, _id: str, _olds: dict[str, Any], news: dict[str, Any]
    ) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(self._check(news))

    def _check(self, props: dict[str, Any]) -> dict[str, Any]:
        endpoint, expected = str(props["endpoint"]), str(props["expected_config"])
        try:
            client = aws_client("sagemaker", str(props["region"]))
            check_rollout(
                client,
                endpoint=endpoint,
                expected_config=expected,
                environment=str(props["environment"]),
            )
        except OperationError as error:
            raise error from None
        except BotoCoreError as error:
            raise RolloutUnverifiedError(
                f"endpoint {endpoint}: whether it serves {expected} cannot be read "
                f"({reason(error)})"
            ) from None
        pruned = prune_retained(
            client,
            endpoint=endpoint,
            keep=int(props["keep"]),
            live_config=expected,
            name_contains=str(props["config_prefix"]),
        )
        return {
            **_inputs(props, _CHECK_INPUTS),
            "serving_config": expected,
            "pruned_configs": list(pruned.configurations),
            "pruned_models": list(pruned.models),
            "not_pruned": list(pruned.failures),
        }


class EndpointRolloutCheck(pulumi.dynamic.Resource, module="mlstack", name="EndpointRolloutCheck"):
    """After the Endpoint's update: fails the deploy, with what serves and what to do, when the
    endpoint does not serve `expected_config` (and marks that configuration rolled back); when it
    does, deletes the endpoint's retained configurations and models beyond the newest `keep`.
    Runs again only when `expected_config` (or another input) changes."""

    serving_config: pulumi.Output[str]
    """The configuration the check saw serving (the expected one: otherwise it fails)."""
    pruned_configs: pulumi.Output[list[str]]
    pruned_models: pulumi.Output[list[str]]
    not_pruned: pulumi.Output[list[str]]
    """What the last prune left that it meant to delete, and why (a prune never fails a deploy;
    the next one tries again)."""

    def __init__(
        self,
        name: str,
        *,
        endpoint: str,
        expected_config: pulumi.Input[str],
        region: pulumi.Input[str],
        environment: str,
        config_prefix: str,
        keep: int = KEEP_RETAINED,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        if keep < 1:
            raise ValueError(f"keep = {keep}: allowed: 1 or more (the serving configuration)")
        super().__init__(
            _RolloutCheckProvider(),
            name,
            {
                "endpoint": endpoint,
                "expected_config": expected_config,
                "region": region,
                "environment": environment,
                "keep": keep,
                "config_prefix": config_prefix,
                "serving_config": None,
                "pruned_configs": None,
                "pruned_models": None,
                "not_pruned": None,
            },
            opts,
        )


class _ScalingPauseProvider(pulumi.dynamic.ResourceProvider):
    """Differs exactly when the live endpoint would refuse an update to `instance_type`
    (`scaling_blocks_instance_type`); its update then deregisters the scalable target and counts
    it in `generation`, which the stack's scaling Target and Policy take as their replacement
    trigger, so they are registered again after the Endpoint's update."""

    def diff(
        self, _id: str, _olds: dict[str, Any], news: dict[str, Any]
    ) -> pulumi.dynamic.DiffResult:
        if UNKNOWN in news.values():
            return pulumi.dynamic.DiffResult(changes=None)  # a preview: `up` diffs again
        return pulumi.dynamic.DiffResult(changes=self._blocked(news), replaces=[])

    def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
        return pulumi.dynamic.CreateResult(
            str(props["endpoint"]), self._pause_if_blocked(props, generation=0)
        )

    def update(
        self, _id: str, olds: dict[str, Any], news: dict[str, Any]
    ) -> pulumi.dynamic.UpdateResult:
        return pulumi.dynamic.UpdateResult(
            self._pause_if_blocked(news, generation=int(olds.get("generation") or 0))
        )

    def _blocked(self, props: dict[str, Any]) -> bool:
        region = str(props["region"])
        try:
            return scaling_blocks_instance_type(
                aws_client("sagemaker", region),
                aws_client("application-autoscaling", region),
                endpoint=str(props["endpoint"]),
                variant=str(props["variant"]),
                instance_type=str(props["instance_type"]),
            )
        except OperationError as error:
            raise error from None
        except BotoCoreError as error:
            raise ScalingNotPausedError(
                f"endpoint {props['endpoint']}: its autoscaling cannot be read ({reason(error)})"
            ) from None

    def _pause_if_blocked(self, props: dict[str, Any], *, generation: int) -> dict[str, Any]:
        if self._blocked(props):
            try:
                pause_scaling(
                    aws_client("application-autoscaling", str(props["region"])),
                    endpoint=str(props["endpoint"]),
                    variant=str(props["variant"]),
                )
            except OperationError as error:
                raise error from None
            generation += 1
        return {
            **_inputs(props, ("endpoint", "variant", "instance_type", "region")),
            "generation": generation,
        }


class ScalingPause(pulumi.dynamic.Resource, module="mlstack", name="ScalingPause"):
    """Before the Endpoint's update: deregisters the variant's scalable target when the update
    changes the variant's instance type, which SageMaker refuses while it is registered.

    It reads the endpoint on every preview and update (its diff), not only when `instance_type`
    changes: an update SageMaker rolled back leaves the old type running, and the next deploy
    must pause autoscaling again."""

    generation: pulumi.Output[int]
    """How many times it has deregistered the target: the scaling Target and Policy are replaced
    (registered anew) whenever it grows."""

    def __init__(
        self,
        name: str,
        *,
        endpoint: str,
        variant: str,
        instance_type: str,
        region: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(
            _ScalingPauseProvider(),
            name,
            {
                "endpoint": endpoint,
                "variant": variant,
                "instance_type": instance_type,
                "region": region,
                "generation": None,
            },
            opts,
        )
