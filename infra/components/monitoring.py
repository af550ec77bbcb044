"""What an environment's alarm topic hears about, besides the budget: alarms on the serving that
is not an endpoint's own (pods on the cluster, drift) and a dashboard of it all. They follow
what is served, so they are the workloads layer's; the topic is the platform's
(`infra.components.notifications`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.documents.monitoring import (
    Alarm,
    dashboard_body,
    drift_query,
    serving_replicas_alarm,
)
from infra.project import naming


@dataclass(frozen=True, kw_only=True)
class MonitoringArgs:
    environment: str
    region: str
    topic_arn: pulumi.Input[str]
    """The environment's alarm topic (`infra.components.notifications`)."""
    endpoints: Sequence[tuple[str, str]]
    """(endpoint, variant) of each SageMaker endpoint, for the dashboard (their alarms are the
    endpoints' own)."""
    services: Sequence[ServingService] = ()
    """Each model served on the cluster: an alarm when its pods fall below the floor."""
    drift_endpoints: Sequence[str] = ()
    """The endpoint names a drift job checks: an alarm on each, and drift on the dashboard."""
    drift_psi_threshold: float
    """The drift alarm's threshold on a feature's population stability index."""


@dataclass(frozen=True, kw_only=True)
class ServingService:
    cluster: str
    namespace: str
    service: str
    min_replicas: int


class Monitoring(pulumi.ComponentResource):
    alarms: dict[str, aws.cloudwatch.MetricAlarm]
    """By `<service>-replicas` and `<endpoint>-drift`."""

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:monitoring:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.alarms = {}
        for served in args.services:
            spec = serving_replicas_alarm(
                cluster=served.cluster,
                namespace=served.namespace,
                service=served.service,
                min_replicas=served.min_replicas,
            )
            key = f"{served.service}-replicas"
            self.alarms[key] = metric_alarm(f"{name}-{key}", spec, args.topic_arn, child)
        for endpoint in args.drift_endpoints:
            self.alarms[f"{endpoint}-drift"] = self._drift_alarm(name, endpoint, args)
        if args.endpoints or args.services or args.drift_endpoints:
            aws.cloudwatch.Dashboard(
                f"{name}-dashboard",
                dashboard_name=naming.monitoring_name(args.environment),
                dashboard_body=json.dumps(
                    dashboard_body(
                        region=args.region,
                        endpoints=args.endpoints,
                        services=[(s.cluster, s.namespace, s.service) for s in args.services],
                        drift_endpoints=args.drift_endpoints,
                    ),
                    sort_keys=True,
                ),
                opts=child,
            )
        self.register_outputs({"alarms": sorted(self.alarms)})

    def _drift_alarm(
        self, name: str, endpoint: str, args: MonitoringArgs
    ) -> aws.cloudwatch.MetricAlarm:
        return aws.cloudwatch.MetricAlarm(
            f"{name}-{endpoint}-drift",
            name=f"{endpoint}-drift",
            alarm_description=(
                f"{endpoint}: a feature's population stability index above "
                f"{args.drift_psi_threshold} in the last drift run; its report names it"
            ),
            metric_queries=[
                {
                    "id": "psi",
                    "expression": drift_query(endpoint),
                    "period": 3600,
                    "return_data": True,
                }
            ],
            threshold=args.drift_psi_threshold,
            comparison_operator="GreaterThanThreshold",
            evaluation_periods=1,
            datapoints_to_alarm=1,
            # The job publishes once a run: between runs the last verdict stands.
            treat_missing_data="ignore",
            alarm_actions=[args.topic_arn],
            ok_actions=[args.topic_arn],
            opts=pulumi.ResourceOptions(parent=self),
        )


def metric_alarm(
    name: str, spec: Alarm, topic_arn: pulumi.Input[str], opts: pulumi.ResourceOptions
) -> aws.cloudwatch.MetricAlarm:
    """An alarm from its spec, telling the topic when it fires and when it clears."""
    return aws.cloudwatch.MetricAlarm(
        name,
        name=spec.name,
        alarm_description=spec.description,
        namespace=spec.namespace,
        metric_name=spec.metric,
        dimensions=dict(spec.dimensions),
        statistic=spec.statistic,
        extended_statistic=spec.extended_statistic,
        threshold=spec.threshold,
        comparison_operator=spec.comparison,
        period=spec.period_seconds,
        evaluation_periods=spec.evaluation_periods,
        datapoints_to_alarm=spec.datapoints_to_alarm,
        treat_missing_data=spec.treat_missing_data,
        alarm_actions=[topic_arn],
        ok_actions=[topic_arn],
        opts=opts,
    )
