"""The mlstack Pulumi program: read the stack's config, wire the components, export outputs."""

import pulumi

from infra import outputs
from infra.components.keys import EnvironmentKey, EnvironmentKeyArgs
from infra.components.storage import Storage, StorageArgs
from infra.config import from_pulumi

config = from_pulumi()

key = EnvironmentKey(
    "key",
    EnvironmentKeyArgs(
        environment=config.environment,
        deletion_window_days=config.storage.kms_deletion_window_days,
        protect=config.deletion_protection,
    ),
)
storage = Storage(
    "storage",
    StorageArgs(
        kms_key_arn=key.arn,
        noncurrent_version_retention_days=config.storage.noncurrent_version_retention_days,
        incomplete_upload_abort_days=config.storage.incomplete_upload_abort_days,
        capture_retention_days=config.storage.capture_retention_days,
        force_destroy=config.storage.force_destroy_buckets,
        protect=config.deletion_protection,
    ),
)

pulumi.export(outputs.ENVIRONMENT, config.environment)
pulumi.export(outputs.KMS_KEY_ARN, key.arn)
pulumi.export(outputs.KMS_KEY_ALIAS, key.alias.name)
pulumi.export(outputs.DATA_BUCKET, storage.data.name)
pulumi.export(outputs.MODELS_BUCKET, storage.models.name)
pulumi.export(outputs.CAPTURE_BUCKET, storage.capture.name)
