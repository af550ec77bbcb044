"""Where the environment's CI jobs that need its private network run: CodeBuild-hosted GitHub
Actions runners in its private subnets.

GitHub-hosted runners cannot reach a private EKS API endpoint, and nothing outside the VPC
should. The stack declares a CodeBuild project whose webhook takes the repository's queued
GitHub Actions jobs and starts, for each job that asks for it
(`runs-on: codebuild-<project>-${{ github.run_id }}-${{ github.run_attempt }}`), an ephemeral
runner in the private subnets, in the cluster's client security group (which its API admits).
Each runner runs one job and is gone (AWS CodeBuild "Self-hosted GitHub Actions runners",
https://docs.aws.amazon.com/codebuild/latest/userguide/action-runner.html).

Every job on the runner holds the project's service role, which can do nothing but run there
(`infra.documents.ci.runner_policy`); a deploy assumes its own role through GitHub's OIDC token,
which GitHub issues for the environment's subject only after the environment's rules pass.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.ci_access import stack_scope
from infra.components.service_role import account_service_role
from infra.documents.ci import runner_policy
from infra.project import naming

RUNNER_IMAGE = "aws/codebuild/amazonlinux-x86_64-standard:5.0"
"""CodeBuild's curated Amazon Linux image: Docker with BuildKit (the images are built on the
runner), the AWS CLI (`aws eks get-token` for the cluster), git, Python and Node."""
RUNNER_COMPUTE = "BUILD_GENERAL1_MEDIUM"
"""4 vCPUs and 7 GiB: an image build and a `pulumi up` with the Kubernetes provider."""
JOB_TIMEOUT_MINUTES = 120
"""Longer than any job sent here (a deploy's is 90 minutes)."""


@dataclass(frozen=True, kw_only=True)
class CiRunnerArgs:
    environment: str
    repository: str
    """`owner/name` on GitHub: the repository whose queued jobs the webhook takes."""
    connection_arn: str
    """The CodeConnections connection (GitHub App) CodeBuild receives the jobs through."""
    vpc_id: pulumi.Input[str]
    subnet_ids: Sequence[pulumi.Input[str]]
    """The private subnets: NAT gives the runner GitHub, Pulumi Cloud and AWS's APIs."""
    security_group_id: pulumi.Input[str]
    """The cluster's client security group (HTTPS out; the cluster's API admits it)."""
    kms_key_arn: pulumi.Input[str]
    log_retention_days: int
    permissions_boundary: pulumi.Input[str] | None = None


class CiRunner(pulumi.ComponentResource):
    project: aws.codebuild.Project
    role: aws.iam.Role

    def __init__(
        self, name: str, args: CiRunnerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:ci:CiRunner", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        project_name = naming.runner_project_name(args.environment)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/codebuild/{project_name}",
            retention_in_days=args.log_retention_days,
            kms_key_id=args.kms_key_arn,
            opts=child,
        )
        self.role = account_service_role(
            f"{name}-role",
            parent=self,
            service="codebuild.amazonaws.com",
            permissions_boundary=args.permissions_boundary,
            description=f"CodeBuild runners of {project_name}",
        )
        policy = self._policy(name, args, log_group)
        self.project = aws.codebuild.Project(
            f"{name}-project",
            name=project_name,
            description=f"GitHub Actions runners for {args.repository} inside mlstack "
            f"{args.environment}'s VPC",
            service_role=self.role.arn,
            source={
                "type": "GITHUB",
                "location": f"https://github.com/{args.repository}.git",
                "auth": {"type": "CODECONNECTIONS", "resource": args.connection_arn},
            },
            artifacts={"type": "NO_ARTIFACTS"},
            environment={
                "type": "LINUX_CONTAINER",
                "compute_type": RUNNER_COMPUTE,
                "image": RUNNER_IMAGE,
                "image_pull_credentials_type": "CODEBUILD",
                # Docker needs it: the workloads deploy builds the images (pulumi-docker-build).
                # Each runner is a fresh, single-job build host (loosened on purpose).
                "privileged_mode": True,
            },
            vpc_config={
                "vpc_id": args.vpc_id,
                "subnets": list(args.subnet_ids),
                "security_group_ids": [args.security_group_id],
            },
            logs_config={
                "cloudwatch_logs": {"status": "ENABLED", "group_name": log_group.name},
                "s3_logs": {"status": "DISABLED"},
            },
            encryption_key=args.kms_key_arn,
            build_timeout=JOB_TIMEOUT_MINUTES,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
        )
        aws.codebuild.Webhook(
            f"{name}-webhook",
            project_name=self.project.name,
            build_type="BUILD",
            filter_groups=[{"filters": [{"type": "EVENT", "pattern": "WORKFLOW_JOB_QUEUED"}]}],
            opts=child,
        )
        self.register_outputs({"project": self.project.name})

    def _policy(
        self, name: str, args: CiRunnerArgs, log_group: aws.cloudwatch.LogGroup
    ) -> aws.iam.RolePolicy:
        scope = stack_scope(self, args.environment)
        return aws.iam.RolePolicy(
            f"{name}-role",
            role=self.role.id,
            policy=pulumi.Output.all(scope, log_group.arn, *args.subnet_ids).apply(
                lambda v: json.dumps(
                    runner_policy(
                        v[0],
                        log_group_arn=v[1],
                        subnet_arns=[v[0].regional("ec2") + f":subnet/{s}" for s in v[2:]],
                        connection_arn=args.connection_arn,
                    ),
                    sort_keys=True,
                )
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
