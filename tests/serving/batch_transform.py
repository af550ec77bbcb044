"""A stand-in for SageMaker batch transform's data plane, to drive a real server as it would.

Batch transform (SplitType=Line, BatchStrategy=MultiRecord, AssembleWith=Line) asks the
container for `GET /execution-parameters` when the job leaves them unset, splits each input
file into mini-batches of whole lines of at most MaxPayloadInMB, POSTs them to /invocations
(Content-Type and Accept text/csv) with at most MaxConcurrentTransforms in flight, and writes
the answers back by line in input order; an answer with another number of lines than its
mini-batch fails the job. MB is taken as 2^20 bytes, the larger reading, so a server that
survives this survives SageMaker's either way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.serving.conftest import Server

MIB = 1 << 20
DEFAULTS: dict[str, int | str] = {
    "MaxConcurrentTransforms": 1,
    "BatchStrategy": "MULTI_RECORD",
    "MaxPayloadInMB": 6,
}
"""What batch transform uses when the container does not answer /execution-parameters."""


class TransformJobError(AssertionError):
    """What would fail the transform job; the message says which mini-batch and why."""


@dataclass(frozen=True)
class Transformed:
    output: Path
    mini_batches: list[int]
    """Each mini-batch's size in bytes, in order."""
    parameters: dict[str, int | str]


def execution_parameters(server: Server) -> dict[str, int | str]:
    status, headers, body = server.request("GET", "/execution-parameters")
    if status == 404:
        return dict(DEFAULTS)
    if status != 200 or headers.get("content-type") != "application/json":
        raise TransformJobError(f"/execution-parameters answered {status}: {body[:200]!r}")
    parameters: dict[str, int | str] = json.loads(body)
    return parameters


def mini_batches(records: list[bytes], max_bytes: int) -> Iterator[bytes]:
    """Whole records (lines, each ending in a newline) packed in order into bodies of at most
    `max_bytes`; a record never straddles two."""
    batch: list[bytes] = []
    size = 0
    for record in records:
        if len(record) > max_bytes:
            raise TransformJobError(f"a record of {len(record)} bytes exceeds {max_bytes}")
        if size + len(record) > max_bytes:
            yield b"".join(batch)
            batch, size = [], 0
        batch.append(record)
        size += len(record)
    if batch:
        yield b"".join(batch)


def invoke(server: Server, body: bytes) -> tuple[int, bytes]:
    status, _, answer = server.post(body, "text/csv", Accept="text/csv")
    return status, answer


def transform(server: Server, source: Path, output_dir: Path) -> Transformed:
    """Score one header-less CSV file into `<output_dir>/<name>.out`, as a transform job does."""
    parameters = execution_parameters(server)
    if parameters["BatchStrategy"] != "MULTI_RECORD":
        raise TransformJobError(f"unexpected strategy {parameters['BatchStrategy']!r}")
    max_bytes = int(parameters["MaxPayloadInMB"]) * MIB
    records = [
        line if line.endswith(b"\n") else line + b"\n"
        for line in source.read_bytes().splitlines(keepends=True)
        if line.strip()
    ]
    batches = list(mini_batches(records, max_bytes))
    with ThreadPoolExecutor(int(parameters["MaxConcurrentTransforms"])) as pool:
        answers = list(pool.map(lambda body: invoke(server, body), batches))
    lines: list[bytes] = []
    for number, (body, (status, answer)) in enumerate(zip(batches, answers, strict=True)):
        if status != 200:
            raise TransformJobError(f"mini-batch {number}: {status} {answer[:200]!r}")
        got, sent = answer.splitlines(), body.count(b"\n")
        if len(got) != sent:
            raise TransformJobError(f"mini-batch {number}: {sent} records in, {len(got)} lines out")
        lines += got
    output = output_dir / f"{source.name}.out"
    output_dir.mkdir(parents=True, exist_ok=True)
    output.write_bytes(b"".join(line + b"\n" for line in lines))
    return Transformed(output, [len(body) for body in batches], parameters)
