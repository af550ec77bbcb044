"""The training and serving images: built from their Dockerfiles and pushed to the stack's
repositories, or taken as prebuilt digests; referenced by digest everywhere downstream."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_docker_build as docker_build

from infra.project import naming
from infra.project.paths import PROJECT_ROOT

PLATFORM = docker_build.Platform.LINUX_AMD64
"""The node groups' architecture (x86 instance families) and SageMaker's."""


@dataclass(frozen=True, kw_only=True)
class ImagesArgs:
    images: Sequence[str]
    """The images the stack runs (of naming.IMAGES); the others are neither built nor named."""
    repository_urls: Mapping[str, pulumi.Input[str]]
    """Each image's ECR repository URL, by image name."""
    registry_id: pulumi.Input[str]
    """The account whose registry the repositories are in (for the push credentials)."""
    tags: Mapping[str, str]
    """The source revision of each image to build (see `infra.components.image_sources`)."""
    prebuilt: Mapping[str, str] = field(default_factory=dict)
    """`sha256:<digest>` of images not to build: already pushed to their repository."""


class Images(pulumi.ComponentResource):
    """`refs`: `<repository>@sha256:<digest>` of each image, for Kubernetes and SageMaker.

    Builds run on `pulumi up` only (never on preview) and push the source revision's tag; the
    registry cache in the repository makes a rebuild of unchanged layers a download.
    """

    refs: dict[str, pulumi.Output[str]]

    def __init__(
        self, name: str, args: ImagesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("mlstack:images:Images", name, None, opts)
        self.refs = {}
        token: pulumi.Output[aws.ecr.GetAuthorizationTokenResult] | None = None
        for image in args.images:
            url = pulumi.Output.from_input(args.repository_urls[image])
            if image in args.prebuilt:
                self.refs[image] = pulumi.Output.concat(url, "@", args.prebuilt[image])
                continue
            if token is None:  # push credentials, only asked for when something is built
                token = aws.ecr.get_authorization_token_output(
                    registry_id=args.registry_id, opts=pulumi.InvokeOutputOptions(parent=self)
                )
            cache = pulumi.Output.concat(url, ":", naming.BUILD_CACHE_TAG)
            built = docker_build.Image(
                f"{name}-{image}",
                docker_build.ImageArgs(
                    context=docker_build.BuildContextArgs(location=str(PROJECT_ROOT)),
                    dockerfile=docker_build.DockerfileArgs(
                        location=str(PROJECT_ROOT / image / "Dockerfile")
                    ),
                    platforms=[PLATFORM],
                    tags=[pulumi.Output.concat(url, ":", args.tags[image])],
                    push=True,
                    build_on_preview=False,
                    registries=[
                        docker_build.RegistryArgs(
                            address=token.proxy_endpoint,
                            username=token.user_name,
                            password=token.password,
                        )
                    ],
                    cache_from=[
                        docker_build.CacheFromArgs(
                            registry=docker_build.CacheFromRegistryArgs(ref=cache)
                        )
                    ],
                    cache_to=[
                        docker_build.CacheToArgs(
                            registry=docker_build.CacheToRegistryArgs(
                                ref=cache,
                                mode=docker_build.CacheMode.MAX,
                                image_manifest=True,
                                oci_media_types=True,
                            )
                        )
                    ],
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.refs[image] = pulumi.Output.concat(url, "@", built.digest)
        self.register_outputs({"refs": self.refs})
