"""Reading and writing local paths and `s3://` URIs through one interface.

S3 goes through boto3 only, so the same code runs against AWS, against an emulator named by
`AWS_ENDPOINT_URL`, and under moto.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class StorageError(OSError):
    """A path or URI could not be read or written; the message names it."""


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def split_s3(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` as (bucket, key)."""
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise StorageError(f"{uri!r} is not an s3://bucket/key URI")
    return parsed.netloc, parsed.path.lstrip("/")


def join(base: str, *parts: str) -> str:
    """A child of a local directory or an S3 prefix."""
    if is_s3(base):
        return "/".join([base.rstrip("/"), *(part.strip("/") for part in parts)])
    return str(Path(base).joinpath(*parts))


@cache
def s3_client() -> S3Client:
    import boto3

    return boto3.client("s3")


def read_bytes(uri: str) -> bytes:
    try:
        if is_s3(uri):
            bucket, key = split_s3(uri)
            body: Any = s3_client().get_object(Bucket=bucket, Key=key)["Body"]
            return bytes(body.read())
        return Path(uri).read_bytes()
    except StorageError:
        raise
    except Exception as error:  # boto3 and OS errors become one readable message
        raise StorageError(f"cannot read {uri}: {error}") from error


def write_bytes(uri: str, data: bytes, content_type: str = "application/octet-stream") -> None:
    try:
        if is_s3(uri):
            bucket, key = split_s3(uri)
            s3_client().put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
            return
        path = Path(uri)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except StorageError:
        raise
    except Exception as error:
        raise StorageError(f"cannot write {uri}: {error}") from error


def delete(uri: str) -> None:
    """Remove an object or file; nothing to remove is not an error."""
    try:
        if is_s3(uri):
            bucket, key = split_s3(uri)
            s3_client().delete_object(Bucket=bucket, Key=key)
            return
        Path(uri).unlink(missing_ok=True)
    except Exception as error:
        raise StorageError(f"cannot delete {uri}: {error}") from error


def exists(uri: str) -> bool:
    if not is_s3(uri):
        return Path(uri).exists()
    bucket, key = split_s3(uri)
    try:
        response = s3_client().list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
    except Exception as error:  # boto3's errors become one readable message
        raise StorageError(f"cannot look for {uri}: {error}") from error
    return any(item["Key"] == key for item in response.get("Contents", []))


def download(uri: str, path: Path) -> None:
    """Stream an s3:// object to a local file (bounded memory)."""
    bucket, key = split_s3(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        s3_client().download_file(bucket, key, str(path))
    except Exception as error:  # boto3's errors become one readable message
        raise StorageError(f"cannot read {uri}: {error}") from error


def upload(path: Path, uri: str) -> None:
    """Upload a local file to s3:// in parts (bounded memory); the object appears complete."""
    bucket, key = split_s3(uri)
    try:
        s3_client().upload_file(str(path), bucket, key)
    except Exception as error:
        raise StorageError(f"cannot write {uri}: {error}") from error


DATA_SUFFIXES = (".csv", ".parquet", ".pq")
"""The table formats training reads and batch scoring scores."""


def list_data_files(location: str) -> list[str]:
    """Data files (`DATA_SUFFIXES`) under a path, directory or s3:// prefix, sorted; a file is
    itself."""
    if is_s3(location):
        bucket, prefix = split_s3(location)
        try:
            paginator = s3_client().get_paginator("list_objects_v2")
            keys = [
                item["Key"]
                for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
                for item in page.get("Contents", [])
            ]
        except Exception as error:
            raise StorageError(f"cannot list {location}: {error}") from error
        return sorted(f"s3://{bucket}/{key}" for key in keys if key.endswith(DATA_SUFFIXES))
    path = Path(location)
    if path.is_file():
        return [str(path)]
    return sorted(str(p) for p in path.rglob("*") if p.suffix in DATA_SUFFIXES and p.is_file())
