"""S3 bucket policy and lifecycle documents."""

from __future__ import annotations

from typing import Any


def _deny(
    sid: str, action: str, resource: str | list[str], condition: dict[str, Any]
) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Deny",
        "Principal": "*",
        "Action": action,
        "Resource": resource,
        "Condition": condition,
    }


def secure_bucket_policy(*, bucket_arn: str, kms_key_arn: str) -> dict[str, Any]:
    """Deny any request not made over TLS 1.2+, and any upload encrypted other than with our key.

    Default encryption already applies the key when a client names none; these statements stop a
    client from asking for SSE-S3 or a different key, which would bypass the key's access control.
    """
    everything, objects = [bucket_arn, f"{bucket_arn}/*"], f"{bucket_arn}/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            _deny(
                "DenyInsecureTransport",
                "s3:*",
                everything,
                {"Bool": {"aws:SecureTransport": "false"}},
            ),
            _deny(
                "DenyOutdatedTls",
                "s3:*",
                everything,
                {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
            ),
            _deny(
                "DenyUploadsNotEncryptedWithEnvironmentKey",
                "s3:PutObject",
                objects,
                {
                    "StringNotEqualsIfExists": {
                        "s3:x-amz-server-side-encryption-aws-kms-key-id": kms_key_arn
                    }
                },
            ),
            _deny(
                "DenyUploadsWithS3ManagedKeys",
                "s3:PutObject",
                objects,
                {"StringEquals": {"s3:x-amz-server-side-encryption": "AES256"}},
            ),
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
