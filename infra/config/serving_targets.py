"""Where a stack serves its models and what watches them, derived from the config in one place:
the program wires components from it, and tests read it without any engine."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from infra.config.stack import StackConfig
from infra.project import naming


@dataclass(frozen=True, kw_only=True)
class ServingTargets:
    on_cluster: bool
    """Models are served by Deployments on the cluster."""
    on_sagemaker: bool
    """Models are served by SageMaker endpoints."""
    names: Mapping[str, str] = field(default_factory=dict)
    """Each served model's endpoint name, which every target's capture is filed under."""
    capture_on_cluster: bool = False
    capture_prefixes: tuple[str, ...] = ()
    """Where in the capture bucket the targets serving the models write."""
    drift_checked: bool = False
    """A drift job per served model reads that capture (it runs on the cluster)."""
    ingress: bool = False
    """Models on the cluster get a load balancer each (an ingress certificate is set)."""
    runs_images: bool = False
    """The stack runs the training and serving images (on the cluster, as SageMaker jobs or
    on endpoints), so it builds them."""

    @property
    def serves(self) -> bool:
        return self.on_cluster or self.on_sagemaker

    @property
    def endpoints(self) -> Mapping[str, str]:
        """The SageMaker endpoint of each served model, by model."""
        return self.names if self.on_sagemaker else {}

    @property
    def drifted(self) -> Mapping[str, str]:
        """The endpoint name of each model a drift job checks, by model."""
        return self.names if self.drift_checked else {}


def serving_targets(config: StackConfig, served: Iterable[str] = ()) -> ServingTargets:
    """The targets of `config`, serving the models in `served` (their pins resolved)."""
    on_cluster = config.cluster.enabled and config.serving.target in ("kubernetes", "both")
    on_sagemaker = config.serving.target in ("sagemaker", "both")
    capturing = config.serving.data_capture_percent > 0
    return ServingTargets(
        on_cluster=on_cluster,
        on_sagemaker=on_sagemaker,
        names={model: naming.endpoint_name(model, config.environment) for model in served},
        capture_on_cluster=on_cluster and capturing,
        capture_prefixes=(
            *((naming.ENDPOINT_CAPTURE_PREFIX,) if on_sagemaker else ()),
            *((naming.KUBERNETES_CAPTURE_PREFIX,) if on_cluster else ()),
        ),
        drift_checked=bool(
            config.cluster.enabled and config.monitoring.drift_schedule and capturing
        ),
        ingress=bool(on_cluster and config.serving.ingress_certificate_arn),
        runs_images=config.cluster.enabled or on_sagemaker,
    )
