"""An S3 emulator (moto_server) on 127.0.0.1 for the benchmarks that read or write S3."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3

from serving.ports import free_port

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",  # the emulator's; it checks nothing
    "AWS_DEFAULT_REGION": "us-east-1",
}


@contextmanager
def running_emulator(bucket: str) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, str], Any]]:
    """The emulator's process, the environment a process needs to reach it, and an S3 client
    of it, with `bucket` created."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    s3 = boto3.Session("bench", "bench", region_name="us-east-1").client(
        "s3", endpoint_url=endpoint
    )
    try:
        for _ in range(100):
            try:
                s3.create_bucket(Bucket=bucket)
                break
            except Exception:  # noqa: BLE001 (the emulator is still starting)
                time.sleep(0.1)
        yield process, {**CREDENTIALS, "AWS_ENDPOINT_URL": endpoint}, s3
    finally:
        process.terminate()
        process.wait()
