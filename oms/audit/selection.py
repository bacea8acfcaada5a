"""Which receipts an audit command reads: a time range and one of pair, order or venue."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_

from oms.audit.timerange import utc_text
from oms.receipt_schema import RECEIPTS


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "-%"


@dataclass(frozen=True, slots=True)
class Selection:
    """``from_ns`` inclusive, ``to_ns`` exclusive. ``pair`` matches a trade's pair id
    (``GOLD-7``) or every trade of a configured pair (``GOLD``); ``order`` a ClOrdID or the
    venue's OrderID; ``venue`` the venue id."""

    from_ns: int | None = None
    to_ns: int | None = None
    pair: str | None = None
    order: str | None = None
    venue: str | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        c = RECEIPTS.c
        where: list[ColumnElement[bool]] = []
        if self.from_ns is not None:
            where.append(c.ts_ns >= self.from_ns)
        if self.to_ns is not None:
            where.append(c.ts_ns < self.to_ns)
        if self.pair is not None:
            where.append(
                or_(c.pair_id == self.pair, c.pair_id.like(_like_prefix(self.pair), escape="\\"))
            )
        if self.order is not None:
            where.append(or_(c.clordid == self.order, c.venue_order_id == self.order))
        if self.venue is not None:
            where.append(c.venue == self.venue)
        return where

    def describe(self) -> str:
        parts = [
            f"from {utc_text(self.from_ns)}" if self.from_ns is not None else "from the start",
            f"to {utc_text(self.to_ns)}" if self.to_ns is not None else "to the end",
        ]
        for name in ("pair", "order", "venue"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name} {value}")
        return ", ".join(parts)
