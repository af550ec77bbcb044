"""EC2 and VPC rules, with the ids of the FSBP controls they mirror."""

from __future__ import annotations

from mlstack_policy.documents import as_list
from mlstack_policy.rules import ResourceLike, StackIndex, resource_rule, stack_rule

VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
DEFAULT_SECURITY_GROUP = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
MAX_HOP_LIMIT = 1


@stack_rule("EC2.2", "VPC default security groups allow no traffic", VPC)
def default_group_closed(vpc: ResourceLike, stack: StackIndex) -> str | None:
    groups = stack.attached(DEFAULT_SECURITY_GROUP, prop="vpcId", value=vpc.props.get("id"))
    if not groups:
        return "the default security group is not managed, so it keeps AWS's allow-all rules"
    rules = as_list(groups[0].props.get("ingress")) + as_list(groups[0].props.get("egress"))
    return f"the default security group has {len(rules)} rule(s)" if rules else None


@stack_rule("EC2.6", "VPC flow logging is enabled", VPC)
def flow_logged(vpc: ResourceLike, stack: StackIndex) -> str | None:
    for flow_log in stack.attached(FLOW_LOG, prop="vpcId", value=vpc.props.get("id")):
        if flow_log.props.get("trafficType") == "ALL":
            return None
    return "no flow log records all traffic"


@resource_rule("EC2.170", "EC2 launch templates require IMDSv2", LAUNCH_TEMPLATE)
def requires_imdsv2(template: ResourceLike) -> str | None:
    options = template.props.get("metadataOptions") or {}
    if options.get("httpTokens") != "required":
        return "instance metadata allows IMDSv1 (httpTokens is not required)"
    hop_limit = options.get("httpPutResponseHopLimit")
    if not isinstance(hop_limit, int) or hop_limit > MAX_HOP_LIMIT:
        return (
            f"metadata hop limit {hop_limit} lets pods reach node credentials "
            f"(allowed: {MAX_HOP_LIMIT})"
        )
    return None
