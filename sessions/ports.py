"""Loopback ports for things that start on one machine: the demo and the tests."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the OS picks it).

    quickfix needs a concrete port number rather than 0, so the port is found first and
    handed over; the short race with another process is accepted for demos and tests.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
