"""Every way a request can be wrong gets its documented status and a message, never a 5xx."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serving.conftest import Server

ROW = [14.0] * 30
CSV_ROW = ",".join(["14.0"] * 30)
TOO_DEEP = (
    "malformed JSON: nested more than 32 levels deep; a request is a list of rows, each a list "
    "of values or an object keyed by feature name"
)


def nested(depth: int, inner: str = "1", opening: str = "[", closing: str = "]") -> bytes:
    return (opening * depth + inner + closing * depth).encode()


def in_a_row(value: bytes) -> bytes:
    """`value` as the first of a row's 30 values."""
    return b"[[" + value + b"," + b",".join([b"14.0"] * 29) + b"]]"


# Bodies nested past what any request needs, each way a body can nest: every one is
# malformed (400), whichever other mistake it also holds, and past orjson's 1,024 levels too.
DEEP: dict[str, bytes] = {
    "lists 1,000 deep": nested(1000),
    "lists 10,000 deep": nested(10_000),
    "lists 100,000 deep": nested(100_000),
    "lists 33 deep": nested(33),
    "a value 1,000 deep in a row": in_a_row(nested(1000)),
    "the last value 1,000 deep": b"[[" + b",".join([b"14.0"] * 29) + b"," + nested(1000) + b"]]",
    "a value 10,000 deep after a text": b'[["x",' + nested(10_000) + b"]]",
    "instances 1,000 deep": b'{"instances":' + nested(1000) + b"}",
    "instances inside instances 1,000 deep": nested(1000, "[[1]]", '{"instances":', "}"),
    "instances inside instances 100,000 deep": nested(100_000, "[[1]]", '{"instances":', "}"),
    "objects 1,000 deep": nested(1000, "1", '{"a":', "}"),
    "objects 10,000 deep": nested(10_000, "1", '{"a":', "}"),
    "objects 1,000 deep as a feature's value": b'[{"mean radius":'
    + nested(1000, "1", '{"a":', "}")
    + b"}]",
    "lists and objects 1,000 deep": nested(500, nested(500, "1", '{"a":', "}").decode()),
    "every row 200 deep": b"[" + b",".join([nested(200)] * 50) + b"]",
}

# (content type, body, extra headers, status, a fragment of the message)
CASES: dict[str, tuple[str | None, bytes, dict[str, str], int, str]] = {
    "malformed json": ("application/json", b'[[1, 2', {}, 400, "malformed JSON"),
    "json nan literal": ("application/json", b"[[NaN]]", {}, 400, "malformed JSON"),
    "json scalar": ("application/json", b"42", {}, 422, "expected a non-empty list of rows"),
    "json empty list": ("application/json", b"[]", {}, 422, "expected a non-empty list of rows"),
    "json object without instances": ("application/json", b'{"rows": []}', {}, 422, 'without "instances"'),
    "too few values": ("application/json", b"[[1, 2]]", {}, 422, "row 0: 2 values, the model takes 30: mean radius"),
    "too many values": ("application/json", json.dumps([[*ROW, 1]]).encode(), {}, 422, "row 0: 31 values"),
    "text for a number": ("application/json", json.dumps([[*ROW[:5], "abc", *ROW[6:]]]).encode(), {}, 422, "row 0, feature 'mean compactness': expected a number, got \"abc\""),
    "boolean for a number": ("application/json", json.dumps([[True, *ROW[1:]]]).encode(), {}, 422, "feature 'mean radius': expected a number, got true"),
    "null where not nullable": ("application/json", json.dumps([[None, *ROW[1:]]]).encode(), {}, 422, "feature 'mean radius': expected a number, got null"),
    "unknown feature": ("application/json", b'[{"radius": 1}]', {}, 422, "row 0: unknown feature 'radius'"),
    "missing feature": ("application/json", b'[{"mean radius": 1}]', {}, 422, "row 0: feature 'mean texture' is missing"),
    "second row wrong": ("application/json", json.dumps([ROW, ROW[:3]]).encode(), {}, 422, "row 1: 3 values"),
    "row of wrong kind": ("application/json", b'[[1], "x"]', {}, 422, "row 0: 1 values"),
    "csv short line": ("text/csv", (CSV_ROW + "\n1,2\n").encode(), {}, 422, "line 2: 2 values, the model takes 30"),
    "csv text": ("text/csv", ("abc," + CSV_ROW[5:]).encode(), {}, 422, "line 1, feature 'mean radius': expected a number, got 'abc'"),
    "csv nan": ("text/csv", ("nan," + CSV_ROW[5:]).encode(), {}, 422, "expected a finite number, got 'nan'"),
    "csv infinity": ("text/csv", ("inf," + CSV_ROW[5:]).encode(), {}, 422, "expected a finite number, got 'inf'"),
    "csv empty cell": ("text/csv", ("," + CSV_ROW[5:]).encode(), {}, 422, "feature 'mean radius': a value is required"),
    "csv empty body": ("text/csv", b"\n\n", {}, 400, "empty CSV body"),
    "csv not utf-8": ("text/csv", b"\xff\xfe,1", {}, 400, "CSV is not UTF-8"),
    "csv bad quoting": ("text/csv", b'"1,2\n', {}, 400, "malformed CSV"),
    "unsupported type": ("text/plain", CSV_ROW.encode(), {}, 415, "content type 'text/plain' is not supported; use one of application/json, text/csv"),
    "no content type": (None, CSV_ROW.encode(), {}, 415, "content type 'none' is not supported"),
    "unacceptable accept": ("application/json", json.dumps([ROW]).encode(), {"Accept": "application/xml"}, 406, "available: application/json, text/csv"),
    "value nested 900 deep": ("application/json", ("[[" + "[" * 900 + "1" + "]" * 900 + "," + ",".join(["1"] * 29) + "]]").encode(), {}, 400, "nested more than 32 levels"),
    "instances nested 300 deep": ("application/json", ('{"instances":[[' + ",".join(["[" * 300 + "1" + "]" * 300] * 30) + "]]}").encode(), {}, 400, "nested more than 32 levels"),
    "body over the limit": ("application/json", b"[" + b"1," * (3 * 1024 * 1024) + b"1]", {}, 413, "the limit is 6291456"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(DEEP), ids=list(DEEP))
def test_json_nested_deeper_than_any_request_is_malformed(linear_server: Server, case: str) -> None:
    status, _, answer = linear_server.post(DEEP[case])
    assert (status, json.loads(answer)) == (400, {"error": TOO_DEEP})


def test_nesting_that_stops_short_of_the_limit_is_answered_for_what_else_is_wrong(
    linear_server: Server,
) -> None:
    status, _, answer = linear_server.post(in_a_row(nested(30)))  # 32 levels in all
    assert status == 422
    assert json.loads(answer)["error"].startswith(
        "row 0, feature 'mean radius': expected a number, got [[[[[["
    )
    # Brackets inside a text are not nesting.
    status, _, answer = linear_server.post(in_a_row(b'"' + b"[" * 100 + b'\\"{"'))
    assert status == 422
    assert 'expected a number, got "[[[[' in json.loads(answer)["error"]


def test_a_long_value_is_not_repeated_back_whole(linear_server: Server) -> None:
    text = "x" * 100_000
    for content_type, body in (
        ("application/json", in_a_row(json.dumps(text).encode())),
        ("application/json", json.dumps([{text: 1}]).encode()),
        ("text/csv", (text + "," + ",".join(["14.0"] * 29)).encode()),
    ):
        status, _, answer = linear_server.post(body, content_type)
        assert status == 422
        error = json.loads(answer)["error"]
        assert "xxx..." in error
        assert len(error) < 1000, error


def test_hostile_bodies_leave_the_worker_serving(linear_server: Server) -> None:
    """The worker (one, in the server's own process) answered every body above without an
    internal error and is still the one answering."""
    for body in DEEP.values():
        assert linear_server.post(body)[0] == 400
    assert linear_server.post(json.dumps([ROW]).encode())[0] == 200
    assert linear_server.process.poll() is None
    assert '"internal error"' not in linear_server.log.read_text()


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_request_gets_its_status_and_message(linear_server: Server, case: str) -> None:
    content_type, body, headers, status, fragment = CASES[case]
    if content_type is not None:
        headers = {"Content-Type": content_type, **headers}
    got, response_headers, answer = linear_server.request("POST", "/invocations", body, headers)
    assert got == status, answer
    assert response_headers["content-type"] == "application/json"
    assert fragment in json.loads(answer)["error"]


@pytest.mark.parametrize(
    ("method", "path", "status", "fragment"),
    [
        ("GET", "/invocations", 405, "/invocations takes POST, not GET"),
        ("POST", "/ping", 405, "/ping takes GET, HEAD, not POST"),
        ("GET", "/predict", 404, "no route /predict; routes: /invocations"),
    ],
)
def test_wrong_route_or_method(
    linear_server: Server, method: str, path: str, status: int, fragment: str
) -> None:
    got, headers, answer = linear_server.request(method, path, b"" if method == "POST" else None)
    assert got == status
    assert fragment in json.loads(answer)["error"]
    if status == 405:
        # RFC 9110: a 405 names the methods the route takes.
        assert headers["allow"] == fragment.split(" takes ")[1].split(", not")[0]


def test_categorical_values_are_checked(mixed_server: Server) -> None:
    status, _, body = mixed_server.post(b'[{"colour": null, "size": 1}]')
    assert (status, json.loads(body)["error"]) == (
        422,
        "row 0, feature 'colour': a value is required",
    )
    status, _, body = mixed_server.post(b'[{"colour": ["red"], "size": 1}]')
    assert status == 422
    assert "expected one of red, green, blue" in json.loads(body)["error"]
    # An unseen category is scored (the encoder ignores it), as training declared.
    assert mixed_server.post(b'[{"colour": "purple", "size": 1}]')[0] == 200


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet=string.printable, max_size=8),
)
rows = st.one_of(
    st.lists(scalars, min_size=0, max_size=32),
    st.dictionaries(st.sampled_from(["mean radius", "mean texture", "x", ""]), scalars, max_size=4),
    scalars,
)
documents = st.one_of(
    st.lists(rows, max_size=4),
    st.fixed_dictionaries({"instances": st.lists(rows, max_size=3)}),
    scalars,
)
bodies = st.one_of(
    documents.map(lambda d: ("application/json", json.dumps(d).encode())),
    st.binary(max_size=256).map(lambda b: ("application/json", b)),
    st.lists(
        st.lists(st.text(alphabet='0123456789.,-einfa" ', max_size=6), max_size=32), max_size=3
    ).map(lambda lines: ("text/csv", "\n".join(",".join(cells) for cells in lines).encode())),
    st.binary(max_size=256).map(lambda b: ("text/csv", b)),
    st.tuples(
        st.sampled_from(["text/plain", "application/xml", "", "application/json; charset=utf-8"]),
        st.binary(max_size=64),
    ),
)


@settings(
    max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    request=bodies,
    accept=st.sampled_from([None, "*/*", "text/csv", "application/json", "image/png"]),
)
def test_generated_requests_never_get_a_5xx(
    linear_server: Server, request: tuple[str, bytes], accept: str | None
) -> None:
    content_type, body = request
    headers = {"Content-Type": content_type} if content_type else {}
    if accept:
        headers["Accept"] = accept
    status, _, answer = linear_server.request("POST", "/invocations", body, headers)
    assert status < 500, (status, answer, body)
    if status != 200:
        assert json.loads(answer)["error"]
