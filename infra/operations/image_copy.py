"""Copying an image, by digest, from one environment's ECR repository into another's.

Each environment has its own repositories, so a promotion that points prod at the digests
staging runs must first put those images into prod's. ECR's `PutImage` accepts a manifest only
when every blob it names (config and layers) is already in the target repository (it answers
LayersNotFoundException otherwise), and a manifest list only when each manifest it lists is:
so each blob the target lacks is downloaded from the source (`GetDownloadUrlForLayer`, a
presigned URL) and uploaded into the target (`InitiateLayerUpload`, `UploadLayerPart`,
`CompleteLayerUpload`), each listed manifest is copied the same way, then the manifest is put
under its own digest and the source's tag. Copying an image the target already has changes
nothing. The calls made, and nothing else, are what `image_copy_policy` allows.
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from infra.operations.errors import RefusedError, UnreachableError

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
INDEX_TYPES = MANIFEST_TYPES[:2]
DOWNLOAD_TIMEOUT_SECONDS = 300
COPY_ACTIONS_SOURCE = ("ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer")
COPY_ACTIONS_TARGET = (
    "ecr:BatchGetImage",
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
)


@dataclass(frozen=True)
class ImageLocation:
    """An image in a repository: `<registry>.dkr.ecr.<region>.amazonaws.com/<repository>`."""

    repository_url: str
    digest: str

    @property
    def repository(self) -> str:
        return self.repository_url.split("/", 1)[1]

    @property
    def registry_id(self) -> str:
        return self.repository_url.split(".", 1)[0]

    @property
    def reference(self) -> str:
        return f"{self.repository_url}@{self.digest}"


@dataclass
class CopyReport:
    """What a copy did: blobs it uploaded, manifests it put, and whether the target already had
    the image."""

    uploaded: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    already_there: bool = False


def repository_arn(location: ImageLocation, partition: str = "aws") -> str:
    region = location.repository_url.split(".")[3]
    return f"arn:{partition}:ecr:{region}:{location.registry_id}:repository/{location.repository}"


def image_copy_policy(*, source_arns: list[str], target_arns: list[str]) -> dict[str, Any]:
    """The least an operator (or a job) needs to copy images from the source repositories into
    the target ones: read the source's manifests and blobs, check, upload and put into the
    target's. (An ECR login is not needed: the copy goes through ECR's API.)"""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadTheSourceImages",
                "Effect": "Allow",
                "Action": list(COPY_ACTIONS_SOURCE),
                "Resource": source_arns,
            },
            {
                "Sid": "PutTheImagesIntoTheTarget",
                "Effect": "Allow",
                "Action": list(COPY_ACTIONS_TARGET),
                "Resource": target_arns,
            },
        ],
    }


def copy_image(
    source: ImageLocation,
    target_repository_url: str,
    *,
    source_client: Any,
    target_client: Any,
    tag: str | None = None,
) -> CopyReport:
    """Put the image `source` names into `target_repository_url` under the same digest (and
    `tag`). Refused when the source has no such image, or the target already has `tag` on
    another image (tags are immutable there)."""
    target = ImageLocation(target_repository_url, source.digest)
    report = CopyReport()
    if _manifest(target_client, target) is not None:
        report.already_there = True
        return report
    manifest = _manifest(source_client, source)
    if manifest is None:
        raise RefusedError(f"{source.reference} is not in its repository: nothing to copy")
    _copy_manifest(source, target, manifest, source_client, target_client, report, tag)
    return report


def _manifest(client: Any, location: ImageLocation) -> tuple[str, str] | None:
    """(manifest, media type) of the image, or None when the repository lacks it."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        found = client.batch_get_image(
            registryId=location.registry_id,
            repositoryName=location.repository,
            imageIds=[{"imageDigest": location.digest}],
            acceptedMediaTypes=list(MANIFEST_TYPES),
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "RepositoryNotFoundException":
            raise RefusedError(f"no repository {location.repository_url}") from error
        raise UnreachableError(f"ECR: {error}") from error
    except BotoCoreError as error:
        raise UnreachableError(f"ECR: {error}") from error
    images = found.get("images") or []
    if not images:
        return None
    manifest = str(images[0]["imageManifest"])
    media_type = images[0].get("imageManifestMediaType") or json.loads(manifest).get("mediaType")
    return manifest, str(media_type)


def _children(manifest: Mapping[str, Any]) -> Iterator[str]:
    for entry in manifest.get("manifests") or []:
        yield str(entry["digest"])


def _blobs(manifest: Mapping[str, Any]) -> Iterator[str]:
    if manifest.get("config"):
        yield str(manifest["config"]["digest"])
    for layer in manifest.get("layers") or []:
        yield str(layer["digest"])


def _copy_manifest(
    source: ImageLocation,
    target: ImageLocation,
    found: tuple[str, str],
    source_client: Any,
    target_client: Any,
    report: CopyReport,
    tag: str | None,
) -> None:
    manifest, media_type = found
    parsed = json.loads(manifest)
    if media_type in INDEX_TYPES:
        for child in _children(parsed):
            child_source = ImageLocation(source.repository_url, child)
            child_target = ImageLocation(target.repository_url, child)
            if _manifest(target_client, child_target) is not None:
                continue
            child_manifest = _manifest(source_client, child_source)
            if child_manifest is None:
                raise RefusedError(f"{source.reference} lists {child}, which is not there")
            _copy_manifest(
                child_source,
                child_target,
                child_manifest,
                source_client,
                target_client,
                report,
                None,
            )
    else:
        _copy_blobs(source, target, list(_blobs(parsed)), source_client, target_client, report)
    request: dict[str, Any] = {
        "registryId": target.registry_id,
        "repositoryName": target.repository,
        "imageManifest": manifest,
        "imageManifestMediaType": media_type,
        "imageDigest": target.digest,
    }
    if tag:
        request["imageTag"] = tag
    try:
        target_client.put_image(**request)
    except target_client.exceptions.ImageAlreadyExistsException:
        pass
    except target_client.exceptions.ImageTagAlreadyExistsException as error:
        raise RefusedError(
            f"{target.repository_url} already has the tag {tag} on another image (tags are "
            "immutable there): not copied"
        ) from error
    report.manifests.append(target.digest)


def _copy_blobs(
    source: ImageLocation,
    target: ImageLocation,
    digests: list[str],
    source_client: Any,
    target_client: Any,
    report: CopyReport,
) -> None:
    if not digests:
        return
    checked = target_client.batch_check_layer_availability(
        registryId=target.registry_id, repositoryName=target.repository, layerDigests=digests
    )
    present = {
        layer["layerDigest"]
        for layer in checked.get("layers") or []
        if layer.get("layerAvailability") == "AVAILABLE"
    }
    for digest in digests:
        if digest in present:
            continue
        url = source_client.get_download_url_for_layer(
            registryId=source.registry_id, repositoryName=source.repository, layerDigest=digest
        )["downloadUrl"]
        _upload(target, digest, _download(url, digest), target_client)
        report.uploaded.append(digest)


def _download(url: str, digest: str) -> bytes:
    """The blob at a presigned URL, checked against its digest."""
    if not url.startswith(("https://", "http://127.0.0.1:")):
        raise RefusedError(f"ECR gave a download URL that is not HTTPS: {url[:60]}")
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:  # noqa: S310 (checked above)
            blob = bytes(response.read())
    except OSError as error:
        raise UnreachableError(f"downloading {digest}: {error}") from error
    if "sha256:" + hashlib.sha256(blob).hexdigest() != digest:
        raise UnreachableError(f"downloaded {digest}, but its bytes hash to something else")
    return blob


def _upload(target: ImageLocation, digest: str, blob: bytes, client: Any) -> None:
    started = client.initiate_layer_upload(
        registryId=target.registry_id, repositoryName=target.repository
    )
    upload, part = started["uploadId"], int(started.get("partSize") or len(blob) or 1)
    for first in range(0, len(blob), part):
        chunk = blob[first : first + part]
        client.upload_layer_part(
            registryId=target.registry_id,
            repositoryName=target.repository,
            uploadId=upload,
            partFirstByte=first,
            partLastByte=first + len(chunk) - 1,
            layerPartBlob=chunk,
        )
    client.complete_layer_upload(
        registryId=target.registry_id,
        repositoryName=target.repository,
        uploadId=upload,
        layerDigests=[digest],
    )
