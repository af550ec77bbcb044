"""Who hears about an environment: an encrypted alarm topic with the on-call address
subscribed, and a monthly cost budget that tells it. Both outlive any model pin, so they are the
platform layer's; the alarms that publish to the topic come with what they watch
(`infra.components.monitoring`)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.documents.monitoring import alarm_topic_policy
from infra.project import naming

BUDGET_THRESHOLDS = (80, 100)
"""Percent of the monthly amount, each told twice: when the month's actual cost crosses it and
when the forecast does."""
BUDGET_NOTIFICATION_TYPES = ("ACTUAL", "FORECASTED")
"""Actual cost first: AWS Budgets forecasts only once an account has weeks of cost history, so a
new environment's overspend would otherwise never be told."""


@dataclass(frozen=True, kw_only=True)
class NotificationsArgs:
    environment: str
    kms_key_arn: pulumi.Input[str]
    alarm_email: str
    """Empty: the topic exists (alarms and the budget publish to it) but nobody is subscribed."""
    monthly_budget_usd: int


class Notifications(pulumi.ComponentResource):
    topic: aws.sns.Topic

    def __init__(
        self, name: str, args: NotificationsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:monitoring:Notifications", name, None, opts)
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
        self.register_outputs({"topic": self.topic.arn})

    def _budget(self, name: str, args: NotificationsArgs) -> None:
        aws.budgets.Budget(
            f"{name}-budget",
            name=naming.monitoring_name(args.environment),
            budget_type="COST",
            time_unit="MONTHLY",
            limit_amount=str(args.monthly_budget_usd),
            limit_unit="USD",
            # The stack tags everything with its environment (aws:defaultTags); the tag must be
            # activated as a cost allocation tag for the budget to see it, by the organization's
            # management account where there is one (docs/runbooks/new-environment.md).
            cost_filters=[
                {"name": "TagKeyValue", "values": [f"user:environment${args.environment}"]}
            ],
            notifications=[
                {
                    "comparison_operator": "GREATER_THAN",
                    "threshold": threshold,
                    "threshold_type": "PERCENTAGE",
                    "notification_type": kind,
                    "subscriber_sns_topic_arns": [self.topic.arn],
                }
                for kind in BUDGET_NOTIFICATION_TYPES
                for threshold in BUDGET_THRESHOLDS
            ],
            opts=pulumi.ResourceOptions(parent=self),
        )
