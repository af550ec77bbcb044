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
        _deadline: asyncio.TimerHandle | None = None
        _lingering: asyncio.TimerHandle | None = None
        _own_transport: Any = None

        def connection_made(self, transport: Any) -> None:
            self._own_transport = transport
            super().connection_made(cast(asyncio.Transport, _ConnectionTransport(transport, self)))
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._lingering is None:
                super().data_received(data)
            # else: the rest of a body that was answered without being read; dropped.

        # asyncio.Protocol's signature; uvicorn narrowed it to None, which always closes.
        def eof_received(self) -> bool | None:  # type: ignore[override]
            cycle = self.cycle
            if (
                self._lingering is None
                and cycle is not None
                and not cycle.response_complete
                and not cycle.more_body
            ):
                # A complete request, then the client's half-close: answer, then close.
                cycle.keep_alive = False
                return True
            return None  # asyncio closes the transport

        def linger(self) -> bool:
            """Called when the app's answer is sent and the connection is to close: half-close
            and drain instead, when the client may still be sending a body nobody read."""
            cycle = self.cycle
            transport = self._own_transport
            self.transport.flush()  # type: ignore[attr-defined]
            if (
                self._lingering is not None  # a second close (a shutdown's): close now
                or cycle is None
                or not cycle.more_body
                or transport.is_closing()
                or not transport.can_write_eof()
            ):
                return False
            transport.write_eof()
            self._lingering = self.loop.call_later(LINGER_SECONDS, transport.close)
            self.flow.resume_reading()
            return True

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            if self._lingering is not None:
                self._lingering.cancel()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._deadline = self.loop.call_later(seconds, self._expire)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.write(REQUEST_TIMEOUT)
                self.transport.close()

    return HeaderDeadlineProtocol


class _ConnectionTransport:
    """The transport as uvicorn sees it. Writes made in one turn of the event loop go out in
    one system call: uvicorn writes a response's head and its body separately, and the second
    write was about a tenth of a small request's time. `close` lingers when the protocol says
    the client may still be sending (see the module's docstring). All else is the transport's.
    """

    def __init__(self, transport: Any, protocol: Any) -> None:
        self.transport = transport
        self._protocol = protocol
        self._pending: list[bytes] = []
        self._loop = asyncio.get_running_loop()
        self.is_closing = transport.is_closing

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        """Write what is pending: one `writelines`, which uvloop sends with one writev."""
        if self._pending:
            pending, self._pending = self._pending, []
            if not self.transport.is_closing():
                self.transport.writelines(pending)

    def close(self) -> None:
        self.flush()
        if not self._protocol.linger():
            self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)
