"""The data, models and capture buckets: private, versioned, encrypted with the environment key."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import cast

import pulumi
import pulumi_aws as aws

from infra.documents.s3 import lifecycle_rules, secure_bucket_policy


@dataclass(frozen=True, kw_only=True)
class SecureBucketArgs:
    """Settings of one bucket."""

    role: str
    """What the bucket holds (data, models, capture); becomes a tag."""
    kms_key_arn: pulumi.Input[str]
    """The key used for default encryption and required on every upload."""
    noncurrent_version_days: int
    incomplete_upload_days: int
    current_version_days: int | None = None
    """Expire live objects after this many days; None keeps them."""
    force_destroy: bool = False
    """Let `pulumi destroy` delete the bucket with its objects."""
    protect: bool = True
    """Refuse to delete the bucket from `pulumi destroy` or a replacing update."""

    def __post_init__(self) -> None:
        if self.force_destroy and self.protect:
            raise ValueError(
                f"bucket {self.role}: force_destroy and protect together: allowed: at most one"
            )
        for field, value in (
            ("noncurrent_version_days", self.noncurrent_version_days),
            ("incomplete_upload_days", self.incomplete_upload_days),
            ("current_version_days", self.current_version_days),
        ):
            if value is not None and value < 1:
                raise ValueError(f"bucket {self.role}: {field} = {value}: allowed: 1 or more")


class SecureBucket(pulumi.ComponentResource):
    """One S3 bucket with every protection on.

    Ownership enforced (no ACLs), all public access blocked, versioning, SSE-KMS with bucket
    keys, a TLS-only policy that also refuses other encryption, and lifecycle rules.
    """

    bucket: aws.s3.Bucket
    name: pulumi.Output[str]
    arn: pulumi.Output[str]

    def __init__(
        self, name: str, args: SecureBucketArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:storage:SecureBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.bucket = aws.s3.Bucket(
            f"{name}-bucket",
            force_destroy=args.force_destroy,
            tags={"mlstack:role": args.role},
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        bucket_id = self.bucket.id
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket_id,
            rule={"object_ownership": "BucketOwnerEnforced"},
            opts=child,
        )
        public_access = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket_id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket_id,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket_id,
            rules=[
                {
                    "apply_server_side_encryption_by_default": {
                        "sse_algorithm": "aws:kms",
                        "kms_master_key_id": args.kms_key_arn,
                    },
                    "bucket_key_enabled": True,
                }
            ],
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket_id,
            policy=pulumi.Output.all(self.bucket.arn, args.kms_key_arn).apply(
                lambda values: json.dumps(
                    secure_bucket_policy(bucket_arn=values[0], kms_key_arn=values[1]),
                    sort_keys=True,
                )
            ),
            # S3 rejects a bucket policy while the public access block is being changed.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[public_access]),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket_id,
            # The builder returns plain data in the input shape; the provider types are TypedDicts.
            rules=cast(
                "list[aws.s3.BucketLifecycleConfigurationRuleArgsDict]",
                lifecycle_rules(
                    noncurrent_version_days=args.noncurrent_version_days,
                    incomplete_upload_days=args.incomplete_upload_days,
                    current_version_days=args.current_version_days,
                ),
            ),
            opts=child,
        )
        self.name = self.bucket.bucket
        self.arn = self.bucket.arn
        self.register_outputs({"name": self.name, "arn": self.arn})


@dataclass(frozen=True, kw_only=True)
class StorageArgs:
    """Settings shared by the stack's three buckets."""

    kms_key_arn: pulumi.Input[str]
    noncurrent_version_retention_days: int
    incomplete_upload_abort_days: int
    capture_retention_days: int
    """Captured inference traffic is deleted after this many days."""
    force_destroy: bool
    protect: bool


class Storage(pulumi.ComponentResource):
    """The data bucket (training input), the models bucket (artifacts) and the capture bucket."""

    data: SecureBucket
    models: SecureBucket
    capture: SecureBucket

    def __init__(
        self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:storage:Storage", name, None, opts)

        def bucket(role: str, current_version_days: int | None = None) -> SecureBucket:
            return SecureBucket(
                f"{name}-{role}",
                SecureBucketArgs(
                    role=role,
                    kms_key_arn=args.kms_key_arn,
                    noncurrent_version_days=args.noncurrent_version_retention_days,
                    incomplete_upload_days=args.incomplete_upload_abort_days,
                    current_version_days=current_version_days,
                    force_destroy=args.force_destroy,
                    protect=args.protect,
                ),
                pulumi.ResourceOptions(parent=self),
            )

        self.data = bucket("data")
        self.models = bucket("models")
        self.capture = bucket("capture", current_version_days=args.capture_retention_days)
        self.register_outputs(
            {"data": self.data.name, "models": self.models.name, "capture": self.capture.name}
        )
