"""S3 bucket policy and lifecycle documents."""

from __future__ import annotations

from typing import Any


def secure_bucket_policy(*, bucket_arn: str, kms_key_arn: str) -> dict[str, Any]:
    """Deny any request not made over TLS 1.2+, and any upload encrypted other than with our key.

    Default encryption already applies the key when a client names none; these statements stop a
    client from asking for SSE-S3 or a different key, which would bypass the key's access control.
    """
    objects = f"{bucket_arn}/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, objects],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Sid": "DenyOutdatedTls",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, objects],
                "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
            },
            {
                "Sid": "DenyUploadsNotEncryptedWithEnvironmentKey",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": objects,
                "Condition": {
                    "StringNotEqualsIfExists": {
                        "s3:x-amz-server-side-encryption-aws-kms-key-id": kms_key_arn
                    }
                },
            },
            {
                "Sid": "DenyUploadsWithS3ManagedKeys",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:PutObject",
                "Resource": objects,
                "Condition": {"StringEquals": {"s3:x-amz-server-side-encryption": "AES256"}},
            },
        ],
    }


def lifecycle_rules(
    *,
    noncurrent_version_days: int,
    incomplete_upload_days: int,
    current_version_days: int | None = None,
) -> list[dict[str, Any]]:
    """Lifecycle rules for a versioned bucket, in the `BucketLifecycleConfiguration` input shape.

    Versioning keeps every overwritten model and dataset recoverable; these rules bound what that
    costs. `current_version_days` also expires live objects, for data kept only for a while
    (captured inference traffic).
    """
    everything = {"prefix": ""}
    rules: list[dict[str, Any]] = [
        {
            "id": "expire-noncurrent-versions",
            "status": "Enabled",
            "filter": everything,
            "noncurrent_version_expiration": {"noncurrent_days": noncurrent_version_days},
        },
        {
            "id": "abort-incomplete-multipart-uploads",
            "status": "Enabled",
            "filter": everything,
            "abort_incomplete_multipart_upload": {"days_after_initiation": incomplete_upload_days},
        },
    ]
    if current_version_days is not None:
        rules.append(
            {
                "id": "expire-current-versions",
                "status": "Enabled",
                "filter": everything,
                "expiration": {"days": current_version_days},
            }
        )
    return rules
