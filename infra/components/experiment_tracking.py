"""The environment's experiment tracking: a SageMaker managed MLflow tracking server.

Training records each run there when its `MLFLOW_TRACKING_URI` is the server's ARN (the
`sagemaker-mlflow` plugin signs requests with the pod's IRSA credentials); the registered
version's metadata names the run. Artifacts live under `s3://<models bucket>/mlflow/`, beside
the models, encrypted with the environment key. The server has its own role, which reaches that
prefix and the key only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.service_role import account_service_role
from infra.config.sections.training import MLFLOW_SERVER_SIZES
from infra.documents.iam import mlflow_server_policy
from infra.project import naming


@dataclass(frozen=True, kw_only=True)
class ExperimentTrackingArgs:
    environment: str
    size: str
    """Small, Medium or Large (SageMaker's sizes: users and request volume, not runs kept)."""
    models_bucket: pulumi.Input[str]
    """The bucket's name: the artifact store is `s3://<bucket>/mlflow/`."""
    models_bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    protect: bool
    """The server holds the runs' records (its backing store is SageMaker's, not the bucket):
    with deletionProtection, `pulumi destroy` or a replacing update cannot delete it."""
    permissions_boundary: pulumi.Input[str] | None = None
    """The stack's role permissions boundary, which every role it declares then carries (set
    when CI roles exist: the deploy role may only write roles that carry it)."""

    def __post_init__(self) -> None:
        if self.size not in MLFLOW_SERVER_SIZES:
            raise ValueError(f"size = {self.size!r}: allowed: {', '.join(MLFLOW_SERVER_SIZES)}")


class ExperimentTracking(pulumi.ComponentResource):
    """`arn` is the tracking URI clients use; `url` opens the MLflow UI (through a presigned
    URL from `aws sagemaker create-presigned-mlflow-tracking-server-url`)."""

    server: aws.sagemaker.MlflowTrackingServer
    role: aws.iam.Role
    arn: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(
        self, name: str, args: ExperimentTrackingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:sagemaker:ExperimentTracking", name, None, opts)
        self.role, permissions = self._role(name, args)
        self.server = aws.sagemaker.MlflowTrackingServer(
            f"{name}-server",
            tracking_server_name=naming.mlflow_tracking_server_name(args.environment),
            tracking_server_size=args.size,
            artifact_store_uri=pulumi.Output.concat(
                "s3://", args.models_bucket, f"/{naming.MLFLOW_ARTIFACT_PREFIX}/"
            ),
            role_arn=self.role.arn,
            # Versions are registered by training, behind its quality gate, into the stack's
            # model package groups; MLflow registering models there too would bypass the gate.
            automatic_model_registration=False,
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[permissions], protect=args.protect
            ),
        )
        self.arn = self.server.arn
        self.url = self.server.tracking_server_url
        self.register_outputs({"arn": self.arn, "url": self.url})

    def _role(
        self, name: str, args: ExperimentTrackingArgs
    ) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
        """The server's own role: SageMaker of this account assumes it; it reaches the artifact
        prefix and the environment key only."""
        child = pulumi.ResourceOptions(parent=self)
        role = account_service_role(
            f"{name}-role",
            parent=self,
            service="sagemaker.amazonaws.com",
            permissions_boundary=args.permissions_boundary,
            description=f"SageMaker MLflow tracking server of {args.environment}",
        )
        permissions = aws.iam.RolePolicy(
            f"{name}-permissions",
            role=role.id,
            policy=pulumi.Output.all(args.models_bucket_arn, args.kms_key_arn).apply(
                lambda values: json.dumps(
                    mlflow_server_policy(
                        models_bucket_arn=values[0],
                        artifact_prefix=naming.MLFLOW_ARTIFACT_PREFIX,
                        kms_key_arn=values[1],
                    ),
                    sort_keys=True,
                )
            ),
            opts=child,
        )
        return role, permissions
