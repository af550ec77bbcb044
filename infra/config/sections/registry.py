"""The keys of the image repositories and the models registered in SageMaker."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from infra.config.reader import Reader
from infra.config.sections.formats import check_principal_arn
from infra.project import naming

_MODEL_NAME = re.compile(r"^[a-z0-9](-*[a-z0-9]){0,62}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True, kw_only=True)
class RegistryConfig:
    """Container image repositories and the models registered in SageMaker."""

    image_retention_count: int
    untagged_image_expiry_days: int
    image_digests: Mapping[str, str]
    """Prebuilt images by name (`serving`, `training`): `sha256:<digest>`; the others are built."""
    models: tuple[str, ...]
    reader_arns: tuple[str, ...]
    """Principals that may look up model versions; empty means the stack's own account."""


def check_model_name(value: str) -> str | None:
    if _MODEL_NAME.match(value):
        return None
    return (
        "a SageMaker name in lowercase: letters, digits and '-', starting and ending with a "
        "letter or digit"
    )


def check_image_digest(value: str) -> str | None:
    """`<image>=sha256:<64 hex digits>`, one of the images the stack builds."""
    image, equals, digest = value.partition("=")
    if equals and image in naming.IMAGES and _DIGEST.match(digest):
        return None
    return f"<image>=sha256:<64 hex digits>, the image one of {', '.join(naming.IMAGES)}"


def _image_digests(entries: tuple[str, ...]) -> dict[str, str]:
    valid = (entry.partition("=") for entry in entries if check_image_digest(entry) is None)
    return {image: digest for image, _, digest in valid}


def read_registry(read: Reader) -> RegistryConfig:
    return RegistryConfig(
        image_retention_count=read.integer("imageRetentionCount", 1, 1000),
        untagged_image_expiry_days=read.integer("untaggedImageExpiryDays", 1, 90),
        image_digests=_image_digests(read.strings("imageDigests", check_image_digest)),
        models=read.strings("models", check_model_name),
        reader_arns=read.strings("registryReaderArns", check_principal_arn),
    )
