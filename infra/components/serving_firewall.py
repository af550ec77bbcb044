"""The web ACL in front of the models' load balancers: a limit on what one client address may
send, so that no single caller can run up the serving's cost or flood it."""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

RATE_WINDOW_SECONDS = 300
"""The window the limit counts requests over (AWS WAF's default, and the longest it offers)."""
RATE_RULE = "requests-per-client-address"


def _visibility(metric: str) -> aws.wafv2.WebAclVisibilityConfigArgsDict:
    return {
        "cloudwatch_metrics_enabled": True,
        "metric_name": metric,
        "sampled_requests_enabled": True,
    }


class ServingFirewall(pulumi.ComponentResource):
    """`web_acl`: a regional WAFv2 web ACL that allows everything but a client address over
    `rate_limit` requests per 5 minutes, which it blocks until its rate falls below."""

    web_acl: aws.wafv2.WebAcl

    def __init__(
        self,
        name: str,
        *,
        environment: str,
        rate_limit: int,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("mlstack:serving:Firewall", name, None, opts)
        metric = f"mlstack-{environment}-serving"
        self.web_acl = aws.wafv2.WebAcl(
            f"{name}-web-acl",
            name=metric,
            scope="REGIONAL",
            description=f"Rate limit per client address for {environment}'s model load balancers",
            default_action={"allow": {}},
            rules=[
                {
                    "name": RATE_RULE,
                    "priority": 0,
                    "action": {"block": {}},
                    "statement": {
                        "rate_based_statement": {
                            "limit": rate_limit,
                            "aggregate_key_type": "IP",
                            "evaluation_window_sec": RATE_WINDOW_SECONDS,
                        }
                    },
                    "visibility_config": _visibility(f"{metric}-{RATE_RULE}"),
                }
            ],
            visibility_config=_visibility(metric),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"web_acl": self.web_acl.arn})
