"""Finding a free port on loopback, for the servers the demo, tests and benchmarks start."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port nothing on 127.0.0.1 listens on at the moment of asking."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
