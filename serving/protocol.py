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
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LINGER_SECONDS = 30.0
"""Longest a connection is kept open after its answer to drain a body the server did not read."""

_TIMEOUT_BODY = b'{"error":"the request headers did not arrive in time"}'
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
    + b"content-length: %d\r\n\r\n" % len(_TIMEOUT_BODY)
    + _TIMEOUT_BODY
)


def with_header_deadline(seconds: float) -> type[HttpToolsProtocol]:
    """The protocol class uvicorn instantiates per connection, with `seconds` as the deadline."""

    class HeaderDeadlineProtocol(HttpToolsProtocol):
        # One timer per connection that looks at when the awaited headers began, rather than a
        # timer set and cancelled for every request: on a busy keep-alive connection that was
        # a measurable share of a small request's time.
        _waiting_since: float | None = None
        _watch: asyncio.TimerHandle | None = None
        _own_transport: Any = None
        _lingering = False

        def connection_made(self, transport: Any) -> None:
            self._own_transport = transport
            super().connection_made(cast(asyncio.Transport, _ConnectionTransport(transport, self)))
            self._waiting_since = self.loop.time()
            self._watch = self.loop.call_later(seconds, self._look)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._waiting_since = self.loop.time()

        def on_headers_complete(self) -> None:
            self._waiting_since = None
            super().on_headers_complete()

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
            """Expire a request whose headers are late; else look again when they would be."""
            now, since = self.loop.time(), self._waiting_since
            if since is not None and now - since >= seconds:
                self._watch = None
                if not self.transport.is_closing():
                    self.transport.write(REQUEST_TIMEOUT)
                    self.transport.close()
                return
            delay = seconds if since is None else seconds - (now - since)
            self._watch = self.loop.call_later(delay, self._look)

    return HeaderDeadlineProtocol


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
