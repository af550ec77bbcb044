"""moto's ECR, extended where it differs from ECR, for tests that copy images between
repositories: its `PutImage` here refuses a manifest whose blobs the repository lacks
(LayersNotFoundException, as ECR documents in API_PutImage) and gives an image the digest of its
manifest's bytes (moto hashes the layers' digests, or draws a random one for an index); its
`GetDownloadUrlForLayer` (not implemented by moto) answers with a URL on 127.0.0.1 that serves
the blob's bytes, as ECR's presigned S3 URL does."""

from __future__ import annotations

import hashlib
import http.server
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.core.exceptions import JsonRESTError
from moto.ecr import models as ecr_models
from moto.ecr import responses as ecr_responses

from infra.operations.image_copy import ImageLocation
from tests.aws import use_emulator_credentials
from tests.loopback import http_server

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
ACCOUNT = "123456789012"


def digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


@dataclass
class Blobs:
    """The bytes of every blob uploaded to the emulator, served on loopback."""

    by_digest: dict[str, bytes]
    url: str


@contextmanager
def extended_ecr(monkeypatch: pytest.MonkeyPatch, region: str) -> Iterator[tuple[Any, Blobs]]:
    """An ECR client of the extended emulator (inside `mock_aws`), and the blobs it holds."""
    use_emulator_credentials(monkeypatch, region)
    blobs = Blobs({}, "")

    class Serve(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            blob = blobs.by_digest.get(self.path.lstrip("/"))
            self.send_response(200 if blob is not None else 404)
            self.end_headers()
            self.wfile.write(blob or b"")

        def log_message(self, *_: Any) -> None:
            pass

    original_part = ecr_models.ECRBackend.upload_layer_part
    original_put = ecr_models.ECRBackend.put_image

    def upload_layer_part(
        self: Any, repository_name: str, upload_id: str, *args: Any, **kwargs: Any
    ) -> Any:
        answer = original_part(self, repository_name, upload_id, *args, **kwargs)
        upload = self._get_repository(repository_name, None).uploads[upload_id]
        content = bytes(upload.layer_parts)
        blobs.by_digest[digest(content)] = content
        return answer

    def put_image(
        self: Any,
        repository_name: str,
        image_manifest: str,
        image_tag: Any,
        media_type: Any = None,
        image_digest: Any = None,
    ) -> Any:
        manifest = json.loads(image_manifest)
        repository = self._get_repository(repository_name, None)
        if manifest.get("manifests"):
            known = {image.get_image_digest() for image in repository.images}
            needed = [m["digest"] for m in manifest["manifests"]]
        else:
            known = set(repository.layers)
            needed = [manifest["config"]["digest"], *(x["digest"] for x in manifest["layers"])]
        missing = [d for d in needed if d not in known]
        if missing:
            raise JsonRESTError(
                "LayersNotFoundException", f"Layers {missing} are not available in the repository"
            )
        return original_put(
            self,
            repository_name,
            image_manifest,
            image_tag,
            media_type,
            image_digest or digest(image_manifest.encode()),
        )

    def get_download_url_for_layer(self: Any) -> str:
        layer = self._get_param("layerDigest")
        return json.dumps({"downloadUrl": f"{blobs.url}/{layer}", "layerDigest": layer})

    monkeypatch.setattr(ecr_models.ECRBackend, "upload_layer_part", upload_layer_part)
    monkeypatch.setattr(ecr_models.ECRBackend, "put_image", put_image)
    monkeypatch.setattr(
        ecr_responses.ECRResponse, "get_download_url_for_layer", get_download_url_for_layer
    )
    with http_server(Serve) as blobs.url, mock_aws():
        yield boto3.client("ecr", region_name=region), blobs


def upload(client: Any, repository: str, blob: bytes) -> str:
    upload_id = client.initiate_layer_upload(repositoryName=repository)["uploadId"]
    client.upload_layer_part(
        repositoryName=repository,
        uploadId=upload_id,
        partFirstByte=0,
        partLastByte=len(blob) - 1,
        layerPartBlob=blob,
    )
    client.complete_layer_upload(
        repositoryName=repository, uploadId=upload_id, layerDigests=[digest(blob)]
    )
    return digest(blob)


def repository(client: Any, name: str) -> str:
    return str(client.create_repository(repositoryName=name)["repository"]["repositoryUri"])


def push(client: Any, name: str, tag: str, *, index: bool = False) -> ImageLocation:
    """An image as a build pushes it: its config and layers, its manifest (and with `index`, an
    image index listing it, as BuildKit pushes a multi-platform image)."""
    url = repository(client, name)
    config = upload(client, name, json.dumps({"architecture": "amd64", "tag": tag}).encode())
    layers = [upload(client, name, f"layer {i} of {tag}".encode() * 100) for i in range(2)]
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config,
                "size": 1,
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer,
                    "size": 1,
                }
                for layer in layers
            ],
        }
    )
    client.put_image(
        repositoryName=name,
        imageManifest=manifest,
        imageManifestMediaType=MANIFEST,
        imageTag=f"{tag}-image" if index else tag,
    )
    top = manifest
    if index:
        top = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": INDEX,
                "manifests": [
                    {
                        "mediaType": MANIFEST,
                        "digest": digest(manifest.encode()),
                        "size": len(manifest),
                    }
                ],
            }
        )
        client.put_image(
            repositoryName=name, imageManifest=top, imageManifestMediaType=INDEX, imageTag=tag
        )
    return ImageLocation(url, digest(top.encode()))


def tags(client: Any, name: str) -> dict[str, list[str]]:
    return {
        image["imageDigest"]: sorted(image.get("imageTags", []))
        for image in client.describe_images(repositoryName=name)["imageDetails"]
    }
