"""Keeping two legs in ratio: where a pair stands, and what it takes to realign it.

A pair trades in whole units of (m inner lots, n outer lots). Its legs are *aligned* at
P units when the inner leg holds ``P * m`` lots and the outer ``-P * n`` (the outer leg
always goes the other way). Anything else is an imbalance, and only whole units count:
28:9 has no aligned point between 0 and 1 unit, so a part-filled unit is either completed
(top-up) or taken back (unwind). That is the hedge rounding, and it is written down here
rather than left to a ``round()`` somewhere.

Everything here is pure arithmetic on integers and ``Decimal`` prices, so the OMS thread
can call it on every report and tests can state it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from oms.enums import Side
from oms.market import Book


class Leg(str, Enum):
    INNER = "inner"
    OUTER = "outer"


@dataclass(frozen=True, slots=True)
class Position:
    """A pair's filled lots on each leg, signed (+ bought)."""

    inner: int
    outer: int

    def aligned_units(self, m: int, n: int) -> int | None:
        """P when the legs are aligned at P whole units, else None."""
        if self.inner % m:
            return None
        units = self.inner // m
        return units if self.outer == -units * n else None

    def imbalance_lots(self, m: int, n: int) -> Decimal:
        """Inner lots not matched by the outer leg in ratio (signed), 0 when aligned."""
        return Decimal(self.inner) + Decimal(self.outer * m) / n

    def deltas_to(self, units: int, m: int, n: int) -> tuple[int, int]:
        """Signed lots each leg must still trade to stand aligned at ``units``."""
        return units * m - self.inner, -units * n - self.outer


def whole_units_done(position: Position, from_units: int, to_units: int, m: int, n: int) -> int:
    """How many whole units of the way from ``from_units`` to ``to_units`` *both* legs have
    covered: where an unwind goes back to. Never below 0 nor beyond the trade's size."""
    if to_units == from_units:
        return 0
    step = 1 if to_units > from_units else -1
    inner_done = (step * (position.inner - from_units * m)) // m
    outer_done = (step * (-position.outer - from_units * n)) // n
    return max(0, min(inner_done, outer_done, abs(to_units - from_units)))


def repair_span(position: Position, aligned_before: int, m: int, n: int) -> tuple[int, int]:
    """(from_units, to_units) for realigning a pair that no trade of ours unbalanced (a
    bust or a correction moved a leg): the trade restores ``aligned_before`` by a top-up,
    and an unwind goes back to the whole units both legs still hold."""
    inner_units = Decimal(position.inner) / m
    outer_units = Decimal(-position.outer) / n
    low = min(inner_units, outer_units)
    if low < aligned_before:
        return int(low.to_integral_value(rounding="ROUND_FLOOR")), aligned_before
    high = max(inner_units, outer_units)
    return int(high.to_integral_value(rounding="ROUND_CEILING")), aligned_before


def side_of(delta: int) -> Side:
    return Side.BUY if delta > 0 else Side.SELL


def away(price: Decimal, side: Side, ticks: int, tick: Decimal) -> Decimal:
    """``price`` moved ``ticks`` ticks in the direction that makes ``side`` more likely to
    trade (up for a buy, down for a sell)."""
    return price + ticks * tick if side is Side.BUY else price - ticks * tick


def beyond(price: Decimal, cap: Decimal, side: Side) -> bool:
    """True when ``price`` is worse for ``side`` than ``cap`` (a buy above, a sell below)."""
    return price > cap if side is Side.BUY else price < cap


def aggressive_limit(
    book: Book | None, side: Side, qty: int, ticks: int, tick: Decimal
) -> Decimal | None:
    """The limit that sweeps ``qty`` lots of ``book`` now, ``ticks`` further for the book to
    move a little; None when the book cannot fill ``qty`` at all."""
    if book is None:
        return None
    swept = book.sweep(side is Side.BUY, qty)
    if swept is None:
        return None
    return away(swept[1], side, ticks, tick)
