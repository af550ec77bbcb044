"""The IAM roles of the training and serving workloads, each scoped to what that workload does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi

from infra.components.registry_arns import model_package_group_arns
from infra.components.workload_role import WorkloadRole, WorkloadRoleArgs
from infra.documents.iam import drift_policy, scoring_policy, serving_policy, training_policy
from infra.project import naming


@dataclass(frozen=True, kw_only=True)
class WorkloadIdentitiesArgs:
    """What the workloads touch, and the cluster identity they assume roles through."""

    environment: str
    models: Sequence[str]
    data_bucket_arn: pulumi.Input[str]
    models_bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    oidc_provider_arn: pulumi.Input[str]
    oidc_issuer: pulumi.Input[str]
    capture_bucket_arn: pulumi.Input[str]
    serving_captures: bool = False
    """Whether the cluster's serving writes its capture (under naming.KUBERNETES_CAPTURE_PREFIX)."""
    drift_capture_prefixes: Sequence[str] = ()
    """With any, a role for the drift job, which reads what the targets capture there."""
    permissions_boundary: pulumi.Input[str] | None = None
    """The stack's role permissions boundary, which every role it declares then carries (set
    when CI roles exist: the deploy role may only write roles that carry it)."""
    mlflow_tracking_server_arn: pulumi.Input[str] | None = None
    """With one, training may record its runs on that MLflow tracking server (only that one)."""


class WorkloadIdentities(pulumi.ComponentResource):
    """IRSA roles for `mlstack/training`, `mlstack/serving` and `mlstack/scoring`.

    Training reads data, writes artifacts and registers into this environment's model package
    groups; serving reads artifacts and writes its capture; batch scoring reads input and writes
    predictions in the data bucket; the drift job reads the capture.
    """

    training: WorkloadRole
    serving: WorkloadRole
    scoring: WorkloadRole
    drift: WorkloadRole | None

    def __init__(
        self, name: str, args: WorkloadIdentitiesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:iam:WorkloadIdentities", name, None, opts)
        group_arns = model_package_group_arns(self, args.environment, args.models)
        training = pulumi.Output.all(
            data_bucket_arn=args.data_bucket_arn,
            models_bucket_arn=args.models_bucket_arn,
            kms_key_arn=args.kms_key_arn,
            model_package_group_arns=group_arns,
            mlflow_tracking_server_arn=args.mlflow_tracking_server_arn,
        ).apply(lambda arns: training_policy(**arns))
        serving = pulumi.Output.all(
            args.models_bucket_arn, args.kms_key_arn, args.capture_bucket_arn
        ).apply(
            lambda values: serving_policy(
                models_bucket_arn=values[0],
                kms_key_arn=values[1],
                capture_bucket_arn=values[2] if args.serving_captures else None,
                capture_prefix=naming.KUBERNETES_CAPTURE_PREFIX,
            )
        )

        def role(service_account: str, policy: pulumi.Output[dict[str, object]]) -> WorkloadRole:
            return WorkloadRole(
                f"{name}-{service_account}",
                WorkloadRoleArgs(
                    namespace=naming.WORKLOAD_NAMESPACE,
                    service_account=service_account,
                    oidc_provider_arn=args.oidc_provider_arn,
                    oidc_issuer=args.oidc_issuer,
                    policy=policy,
                    permissions_boundary=args.permissions_boundary,
                ),
                pulumi.ResourceOptions(parent=self),
            )

        self.training = role(naming.TRAINING_SERVICE_ACCOUNT, training)
        self.serving = role(naming.SERVING_SERVICE_ACCOUNT, serving)
        scoring = pulumi.Output.all(
            data_bucket_arn=args.data_bucket_arn,
            models_bucket_arn=args.models_bucket_arn,
            kms_key_arn=args.kms_key_arn,
        ).apply(lambda arns: scoring_policy(**arns))
        self.scoring = role(naming.SCORING_SERVICE_ACCOUNT, scoring)
        self.drift = None
        if args.drift_capture_prefixes:
            drift = pulumi.Output.all(
                capture_bucket_arn=args.capture_bucket_arn,
                models_bucket_arn=args.models_bucket_arn,
                kms_key_arn=args.kms_key_arn,
                model_package_group_arns=group_arns,
            ).apply(lambda arns: drift_policy(capture_prefixes=args.drift_capture_prefixes, **arns))
            self.drift = role(naming.DRIFT_SERVICE_ACCOUNT, drift)
        self.register_outputs({"training": self.training.arn, "serving": self.serving.arn})
