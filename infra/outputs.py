"""Names of the stack outputs: the contract with users, scripts and later stacks."""

ENVIRONMENT = "environment"
KMS_KEY_ARN = "kmsKeyArn"
KMS_KEY_ALIAS = "kmsKeyAlias"
DATA_BUCKET = "dataBucketName"
MODELS_BUCKET = "modelsBucketName"
CAPTURE_BUCKET = "captureBucketName"
