"""uvicorn's httptools protocol with a deadline for a request's headers, and closes a client
can read its answer from.

- **Header deadline.** uvicorn times out idle keep-alive connections, but not a client that
  connects and sends its headers slowly or never finishes them; such connections would pile up
  until the process runs out of file descriptors. The deadline starts when a connection opens
  or a request begins and ends when the headers are complete; a client that misses it gets a
  408 and the connection is closed. The body has its own deadline, in the app, between the
  chunks it reads.
- **Lingering close.** The server answers a body over the limit (413) at once, without reading
  it, and a body that stopped arriving (408) or that a shutdown cut (503) likewise. Closing the
  socket with the rest of the body unread makes the kernel reset the connection, and a reset
  can destroy the answer before the client reads it. So, as RFC 9112 section 9.6 asks ("the
  server SHOULD ... half-close ... and continue to read from the connection until it receives
  a corresponding close by the client, or until the server is reasonably certain that its own
  TCP stack has received the client's acknowledgement"), the server sends its answer, closes
  its side for writing, and reads and drops what still arrives until the client closes or
  LINGER_SECONDS pass. nginx does the same (`lingering_close`, 30 s `lingering_time`).
- **Half-closed clients.** A client may close its side for writing once its request is
  complete. asyncio closes the transport on that end of file unless the protocol keeps it
  open, and uvicorn does not: the answer was then never sent although the app counted it.
  Here a complete request is still answered, and the connection closed after it.
- **Direct lane.** A `POST /invocations` over HTTP/1.1 whose declared body (within the limit)
  arrives in the same read as its headers, on a connection with nothing else in flight, is
  handed to the app's `invocation` as bytes and answered from the batch that scores it: no
  ASGI scope, task, event or message per request, and one write of a head built from known
  parts. That is most of what a small request cost beyond its scoring. Anything else (a body
  still arriving, `Expect: 100-continue`, chunked bodies, HTTP/1.0, pipelined requests behind
  one in flight) takes uvicorn's ASGI path, with its timeouts, limits and shutdown answers; a
  body found incomplete when the read ends is handed to that path as if it had always been on
  it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

Headers = list[tuple[bytes, bytes]]
Invocation = Callable[[Headers, bytes, Callable[[int, Headers, bytes, bytes], None]], None]
"""The app's direct lane: the request's headers, its whole body, and where to write the answer."""

LINGER_SECONDS = 30.0
"""Longest a connection is kept open after its answer to drain a body the server did not read."""

_TIMEOUT_BODY = b'{"error":"the request headers did not arrive in time"}'
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + b"content-length: %d\r\n\r\n" % len(_TIMEOUT_BODY)
    + _TIMEOUT_BODY
)


def serving_protocol(
    seconds: float, invocation: Invocation, max_body_bytes: int
) -> type[HttpToolsProtocol]:
    """The protocol class uvicorn instantiates per connection: `seconds` is the header
    deadline; `invocation` answers the direct lane's requests, whose declared bodies are at most
    `max_body_bytes` (a larger one takes the ASGI path, which refuses it)."""

    class ServingProtocol(HttpToolsProtocol):
        # One timer per connection that looks at when the awaited headers began, rather than a
        # timer set and cancelled for every request: on a busy keep-alive connection that was
        # a measurable share of a small request's time.
        _waiting_since: float | None = None
        _idle_since: float | None = None
        """When the direct lane's last answer left, on a keep-alive connection with nothing
        else to do: the same timer closes it after uvicorn's keep-alive timeout."""
        _watch: asyncio.TimerHandle | None = None
        _own_transport: Any = None
        _lingering = False
        _reading: _DirectRequest | None = None
        """The direct request whose body is being read."""

        def data_received(self, data: bytes) -> None:
            self._idle_since = None
            super().data_received(data)
            reading = self._reading
            if reading is not None:
                # The body did not all come with the headers: the ASGI path reads the rest,
                # under its body deadline, limit and shutdown answers.
                self._reading = None
                if not self._own_transport.is_closing():
                    self._to_asgi(reading)

        def connection_made(self, transport: Any) -> None:
            self._own_transport = transport
            super().connection_made(cast(asyncio.Transport, _ConnectionTransport(transport, self)))
            self._waiting_since = self.loop.time()
            self._watch = self.loop.call_later(min(seconds, self.timeout_keep_alive), self._look)

        def on_message_begin(self) -> None:
            # uvicorn's ASGI scope is made only for a request that takes the ASGI path
            # (`_asgi_scope`): a direct request does not need one.
            self.url = b""
            self.expect_100_continue = False
            self.headers = []
            self._waiting_since = self.loop.time()

        def _asgi_scope(self) -> None:
            """uvicorn's scope for the current request, with the URL and headers read so far."""
            url, headers, expect = self.url, self.headers, self.expect_100_continue
            super().on_message_begin()
            self.url, self.headers, self.expect_100_continue = url, headers, expect
            self.scope["headers"] = headers

        def on_headers_complete(self) -> None:
            self._waiting_since = None
            parser, cycle = self.parser, self.cycle
            if (
                self.url == b"/invocations"
                and parser.get_method() == b"POST"
                and (cycle is None or cycle.response_complete)
                and not self.expect_100_continue
                and parser.get_http_version() == "1.1"
                and not parser.should_upgrade()
                and not self.flow.write_paused
            ):
                declared = declared_length(self.headers)
                if declared is not None and declared <= max_body_bytes:
                    request = _DirectRequest(self, self.headers, parser.should_keep_alive(), cycle)
                    self.cycle = cast(Any, request)
                    self._reading = request
                    return
            self._asgi_scope()
            super().on_headers_complete()

        def on_body(self, body: bytes) -> None:
            reading = self._reading
            if reading is None:
                super().on_body(body)
            else:
                reading.chunks.append(body)

        def on_message_complete(self) -> None:
            request = self._reading
            if request is None:
                super().on_message_complete()
                return
            self._reading = None
            request.more_body = False
            request.previous = None  # else each request would hold all before it on the connection
            chunks = request.chunks
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            invocation(request.headers, body, request)

        def _to_asgi(self, request: _DirectRequest) -> None:
            """Start the ASGI cycle uvicorn would have started at the headers, with the part
            of the body read so far."""
            self.cycle = request.previous
            self._asgi_scope()
            super().on_headers_complete()
            if request.chunks:
                self.on_body(b"".join(request.chunks))

        def reply(
            self, request: _DirectRequest, status: int, headers: Headers, body: bytes, rid: bytes
        ) -> None:
            """Write a direct request's answer in one piece, then go on as uvicorn does after
            an answer: close, or take the next pipelined request, or wait for one."""
            request.response_complete = True
            transport = self._own_transport
            if request.disconnected or transport.is_closing():
                return
            head = [STATUS_LINE[status], _default_head(self.server_state.default_headers)]
            for name, value in headers:
                head += (name, b": ", value, b"\r\n")
            head.append(b"content-length: %d\r\nx-request-id: %s\r\n" % (len(body), rid))
            if not request.keep_alive:
                head.append(b"connection: close\r\n")
            head += (b"\r\n", body)
            transport.write(b"".join(head))
            if not request.keep_alive:
                transport.close()
            if not request.keep_alive or self.pipeline or self.flow.read_paused:
                self.on_response_complete()  # uvicorn's: the next pipelined request, or resume
            else:
                # What uvicorn's on_response_complete does here, with the connection's own
                # timer (`_look`) for the keep-alive timeout instead of one timer per answer.
                self.server_state.total_requests += 1
                self._idle_since = self.loop.time()

        # asyncio.Protocol's signature; uvicorn narrowed it to None, which always closes.
        def eof_received(self) -> bool | None:  # type: ignore[override]
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete and not cycle.more_body:
                # A complete request, then the client's half-close: answer, then close.
                cycle.keep_alive = False
                return True
            return None  # asyncio closes the transport

        def linger(self) -> bool:
            """Called when the app's answer is sent and the connection is to close: half-close
            and drain instead, when the client may still be sending a body nobody read."""
            cycle = self.cycle
            transport = self._own_transport
            if (
                self._lingering  # a second close (a shutdown's): close now
                or cycle is None
                or not cycle.more_body
                or transport.is_closing()
                or not transport.can_write_eof()
            ):
                return False
            self._lingering = True
            transport.write_eof()
            transport.set_protocol(_Draining(transport, self))
            transport.resume_reading()
            return True

        def connection_lost(self, exc: Exception | None) -> None:
            if self._watch is not None:
                self._watch.cancel()
                self._watch = None
            super().connection_lost(exc)

        def _look(self) -> None:
            """Expire a request whose headers are late, or a connection idle for longer than
            the keep-alive timeout; else look again when either would be."""
            now, since, idle = self.loop.time(), self._waiting_since, self._idle_since
            if since is not None and now - since >= seconds:
                self._watch = None
                if not self.transport.is_closing():
                    self.transport.write(REQUEST_TIMEOUT)
                    self.transport.close()
                return
            if idle is not None and now - idle >= self.timeout_keep_alive:
                self._watch = None
                self.transport.close()
                return
            # Looking at least once per keep-alive timeout finds every idle stretch in time.
            delay = (
                min(seconds, self.timeout_keep_alive) if since is None else seconds - (now - since)
            )
            if idle is not None:
                delay = min(delay, self.timeout_keep_alive - (now - idle))
            self._watch = self.loop.call_later(delay, self._look)

    return ServingProtocol


class _NoEvent:
    """Stands where uvicorn expects a cycle's message event: a direct request has no reader
    to wake when the connection is lost."""

    @staticmethod
    def set() -> None:
        pass


class _DirectRequest:
    """A request on the direct lane, in the place of uvicorn's request cycle: uvicorn's
    protocol reads and sets `response_complete`, `more_body`, `keep_alive`, `disconnected` and
    `message_event` on whatever is its current cycle. Called with the answer."""

    __slots__ = (
        "chunks",
        "disconnected",
        "headers",
        "keep_alive",
        "more_body",
        "previous",
        "protocol",
        "response_complete",
    )
    message_event = _NoEvent

    def __init__(self, protocol: Any, headers: Headers, keep_alive: bool, previous: Any) -> None:
        self.protocol = protocol
        self.headers = headers
        self.keep_alive = keep_alive
        self.previous = previous
        """The cycle before this one, put back if this request leaves the lane."""
        self.chunks: list[bytes] = []
        self.more_body = True
        self.response_complete = False
        self.disconnected = False

    def __call__(self, status: int, headers: Headers, body: bytes, request_id: bytes) -> None:
        self.protocol.reply(self, status, headers, body, request_id)


_head_of: tuple[Headers | None, bytes] = (None, b"")


def _default_head(headers: Headers) -> bytes:
    """uvicorn's default headers (its Date, renewed each second) as head lines, made once per
    renewal."""
    global _head_of
    if _head_of[0] is not headers:
        _head_of = (headers, b"".join(b"%s: %s\r\n" % pair for pair in headers))
    return _head_of[1]


def declared_length(headers: Headers) -> int | None:
    """The Content-Length a request declares, when it is a number (httptools refuses a request
    whose Content-Length is not)."""
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class _Draining(asyncio.Protocol):
    """What a lingering connection reads with: everything dropped, closed at the client's end
    of file or after LINGER_SECONDS; uvicorn's protocol is told when the connection is lost."""

    def __init__(self, transport: Any, owner: asyncio.Protocol) -> None:
        self._transport = transport
        self._owner = owner
        self._timer = asyncio.get_running_loop().call_later(LINGER_SECONDS, transport.close)

    def data_received(self, data: bytes) -> None:
        pass  # the rest of a body that was answered without being read

    def eof_received(self) -> bool | None:
        return None  # asyncio closes the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._timer.cancel()
        self._owner.connection_lost(exc)


class _ConnectionTransport:
    """The transport as uvicorn sees it: `close` lingers when the protocol says the client may
    still be sending (see the module's docstring); writes and all else are the transport's own
    (bound once, so a write costs no extra call)."""

    def __init__(self, transport: Any, protocol: Any) -> None:
        self.transport = transport
        self._protocol = protocol
        self.write = transport.write
        self.is_closing = transport.is_closing

    def close(self) -> None:
        if not self._protocol.linger():
            self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)
