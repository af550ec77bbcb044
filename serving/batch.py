"""`python -m serving.batch`: score CSV or Parquet files in bounded memory, resumably.

    python -m serving.batch --input s3://bucket/scoring/ --output s3://bucket/predictions/ \
        --model s3://bucket/models/demo/.../model.tar.gz --id-column customer_id

Each input file (a file, a directory, or every .csv/.parquet object under an s3:// prefix) is
read in chunks of `--chunk-rows`, scored with the same predictor the server uses, and written
to `<output>/<name>.predictions.<csv|parquet>`: the row id (the `--id-column` value, or the
row's number in the file), the prediction and, for classifiers, one probability per class.
An output appears only when its file is complete (a rename locally, a single upload to S3), so
a re-run skips the files already done and redoes only the one that was interrupted.

CSV files have a header; columns are picked by feature name, so extra columns are fine.

Sharding: with `--shards N`, a process scores only its share of the files, those at positions
`I`, `I+N`, `I+2N`, ... of the sorted listing, where `I` is `--shard-index`, else the
`JOB_COMPLETION_INDEX` that Kubernetes gives each pod of an Indexed Job. Every process computes
the split from the listing alone, so N of them together score every file exactly once provided
they all see the same listing (the same files under the input while they start); a pod that is
run again skips what it already finished.

Progress and failures are JSON log lines on stderr (`mlstack_common.logs`); exit statuses are
those of `mlstack_common.exits`, as `EXIT_HELP` lists them.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mlstack_common import storage
from mlstack_common.exits import ExitStatus, exit_status_help
from mlstack_common.logs import configure_logging
from serving.model import Predictor, load_predictor
from serving.settings import model_uri_from

COMMAND = "python -m serving.batch"
log = logging.getLogger("mlstack.serving.batch")
SHARD_INDEX_ENV = "JOB_COMPLETION_INDEX"
"""Set by Kubernetes in every container of an Indexed Job's pod: the pod's completion index."""
EXIT_HELP = exit_status_help(
    ExitStatus.OK,
    ExitStatus.REFUSED,
    ExitStatus.USAGE,
    ExitStatus.UNREACHABLE,
    details={
        ExitStatus.REFUSED: "a file does not fit the model (the message names the file, column "
        "and row; that file's output is not written), the model cannot be used, or there is "
        "nothing to score",
        ExitStatus.USAGE: f"bad arguments, or a {SHARD_INDEX_ENV} outside the shards",
        ExitStatus.UNREACHABLE: "storage could not be reached or failed (reading the model, "
        "listing, reading or writing files)",
    },
)


def shard(files: Sequence[str], shards: int, index: int) -> list[str]:
    """The files shard `index` of `shards` scores: every `shards`-th of the sorted listing,
    from position `index`. A pure function of the listing, so each process computes its share
    alone and the shares cover every file exactly once; counts differ by one at most."""
    if shards < 1 or not 0 <= index < shards:
        raise ValueError(
            f"shard {index} of {shards}: allowed: 1 or more shards, an index from 0 to shards - 1"
        )
    return sorted(files)[index::shards]


class BatchInputError(ValueError):
    """An input file does not fit the model."""


@dataclass(frozen=True)
class FileResult:
    name: str
    rows: int
    seconds: float
    skipped: bool


def _output_name(source: str) -> str:
    name = source.rstrip("/").rsplit("/", 1)[-1]
    stem, _, suffix = name.rpartition(".")
    kind = "parquet" if suffix in ("parquet", "pq") else "csv"
    return f"{stem}.predictions.{kind}"


def _chunks(path: Path, chunk_rows: int) -> Iterator[Any]:
    """Record batches of at most `chunk_rows` rows; memory stays bounded by the chunk size. A
    file that cannot be read as its kind does not fit the model either."""
    import pyarrow as pa

    try:
        yield from _read(path, chunk_rows)
    except pa.ArrowException as error:
        kind = "Parquet" if path.suffix in (".parquet", ".pq") else "CSV"
        raise BatchInputError(f"{path.name}: not readable as {kind}: {error}") from error


def _read(path: Path, chunk_rows: int) -> Iterator[Any]:
    if path.suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        yield from pq.ParquetFile(path).iter_batches(batch_size=chunk_rows)
        return
    import pyarrow.csv as pacsv

    reader = pacsv.open_csv(
        path, read_options=pacsv.ReadOptions(block_size=1 << 22, use_threads=False)
    )
    for batch in reader:
        for start in range(0, batch.num_rows, chunk_rows):
            yield batch.slice(start, chunk_rows)


def _matrix(batch: Any, predictor: Predictor, name: str, offset: int) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    columns = []
    for feature in predictor.metadata.features:
        if feature.name not in batch.schema.names:
            raise BatchInputError(
                f"{name}: no column {feature.name!r}; the model needs "
                + ", ".join(predictor.metadata.feature_names)
            )
        column = batch.column(feature.name)
        if feature.type == "numeric":
            try:
                if column.type != pa.float64():  # a cast costs even when it changes nothing
                    column = pc.cast(column, pa.float64())
                values = column.to_numpy(zero_copy_only=False)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise BatchInputError(
                    f"{name}: column {feature.name!r} in rows {offset + 1}-{offset + len(column)} "
                    f"holds values that are not numbers: {error}"
                ) from error
            values = np.asarray(values, dtype=np.float64)
            bad = ~np.isfinite(values)
            if not feature.nullable:
                bad |= np.isnan(values)
            elif bad.any():
                bad &= ~np.isnan(values)
            if bad.any():
                row = offset + int(np.flatnonzero(bad)[0]) + 1
                raise BatchInputError(
                    f"{name}: column {feature.name!r}, row {row}: expected a finite number"
                    + ("" if feature.nullable else " (the feature is not nullable)")
                )
        else:
            values = np.asarray(column.cast(pa.string()).to_pylist(), dtype=object)
        columns.append(values)
    return np.column_stack(columns).astype(predictor.dtype, copy=False)


def _write_chunk(
    handle: Any, writer: Any, ids: np.ndarray, predictions: Any, predictor: Predictor, csv: bool
) -> Any:
    """Append one chunk's rows; returns the state to pass with the next chunk."""
    import pyarrow as pa

    columns: dict[str, Any] = {"id": ids, "prediction": predictions.labels}
    if predictions.probabilities is not None:
        for index, label in enumerate(predictor.metadata.classes):
            columns[f"probability_{label}"] = predictions.probabilities[:, index]
    table = pa.table(columns)
    if csv:
        import pyarrow.csv as pacsv

        pacsv.write_csv(
            table, handle, write_options=pacsv.WriteOptions(include_header=writer is None)
        )
        return True
    if writer is None:
        import pyarrow.parquet as pq

        writer = pq.ParquetWriter(handle, table.schema)
    writer.write_table(table)
    return writer


def score_file(
    source: str,
    output: str,
    predictor: Predictor,
    *,
    chunk_rows: int,
    id_column: str | None,
    scratch: Path,
) -> FileResult:
    name = source.rsplit("/", 1)[-1]
    target = storage.join(output, _output_name(source))
    if storage.exists(target):
        return FileResult(name, 0, 0.0, skipped=True)
    started = time.perf_counter()
    local = Path(source)
    if storage.is_s3(source):
        local = scratch / name
        storage.download(source, local)
    partial = scratch / (_output_name(source) + ".partial")
    csv = _output_name(source).endswith(".csv")
    rows = 0
    writer: Any = None
    try:
        with partial.open("wb") as handle:
            for batch in _chunks(local, chunk_rows):
                matrix = _matrix(batch, predictor, name, rows)
                if id_column:
                    if id_column not in batch.schema.names:
                        raise BatchInputError(f"{name}: no id column {id_column!r}")
                    ids = np.asarray(batch.column(id_column).to_pylist(), dtype=object).astype(str)
                else:
                    ids = np.arange(rows + 1, rows + len(matrix) + 1)
                predictions = predictor.predict(matrix)
                writer = _write_chunk(handle, writer, ids, predictions, predictor, csv)
                rows += len(matrix)
                log.info(
                    "scoring",
                    extra={
                        "file": name,
                        "rows": rows,
                        "seconds": round(time.perf_counter() - started, 2),
                    },
                )
            if writer is not None and not csv:
                writer.close()
        if storage.is_s3(target):
            storage.upload(partial, target)
            partial.unlink()
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
        if local != Path(source):
            local.unlink(missing_ok=True)
    return FileResult(name, rows, time.perf_counter() - started, skipped=False)


def parse_arguments(argv: Sequence[str] | None, env: Mapping[str, str]) -> argparse.Namespace:
    """The command line as `main` reads it, `shard_index` resolved from `env` when not given;
    a bad value exits 2 with the message. Exposed so that what a Kubernetes pod would run can
    be read back from its manifest with this very parser."""
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=EXIT_HELP,
    )
    parser.add_argument("--input", required=True, help="file, directory or s3:// prefix")
    parser.add_argument("--output", required=True, help="directory or s3:// prefix")
    parser.add_argument(
        "--model",
        default=model_uri_from(env),
        help="model directory, model.tar.gz or s3:// URI (default: as the server reads it, "
        "MLSTACK_MODEL_URI, else SM_MODEL_DIR, else /opt/ml/model)",
    )
    parser.add_argument("--id-column", help="column that identifies a row; default: its number")
    parser.add_argument(
        "--chunk-rows", type=int, default=100_000, help="rows per chunk (memory bound)"
    )
    parser.add_argument(
        "--shards",
        type=int,
        default=1,
        help="score only one share of the files, out of this many (default 1: all of them)",
    )
    parser.add_argument(
        "--shard-index",
        type=int,
        help=f"which share, 0 to --shards minus 1 (default: {SHARD_INDEX_ENV}, which Kubernetes "
        "sets in each pod of an Indexed Job; else 0 with --shards 1)",
    )
    args = parser.parse_args(argv)
    if args.chunk_rows < 1:
        parser.error("--chunk-rows: allowed: 1 or more")
    args.shard_index = _shard_index(parser, args.shards, args.shard_index, env)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_arguments(argv, os.environ)
    configure_logging(COMMAND)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    from mlstack_common.artifact import ArtifactError

    with tempfile.TemporaryDirectory(prefix="mlstack-batch-") as scratch:
        try:
            predictor = load_predictor(args.model, Path(scratch) / "model", large_batches=True)
            inputs = storage.list_data_files(args.input)
        except storage.StorageError as error:
            return _fail(f"cannot start: {error}", ExitStatus.UNREACHABLE)
        except (ArtifactError, OSError) as error:
            return _fail(f"cannot start: {error}", ExitStatus.REFUSED)
        if not inputs:
            return _fail(f"no .csv or .parquet files under {args.input}", ExitStatus.REFUSED)
        listed = len(inputs)
        inputs = shard(inputs, args.shards, args.shard_index)
        total, started = 0, time.perf_counter()
        for source in inputs:
            try:
                result = score_file(
                    source, args.output, predictor,
                    chunk_rows=args.chunk_rows, id_column=args.id_column, scratch=Path(scratch),
                )  # fmt: skip
            except BatchInputError as error:
                return _fail(f"refused: {error}", ExitStatus.REFUSED)
            except storage.StorageError as error:
                return _fail(f"failed: {error}", ExitStatus.UNREACHABLE)
            total += result.rows
            log.info(
                "scored",
                extra={
                    "file": result.name,
                    "done": True,
                    "skipped": result.skipped,
                    "rows": result.rows,
                },
            )
        seconds = time.perf_counter() - started
        log.info(
            "done",
            extra={
                "files": len(inputs),
                "listed": listed,
                "shard": f"{args.shard_index}/{args.shards}",
                "rows": total,
                "rows_per_second": round(total / max(seconds, 1e-9)),
            },
        )
    return ExitStatus.OK


def _fail(message: str, status: ExitStatus) -> int:
    log.error(message, extra={"exit_status": int(status)})
    return status


def _shard_index(
    parser: argparse.ArgumentParser, shards: int, given: int | None, env: Mapping[str, str]
) -> int:
    """The shard this process scores: `--shard-index`, else the pod's completion index; a
    value outside 0..shards-1 stops with exit 2, naming where it came from and what is
    allowed."""
    if shards < 1:
        parser.error(f"--shards {shards}: allowed: 1 or more")
    allowed = f"allowed: 0 to {shards - 1} (--shards {shards})"
    if given is not None:
        if not 0 <= given < shards:
            parser.error(f"--shard-index {given}: {allowed}")
        return given
    raw = env.get(SHARD_INDEX_ENV, "")
    if not raw:
        if shards == 1:
            return 0
        parser.error(
            f"--shards {shards} needs --shard-index or {SHARD_INDEX_ENV} (set by Kubernetes in "
            f"each pod of an Indexed Job); {allowed}"
        )
    if not raw.isdigit() or not 0 <= int(raw) < shards:
        parser.error(f"{SHARD_INDEX_ENV} = {raw!r}: {allowed}")
    return int(raw)


if __name__ == "__main__":
    sys.exit(main())
