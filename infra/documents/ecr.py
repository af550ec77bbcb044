"""ECR lifecycle policy documents."""

from __future__ import annotations

from typing import Any


def image_lifecycle_policy(*, untagged_expiry_days: int, keep_tagged: int) -> dict[str, Any]:
    """Expire untagged images quickly and keep only the newest `keep_tagged` tagged images.

    Images are deployed by digest and tags are immutable, so an untagged image is a leftover of
    a failed or superseded push; older tagged images are what a rollback might still need.
    """
    if untagged_expiry_days < 1 or keep_tagged < 1:
        raise ValueError("untagged_expiry_days and keep_tagged: allowed: 1 or more")
    return {
        "rules": [
            {
                "rulePriority": 1,
                "description": f"Expire untagged images after {untagged_expiry_days} days",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": untagged_expiry_days,
                },
                "action": {"type": "expire"},
            },
            {
                "rulePriority": 2,
                "description": f"Keep the newest {keep_tagged} tagged images",
                "selection": {
                    "tagStatus": "tagged",
                    "tagPatternList": ["*"],
                    "countType": "imageCountMoreThan",
                    "countNumber": keep_tagged,
                },
                "action": {"type": "expire"},
            },
        ]
    }
