"""The keys of the environment's KMS key and its buckets."""

from __future__ import annotations

from dataclasses import dataclass

from infra.config.reader import Reader


@dataclass(frozen=True, kw_only=True)
class StorageConfig:
    """The environment's KMS key and the data, models and capture buckets it encrypts."""

    kms_deletion_window_days: int
    noncurrent_version_retention_days: int
    incomplete_upload_abort_days: int
    capture_retention_days: int
    force_destroy_buckets: bool


def read_storage(read: Reader) -> StorageConfig:
    return StorageConfig(
        kms_deletion_window_days=read.integer("kmsDeletionWindowDays", 7, 30),
        noncurrent_version_retention_days=read.integer("noncurrentVersionRetentionDays", 1, 3650),
        incomplete_upload_abort_days=read.integer("incompleteUploadAbortDays", 1, 365),
        capture_retention_days=read.integer("captureRetentionDays", 1, 3650),
        force_destroy_buckets=read.boolean("forceDestroyBuckets"),
    )
