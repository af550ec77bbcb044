"""Who hears about an environment, and about what: an encrypted alarm topic with the on-call
address subscribed, a monthly cost budget that warns it, alarms on the serving that is not an
endpoint's own (pods on the cluster, drift) and a dashboard of it all."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra import naming
from infra.documents.monitoring import (
    Alarm,
    alarm_topic_policy,
    dashboard_body,
    drift_query,
    serving_replicas_alarm,
)

BUDGET_THRESHOLDS = (80, 100)
"""Percent of the monthly amount, against the forecast."""


@dataclass(frozen=True, kw_only=True)
class MonitoringArgs:
    environment: str
    region: str
    kms_key_arn: pulumi.Input[str]
    alarm_email: str
    """Empty: the topic exists (alarms and the budget publish to it) but nobody is subscribed."""
    monthly_budget_usd: int
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
    topic: aws.sns.Topic
    alarms: dict[str, aws.cloudwatch.MetricAlarm]
    """By `<service>-replicas` and `<endpoint>-drift`."""

    def __init__(
        self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:monitoring:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account_id = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(parent=self)
        ).account_id
        self.topic = aws.sns.Topic(
            f"{name}-alarms",
            display_name=f"mlstack {args.environment} alarms",
            kms_master_key_id=args.kms_key_arn,
            opts=child,
        )
        aws.sns.TopicPolicy(
            f"{name}-alarms",
            arn=self.topic.arn,
            policy=pulumi.Output.all(self.topic.arn, account_id).apply(
                lambda values: json.dumps(
                    alarm_topic_policy(topic_arn=values[0], account_id=values[1]), sort_keys=True
                )
            ),
            opts=child,
        )
        if args.alarm_email:
            aws.sns.TopicSubscription(
                f"{name}-alarm-email",
                topic=self.topic.arn,
                protocol="email",
                endpoint=args.alarm_email,
                opts=child,
            )
        if args.monthly_budget_usd:
            self._budget(name, args)
        self.alarms = {}
        for served in args.services:
            spec = serving_replicas_alarm(
                cluster=served.cluster,
                namespace=served.namespace,
                service=served.service,
                min_replicas=served.min_replicas,
            )
            key = f"{served.service}-replicas"
            self.alarms[key] = metric_alarm(f"{name}-{key}", spec, self.topic.arn, child)
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
        self.register_outputs({"topic": self.topic.arn})

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
            alarm_actions=[self.topic.arn],
            ok_actions=[self.topic.arn],
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _budget(self, name: str, args: MonitoringArgs) -> None:
        aws.budgets.Budget(
            f"{name}-budget",
            name=naming.monitoring_name(args.environment),
            budget_type="COST",
            time_unit="MONTHLY",
            limit_amount=str(args.monthly_budget_usd),
            limit_unit="USD",
            # The stack tags everything with its environment (aws:defaultTags); the tag must be
            # activated as a cost allocation tag for the budget to see it.
            cost_filters=[
                {"name": "TagKeyValue", "values": [f"user:environment${args.environment}"]}
            ],
            notifications=[
                {
                    "comparison_operator": "GREATER_THAN",
                    "threshold": threshold,
                    "threshold_type": "PERCENTAGE",
                    "notification_type": "FORECASTED",
                    "subscriber_sns_topic_arns": [self.topic.arn],
                }
                for threshold in BUDGET_THRESHOLDS
            ],
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
