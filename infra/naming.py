"""Physical names that are contracts, built in one place.

Everything else is auto-named by Pulumi. These names are known to code outside the stack
(training registers into the model package group; people and tools find the key by its alias).
"""


def kms_alias(environment: str) -> str:
    """The alias of an environment's KMS key."""
    return f"alias/mlstack-{environment}"


def model_package_group(model: str, environment: str) -> str:
    """The SageMaker model package group that versions of `model` register into."""
    return f"{model}-{environment}"
