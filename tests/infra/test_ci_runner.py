"""Where deploys run from, as each stack declares it: the cluster API private in staging and
prod, reachable from a client security group inside the VPC, and a CodeBuild-hosted GitHub
Actions runner in the private subnets whose jobs hold nothing but what running there takes."""

from __future__ import annotations

import json

import pytest

from infra.offline.mocks import RecordedResource
from infra.offline.runner import ProgramRun
from infra.project import naming, outputs

from .conftest import RunStack

CI_STACKS = ("dev", "staging", "prod")


def one(run: ProgramRun, resource_type: str, name: str | None = None) -> RecordedResource:
    [found] = [r for r in run.of_type(resource_type) if name is None or r.name == name]
    return found


def private_subnet_ids(run: ProgramRun) -> set[str]:
    return set(run.outputs[outputs.PRIVATE_SUBNET_IDS])


@pytest.mark.parametrize("stack", CI_STACKS)
def test_the_cluster_api_is_private_in_staging_and_prod_and_only_an_allow_list_reaches_devs(
    stack: str, stack_runs: dict[str, ProgramRun]
) -> None:
    vpc = one(stack_runs[stack], "aws:eks/cluster:Cluster").inputs["vpcConfig"]
    assert vpc["endpointPrivateAccess"] is True
    if stack == "dev":
        assert vpc["endpointPublicAccess"] is True
        assert vpc["publicAccessCidrs"] == ["203.0.113.0/24"]
    else:
        assert vpc["endpointPublicAccess"] is False
        assert "publicAccessCidrs" not in vpc


@pytest.mark.parametrize("stack", CI_STACKS)
def test_the_api_admits_only_its_client_group_which_only_goes_out_on_https(
    stack: str, stack_runs: dict[str, ProgramRun]
) -> None:
    run = stack_runs[stack]
    clients = one(run, "aws:ec2/securityGroup:SecurityGroup", "cluster-clients")
    assert clients.inputs["vpcId"] == run.outputs[outputs.VPC_ID]
    assert run.outputs[outputs.CLUSTER_CLIENT_SECURITY_GROUP_ID] == clients.physical_id
    [egress] = run.of_type("aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule")
    assert egress.inputs["securityGroupId"] == clients.physical_id
    assert (egress.inputs["ipProtocol"], egress.inputs["fromPort"], egress.inputs["toPort"]) == (
        "tcp",
        443,
        443,
    )
    assert not [
        r
        for r in run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs["securityGroupId"] == clients.physical_id
    ]
    [ingress] = run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    cluster = one(run, "aws:eks/cluster:Cluster")
    assert ingress.inputs["securityGroupId"] == cluster.props["vpcConfig"]["clusterSecurityGroupId"]
    assert ingress.inputs["referencedSecurityGroupId"] == clients.physical_id
    assert (ingress.inputs["fromPort"], ingress.inputs["toPort"]) == (443, 443)


@pytest.mark.parametrize("stack", CI_STACKS)
def test_the_stack_declares_the_runner_its_workloads_deploy_from(
    stack: str, stack_runs: dict[str, ProgramRun]
) -> None:
    run = stack_runs[stack]
    project = one(run, "aws:codebuild/project:Project").inputs
    assert project["name"] == naming.runner_project_name(stack)
    assert run.outputs[outputs.CI_RUNNER_PROJECT] == project["name"]
    repository = run.settings.values["mlstack:ciGithubRepository"]
    connection = run.settings.values["mlstack:ciGithubConnectionArn"]
    assert project["source"] == {
        "type": "GITHUB",
        "location": f"https://github.com/{repository}.git",
        "auth": {"type": "CODECONNECTIONS", "resource": connection},
    }
    vpc = project["vpcConfig"]
    assert vpc["vpcId"] == run.outputs[outputs.VPC_ID]
    assert set(vpc["subnets"]) == private_subnet_ids(run)
    assert vpc["securityGroupIds"] == [run.outputs[outputs.CLUSTER_CLIENT_SECURITY_GROUP_ID]]
    environment = project["environment"]
    assert environment["privilegedMode"] is True  # the workloads deploy builds the images
    assert environment["type"] == "LINUX_CONTAINER"
    assert project["encryptionKey"] == run.outputs[outputs.KMS_KEY_ARN]
    logs = one(run, "aws:cloudwatch/logGroup:LogGroup", "runner-logs").inputs
    assert project["logsConfig"]["cloudwatchLogs"]["groupName"] == logs["name"]
    assert logs["kmsKeyId"] == run.outputs[outputs.KMS_KEY_ARN]
    webhook = one(run, "aws:codebuild/webhook:Webhook").inputs
    assert webhook["filterGroups"] == [
        {"filters": [{"type": "EVENT", "pattern": "WORKFLOW_JOB_QUEUED"}]}
    ]


def test_a_job_on_the_runner_holds_only_what_running_there_takes(
    stack_runs: dict[str, ProgramRun],
) -> None:
    run = stack_runs["prod"]
    policy = json.loads(one(run, "aws:iam/rolePolicy:RolePolicy", "runner-role").inputs["policy"])
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert actions == {
        "ec2:CreateNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "ec2:CreateNetworkInterfacePermission",
        "ec2:DescribeDhcpOptions",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeSecurityGroups",
        "ec2:DescribeSubnets",
        "ec2:DescribeVpcs",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "codeconnections:GetConnection",
        "codeconnections:GetConnectionToken",
        "codeconnections:UseConnection",
    }
    [attach] = [s for s in policy["Statement"] if s["Sid"] == "AttachInterfacesInThePrivateSubnets"]
    subnets = attach["Condition"]["StringEquals"]["ec2:Subnet"]
    assert {arn.rpartition("/")[2] for arn in subnets} == private_subnet_ids(run)
    role = one(run, "aws:iam/role:Role", "runner-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    assert trust["Principal"] == {"Service": "codebuild.amazonaws.com"}
    assert role.inputs["permissionsBoundary"]


def test_without_a_repository_there_is_no_runner_but_the_api_still_has_its_clients(
    run_stack: RunStack,
) -> None:
    run = run_stack("staging", ciGithubRepository="", ciGithubConnectionArn="")
    assert not run.of_type("aws:codebuild/project:Project")
    assert outputs.CI_RUNNER_PROJECT not in run.outputs
    assert one(run, "aws:ec2/securityGroup:SecurityGroup", "cluster-clients")
