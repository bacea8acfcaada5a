"""Rate limits in integer nanoseconds: a token bucket and a sliding window of recent events.

Why integers: a bucket refills continuously, and keeping its level in nanoseconds of credit
(one token is ``interval_ns`` of credit) makes refilling an addition and a comparison, exact
and allocation-free, with the clock passed in so tests step it by hand.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from oms.clock import NS_PER_S


class TokenBucket:
    """At most ``burst`` messages at once, then one every ``1 / rate_per_s`` seconds.

    Starts full. ``take`` spends a token if there is one; ``available`` only looks, so that a
    spread intent can check that both its legs will find a token before either is sent.
    """

    __slots__ = ("_capacity", "_interval", "_last_ns", "_level", "burst", "rate_per_s")

    def __init__(self, rate_per_s: Decimal, burst: int) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._interval = max(1, int(NS_PER_S / rate_per_s))
        self._capacity = self._interval * burst
        self._level = self._capacity
        self._last_ns: int | None = None

    def _refill(self, now_ns: int) -> int:
        last = self._last_ns
        level = self._level
        if last is not None and now_ns > last:
            level += now_ns - last
            if level > self._capacity:
                level = self._capacity
        if last is None or now_ns > last:
            self._last_ns = now_ns
        self._level = level
        return level

    def take(self, now_ns: int) -> bool:
        level = self._refill(now_ns)
        if level >= self._interval:
            self._level = level - self._interval
            return True
        return False

    def available(self, now_ns: int) -> int:
        """Whole tokens there are now, without spending any."""
        return self._refill(now_ns) // self._interval

    def wait_ns(self, now_ns: int) -> int:
        """How long until the next token (0 if one is there)."""
        return max(0, self._interval - self._refill(now_ns))


class RecentEvents:
    """Times of recent events; says when ``count`` of them fall within ``window_ns``."""

    __slots__ = ("_times", "count", "window_ns")

    def __init__(self, count: int, window_ns: int) -> None:
        if count < 1 or window_ns < 1:
            raise ValueError("a window needs a count of at least 1 and a positive length")
        self.count = count
        self.window_ns = window_ns
        self._times: deque[int] = deque()

    def _trim(self, now_ns: int) -> deque[int]:
        times = self._times
        oldest = now_ns - self.window_ns
        while times and times[0] <= oldest:
            times.popleft()
        return times

    def add(self, now_ns: int) -> int:
        """Record one event; how many fall within the window, this one included."""
        times = self._trim(now_ns)
        times.append(now_ns)
        return len(times)

    def within(self, now_ns: int) -> int:
        return len(self._trim(now_ns))

    def clear(self) -> None:
        self._times.clear()
