"""Request bodies in, rows for the model out; predictions in, response bodies out.

Parsing and checking are one pass over the rows, and every message names what was wrong and
where: the row, the feature, what was expected.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np
import orjson

from mlstack_common.artifact import Feature
from serving.errors import InvalidInput, NotAcceptable, UnprocessableInput, UnsupportedMediaType
from serving.model import Predictions, Predictor

JSON = "application/json"
CSV = "text/csv"
CONTENT_TYPES = (JSON, CSV)


def media_type(header: str | None) -> str:
    return (header or "").split(";", 1)[0].strip().lower()


def request_format(content_type: str | None) -> str:
    kind = media_type(content_type)
    if kind in CONTENT_TYPES:
        return kind
    shown = kind or "none"
    raise UnsupportedMediaType(
        f"content type {shown!r} is not supported; use one of {', '.join(CONTENT_TYPES)}"
    )


def response_format(accept: str | None, fallback: str) -> str:
    """JSON or CSV by Accept; no preference (or */*) answers in the request's format."""
    if not accept:
        return fallback
    for part in accept.split(","):
        kind = media_type(part)
        if kind in CONTENT_TYPES:
            return kind
        if kind in ("*/*", "text/*", "application/*"):
            return fallback if kind == "*/*" else (CSV if kind == "text/*" else JSON)
    raise NotAcceptable(f"cannot answer in {accept!r}; available: {', '.join(CONTENT_TYPES)}")


MAX_NESTING = 32
"""Deeper than this, a JSON body is malformed (400), whatever else is wrong with it: the
deepest request there is, {"instances": [{"feature": value}]}, nests three levels."""
TOO_DEEP = (
    f"malformed JSON: nested more than {MAX_NESTING} levels deep; a request is a list of rows, "
    "each a list of values or an object keyed by feature name"
)
# orjson refuses a document nested 1,024 levels deep with this message (its README, `loads`:
# "raises JSONDecodeError if a combination of array or object recurses 1024 levels deep").
_ORJSON_TOO_DEEP = "depth limit exceeded"
SHOWN_CHARACTERS = 80
"""The most of a client's value an error message repeats back."""

_BRACKET_STEP = np.zeros(256, dtype=np.int8)
_BRACKET_STEP[[ord("["), ord("{")]] = 1
_BRACKET_STEP[[ord("]"), ord("}")]] = -1


def _nesting(body: bytes) -> int:
    """How deeply a body that parsed as JSON nests, read from its brackets outside strings.

    Counted over the bytes with numpy: walking the parsed document instead costs about a
    second for a 6 MiB body of one wide row, and a refused body must stay cheap to refuse.
    """
    if b'"' not in body:
        steps = _BRACKET_STEP[np.frombuffer(body, dtype=np.uint8)]
    else:
        # In valid JSON a backslash only starts an escape (read left to right, in pairs), so
        # dropping escaped backslashes, then escaped quotes, leaves the quotes that open and
        # close strings; a bracket after an odd count of them is inside a string.
        plain = body.replace(b"\\\\", b"").replace(b'\\"', b"")
        codes = np.frombuffer(plain, dtype=np.uint8)
        inside = (np.cumsum(codes == ord('"'), dtype=np.int32) & 1).astype(bool)
        steps = np.where(inside, 0, _BRACKET_STEP[codes])
    return int(np.cumsum(steps, dtype=np.int32).max(initial=0))


def _clipped(text: str) -> str:
    return text if len(text) <= SHOWN_CHARACTERS else text[: SHOWN_CHARACTERS - 3] + "..."


def _shown(value: Any) -> str:
    """A value for an error message, shortened."""
    try:
        return _clipped(orjson.dumps(value).decode())
    except orjson.JSONEncodeError:
        # orjson 3.13's `dumps` gives up at 255 levels; decode_json answers such a body with
        # TOO_DEEP rather than with this message.
        return "a value nested too deeply to show"


def _check_number(value: Any, feature: Feature, row: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        if value is None and feature.nullable:
            return math.nan
        shown = _shown(value)
        raise UnprocessableInput(
            f"row {row}, feature {feature.name!r}: expected a number, got {shown}"
        )
    number = float(value)
    if not math.isfinite(number):
        raise UnprocessableInput(
            f"row {row}, feature {feature.name!r}: expected a finite number, got {value}"
        )
    return number


def _check_category(value: Any, feature: Feature, row: int) -> Any:
    if value is None:
        if feature.nullable:
            return None
        raise UnprocessableInput(f"row {row}, feature {feature.name!r}: a value is required")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UnprocessableInput(
            f"row {row}, feature {feature.name!r}: expected one of {', '.join(feature.categories)}"
        )
    return str(value) if not isinstance(value, str) else value


def json_rows(document: Any) -> list[Any]:
    """The rows of a JSON request: a list of rows or objects, or {"instances" | "inputs" |
    "data": [...]}; one flat list is one row. The wrapper is unwrapped once: a wrapper inside a
    wrapper is no request format, and unwrapping without end would let a body recurse."""
    if isinstance(document, dict):
        key = next((key for key in ("instances", "inputs", "data") if key in document), None)
        if key is None:
            raise UnprocessableInput(
                "expected a list of rows, a list of objects keyed by feature name, or "
                '{"instances": [...]}; got an object without "instances"'
            )
        document = document[key]
    if not isinstance(document, list) or not document:
        raise UnprocessableInput("expected a non-empty list of rows")
    first = document[0]
    if not isinstance(first, list | dict):
        return [document]  # one row, given flat
    return document


def _row_values(row: Any, index: int, predictor: Predictor) -> list[Any]:
    features = predictor.metadata.features
    if isinstance(row, list):
        if len(row) != len(features):
            raise UnprocessableInput(
                f"row {index}: {len(row)} values, the model takes {len(features)}: "
                + ", ".join(f.name for f in features)
            )
        return row
    if isinstance(row, dict):
        unknown = [key for key in row if key not in predictor.metadata.feature_names]
        if unknown:
            raise UnprocessableInput(
                f"row {index}: unknown feature {_clipped(repr(unknown[0]))}; the model takes "
                + ", ".join(f.name for f in features)
            )
        values = []
        for feature in features:
            if feature.name not in row and not feature.nullable:
                raise UnprocessableInput(f"row {index}: feature {feature.name!r} is missing")
            values.append(row.get(feature.name))
        return values
    raise UnprocessableInput(
        f"row {index}: expected a list of values or an object, got {type(row).__name__}"
    )


def _plain_numbers(body: bytes) -> bool:
    """Whether a JSON body holds numbers and brackets only, which numpy converts in one call:
    a string (or an object's key) needs a quote, and true, false and null start with t, f and
    n, letters no JSON number has. Four one-byte searches (memchr) take 3 us on a 100-row body,
    where four searches for the words took 94, deleting the allowed bytes 24-47 and a regular
    expression 219 (on the machine of bench/README.md)."""
    return not (b'"' in body or b"t" in body or b"f" in body or b"n" in body)


def _plain_matrix(rows: list[Any], width: int, finite: bool = False) -> np.ndarray | None:
    """Rows of finite numbers only, converted in one numpy call; None means: check one by one
    (which also finds what is wrong, for the message). `finite` says the values are known to
    be finite: JSON parsed by orjson is, since orjson refuses NaN and Infinity and numbers that
    overflow a double ("number is infinity when parsed as double"); CSV cells are not ("nan",
    "inf" convert)."""
    try:
        matrix = np.array(rows, dtype=np.float64)
    except (ValueError, TypeError, RecursionError):
        return None
    if matrix.ndim != 2 or matrix.shape[1] != width:
        return None
    if not finite and not np.isfinite(matrix).all():
        return None
    return matrix


def decode_json(body: bytes, predictor: Predictor) -> np.ndarray:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        if error.msg.startswith(_ORJSON_TOO_DEEP):
            raise InvalidInput(TOO_DEEP) from error
        raise InvalidInput(f"malformed JSON: {error}") from error
    try:
        return _json_matrix(document, body, predictor)
    except UnprocessableInput:
        # Measured only once the body is refused, so a good request never pays for it.
        if _nesting(body) > MAX_NESTING:
            raise InvalidInput(TOO_DEEP) from None
        raise


def _json_matrix(document: Any, body: bytes, predictor: Predictor) -> np.ndarray:
    rows = json_rows(document)
    features = predictor.metadata.features
    if predictor.numeric_only and _plain_numbers(body):
        plain = _plain_matrix(rows, len(features), finite=True)
        if plain is not None:
            return plain
    if predictor.numeric_only:
        matrix = np.empty((len(rows), len(features)), dtype=np.float64)
        for index, row in enumerate(rows):
            values = _row_values(row, index, predictor)
            for column, (value, feature) in enumerate(zip(values, features, strict=True)):
                matrix[index, column] = _check_number(value, feature, index)
        return matrix
    checked = []
    for index, row in enumerate(rows):
        values = _row_values(row, index, predictor)
        checked.append(
            [
                _check_number(v, f, index) if f.type == "numeric" else _check_category(v, f, index)
                for v, f in zip(values, features, strict=True)
            ]
        )
    return np.asarray(checked, dtype=object)


def _csv_number(text: str, feature: Feature, line: int) -> float:
    if text == "":
        if feature.nullable:
            return math.nan
        raise UnprocessableInput(f"line {line}, feature {feature.name!r}: a value is required")
    try:
        number = float(text)
    except ValueError:
        raise UnprocessableInput(
            f"line {line}, feature {feature.name!r}: expected a number, got {_clipped(repr(text))}"
        ) from None
    if not math.isfinite(number):
        raise UnprocessableInput(
            f"line {line}, feature {feature.name!r}: expected a finite number, "
            f"got {_clipped(repr(text))}"
        )
    return number


def decode_csv(body: bytes, predictor: Predictor) -> np.ndarray:
    """No header, one row per line, as SageMaker batch transform sends with SplitType=Line."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"CSV is not UTF-8: {error}") from error
    if '"' in text:
        try:
            lines = [row for row in csv.reader(io.StringIO(text), strict=True) if row]
        except csv.Error as error:
            raise InvalidInput(f"malformed CSV: {error}") from error
    else:
        lines = [line.split(",") for line in text.splitlines() if line.strip()]
    if not lines:
        raise InvalidInput("empty CSV body; expected one row per line, no header")
    features = predictor.metadata.features
    if predictor.numeric_only and '"' not in text:
        plain = _plain_matrix(lines, len(features))
        if plain is not None:
            return plain
    width = len(features)
    checked: list[list[Any]] = []
    for number, cells in enumerate(lines, start=1):
        if len(cells) != width:
            raise UnprocessableInput(
                f"line {number}: {len(cells)} values, the model takes {width}: "
                + ", ".join(f.name for f in features)
            )
        row: list[Any] = []
        for cell, feature in zip(cells, features, strict=True):
            value = cell.strip()
            if feature.type == "numeric":
                row.append(_csv_number(value, feature, number))
            else:
                row.append(_check_category(value or None, feature, number))
        checked.append(row)
    return np.asarray(checked, dtype=predictor.dtype)


def decode(body: bytes, kind: str, predictor: Predictor) -> np.ndarray:
    return decode_json(body, predictor) if kind == JSON else decode_csv(body, predictor)


def encode(predictions: Predictions, kind: str, predictor: Predictor) -> bytes:
    """JSON: {"predictions": [...], "probabilities": [[...]], "classes": [...]};
    CSV: one line per row, the label, then each class's probability."""
    if kind == JSON:
        # `tolist` gives Python's str and float, as orjson writes them, in one call.
        document: dict[str, Any] = {"predictions": predictions.labels.tolist()}
        if predictions.probabilities is not None:
            probabilities = predictions.probabilities
            if not probabilities.flags.c_contiguous:
                # orjson serialises C-ordered arrays only; some estimators give Fortran order.
                probabilities = np.ascontiguousarray(probabilities)
            document["probabilities"] = probabilities
            document["classes"] = predictor.class_names
        return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)
    if predictions.probabilities is None:
        return "".join(f"{float(v)!r}\n" for v in predictions.labels).encode()
    lines = [
        ",".join([str(label), *(repr(float(p)) for p in row)])
        for label, row in zip(predictions.labels, predictions.probabilities, strict=True)
    ]
    return ("\n".join(lines) + "\n").encode()
