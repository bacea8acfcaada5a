"""Each venue's clock against ours: its offset and the one-way delay of its messages.

A venue stamps what it sends with its own clock (SendingTime(52), TransactTime(60)); we
stamp what we receive with ours. For a message from the venue, ``recv - stamp`` is the
delay on the wire *minus* the offset of the venue's clock (venue time = our time + offset).
Queueing only ever adds delay, so the fastest messages are the ones that say the most: the
estimator keeps the minimum of each block of samples and takes the median of the last few
minima. The minimum ignores queueing, the median ignores a block spoiled by a clock step or
a bad stamp, and old blocks fall out, so a drifting clock is followed.

One direction cannot tell delay from offset. With round trips (an order we stamped, the
venue's TransactTime on its acknowledgement, our receipt of it) the two separate, assuming
the path is as fast both ways. Without them, the fastest message is taken to have needed
``assumed_delay_ns`` (0 by default), which makes a book's corrected age the time since the
venue stamped it beyond the fastest delivery seen.
"""

from __future__ import annotations

from collections import deque

BLOCK = 32  # samples per block, whose minimum is kept
BLOCKS = 15  # block minima whose median is the estimate


class MinimumFilter:
    """The median of the minima of the last ``blocks`` blocks of ``block`` samples.

    Until the first block is complete, the running minimum stands in for it. Adding a
    sample is O(1); the median is taken once per block, over at most ``blocks`` values.
    """

    __slots__ = ("_block", "_count", "_current", "_minima", "samples", "value")

    def __init__(self, block: int = BLOCK, blocks: int = BLOCKS) -> None:
        if block < 1 or blocks < 1:
            raise ValueError("block and blocks must be at least 1")
        self._block = block
        self._count = 0
        self._current: int | None = None
        self._minima: deque[int] = deque(maxlen=blocks)
        self.samples = 0
        self.value: int | None = None

    def add(self, sample: int) -> None:
        current = self._current
        if current is None or sample < current:
            self._current = current = sample
        self.samples += 1
        self._count += 1
        if self._count >= self._block:
            self._minima.append(current)
            self._current = None
            self._count = 0
            ordered = sorted(self._minima)
            self.value = ordered[(len(ordered) - 1) // 2]
        elif not self._minima:
            self.value = current


class ClockCalibration:
    """One venue's clock offset (venue minus ours) and one-way delay, in nanoseconds."""

    __slots__ = ("_back", "_forward", "assumed_delay_ns")

    def __init__(
        self, *, assumed_delay_ns: int = 0, block: int = BLOCK, blocks: int = BLOCKS
    ) -> None:
        self.assumed_delay_ns = assumed_delay_ns
        self._back = MinimumFilter(block, blocks)  # recv - venue stamp: delay - offset
        self._forward = MinimumFilter(block, blocks)  # venue stamp - our send: delay + offset

    def observe(self, venue_ns: int, recv_ns: int) -> None:
        """A message the venue stamped at ``venue_ns`` (its clock) reached us at ``recv_ns``."""
        self._back.add(recv_ns - venue_ns)

    def observe_round_trip(self, sent_ns: int, venue_ns: int, recv_ns: int) -> None:
        """We sent at ``sent_ns``; the venue stamped its answer ``venue_ns``; it reached us at
        ``recv_ns``. (The venue's processing time counts as forward delay.)"""
        self._forward.add(venue_ns - sent_ns)
        self._back.add(recv_ns - venue_ns)

    @property
    def samples(self) -> int:
        return self._back.samples

    @property
    def offset_ns(self) -> int | None:
        """How far the venue's clock is ahead of ours; None before any sample."""
        back = self._back.value
        if back is None:
            return None
        forward = self._forward.value
        if forward is None:
            return self.assumed_delay_ns - back
        return (forward - back) // 2

    @property
    def delay_ns(self) -> int | None:
        """The one-way delay of the fastest messages; None before any sample."""
        back = self._back.value
        if back is None:
            return None
        forward = self._forward.value
        if forward is None:
            return self.assumed_delay_ns
        return (forward + back) // 2

    def to_local(self, venue_ns: int) -> int | None:
        """A venue timestamp on our clock, or None while there is no estimate."""
        offset = self.offset_ns
        return None if offset is None else venue_ns - offset
