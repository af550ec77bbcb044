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
Exit status: 0 done, 1 a file does not fit the model (the message names the file, column and
row; that file's output is not written), 2 the model or a location cannot be used.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from serving import storage
from serving.model import Predictor, load_predictor
from serving.settings import model_uri_from


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
    """Record batches of at most `chunk_rows` rows; memory stays bounded by the chunk size."""
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
                _progress(
                    {"file": name, "rows": rows, "seconds": round(time.perf_counter() - started, 2)}
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


def _progress(record: dict[str, Any]) -> None:
    sys.stderr.write(orjson.dumps(record).decode() + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m serving.batch", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--input", required=True, help="file, directory or s3:// prefix")
    parser.add_argument("--output", required=True, help="directory or s3:// prefix")
    parser.add_argument(
        "--model",
        default=model_uri_from(os.environ),
        help="model directory, model.tar.gz or s3:// URI (default: as the server reads it, "
        "MLSTACK_MODEL_URI, else SM_MODEL_DIR, else /opt/ml/model)",
    )
    parser.add_argument("--id-column", help="column that identifies a row; default: its number")
    parser.add_argument(
        "--chunk-rows", type=int, default=100_000, help="rows per chunk (memory bound)"
    )
    args = parser.parse_args(argv)
    if args.chunk_rows < 1:
        parser.error("--chunk-rows: allowed: 1 or more")
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    from serving.artifact import ArtifactError

    with tempfile.TemporaryDirectory(prefix="mlstack-batch-") as scratch:
        try:
            predictor = load_predictor(args.model, Path(scratch) / "model", large_batches=True)
            inputs = storage.list_data_files(args.input)
        except (ArtifactError, storage.StorageError, OSError) as error:
            print(f"serving.batch: cannot start: {error}", file=sys.stderr)
            return 2
        if not inputs:
            print(f"serving.batch: no .csv or .parquet files under {args.input}", file=sys.stderr)
            return 2
        total, started = 0, time.perf_counter()
        for source in inputs:
            try:
                result = score_file(
                    source, args.output, predictor,
                    chunk_rows=args.chunk_rows, id_column=args.id_column, scratch=Path(scratch),
                )  # fmt: skip
            except BatchInputError as error:
                print(f"serving.batch: refused: {error}", file=sys.stderr)
                return 1
            except storage.StorageError as error:
                print(f"serving.batch: failed: {error}", file=sys.stderr)
                return 2
            total += result.rows
            _progress(
                {"file": result.name, "done": True, "skipped": result.skipped, "rows": result.rows}
            )
        seconds = time.perf_counter() - started
        _progress(
            {
                "files": len(inputs),
                "rows": total,
                "rows_per_second": round(total / max(seconds, 1e-9)),
            }
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
