"""ECR repositories for the images the stack builds: scanned, immutable, encrypted, pruned."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.documents.ecr import image_lifecycle_policy
from infra.project import naming


@dataclass(frozen=True, kw_only=True)
class ContainerRegistryArgs:
    """Settings shared by the image repositories."""

    kms_key_arn: pulumi.Input[str]
    keep_tagged_images: int
    untagged_expiry_days: int
    force_delete: bool
    """Let `pulumi destroy` delete a repository that still holds images."""

    def __post_init__(self) -> None:
        image_lifecycle_policy(
            untagged_expiry_days=self.untagged_expiry_days, keep_tagged=self.keep_tagged_images
        )


class ContainerRegistry(pulumi.ComponentResource):
    """One ECR repository per image in `naming.IMAGES`."""

    repositories: dict[str, aws.ecr.Repository]
    urls: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: ContainerRegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:registry:ContainerRegistry", name, None, opts)
        policy = json.dumps(
            image_lifecycle_policy(
                untagged_expiry_days=args.untagged_expiry_days,
                keep_tagged=args.keep_tagged_images,
            ),
            sort_keys=True,
        )
        self.repositories = {}
        for image in naming.IMAGES:
            repository = aws.ecr.Repository(
                f"{name}-{image}",
                # Every tag is immutable except the build cache, which each build rewrites.
                image_tag_mutability="IMMUTABLE_WITH_EXCLUSION",
                image_tag_mutability_exclusion_filters=[
                    {"filter": naming.BUILD_CACHE_TAG, "filter_type": "WILDCARD"}
                ],
                image_scanning_configuration={"scan_on_push": True},
                encryption_configurations=[{"encryption_type": "KMS", "kms_key": args.kms_key_arn}],
                force_delete=args.force_delete,
                opts=pulumi.ResourceOptions(parent=self),
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-{image}",
                repository=repository.name,
                policy=policy,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.repositories[image] = repository
        self.urls = {image: repo.repository_url for image, repo in self.repositories.items()}
        self.register_outputs({"urls": self.urls})
