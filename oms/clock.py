"""Time is integer nanoseconds since the Unix epoch, UTC, everywhere in the project."""

from __future__ import annotations

import time

NS_PER_US = 1_000
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


def now_ns() -> int:
    """Wall-clock UTC time in nanoseconds: what goes on receipts and on the wire."""
    return time.time_ns()


def monotonic_ns() -> int:
    """A clock that never steps backwards: what measures elapsed time between two hops."""
    return time.monotonic_ns()
