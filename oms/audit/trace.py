"""One trade's whole chain of receipts, in order, from any of its ids.

Given a ClOrdID, the venue's OrderID or a pair id (a trade's, ``GOLD-7``), :func:`trace`
finds the trade it belongs to and returns, in ``seq`` order: the market data receipt that
set it off, its decisions, every order it sent and every answer the venues gave to them
(cancels and top-ups included, as they share the trade's pair id or an order's ClOrdID).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import Row, or_, select

from oms.receipt_schema import RECEIPTS
from oms.receipts import ReceiptStore

_TRIGGER_WINDOW_NS: Final = 5_000_000_000
"""How long after the market data that set a trade off its receipt can have been written."""


def trace(store: ReceiptStore, key: str) -> list[Row[Any]]:
    """The chain of the trade ``key`` belongs to (scan rows), or [] when nothing has it."""
    c = RECEIPTS.c
    direct = list(store.scan(or_(c.clordid == key, c.venue_order_id == key, c.pair_id == key)))
    if not direct:
        return []
    trades = {r.pair_id for r in direct if r.pair_id is not None}
    orders = {r.clordid for r in direct if r.clordid is not None}
    if trades:
        with store.engine.connect() as conn:
            orders |= set(
                conn.execute(
                    select(c.clordid).where(c.pair_id.in_(trades), c.clordid.is_not(None))
                ).scalars()
            )
    conditions = []
    if trades:
        conditions.append(c.pair_id.in_(trades))
    if orders:
        conditions.append(c.clordid.in_(orders))
    rows = {r.seq: r for r in store.scan(or_(*conditions))} if conditions else {}
    for r in direct:
        rows.setdefault(r.seq, r)
    triggers = {
        r.event_ns
        for r in rows.values()
        if r.kind.startswith("decision.") and r.event_ns is not None
    }
    if triggers:
        low, high = min(triggers), max(triggers) + _TRIGGER_WINDOW_NS
        for r in store.scan(
            c.kind == "event.market_data", c.ts_ns >= low, c.ts_ns <= high, c.cause_ns.in_(triggers)
        ):
            rows.setdefault(r.seq, r)
    return [rows[seq] for seq in sorted(rows)]


def hop_summary(rows: Sequence[Row[Any]]) -> list[tuple[str, int | None, int | None, int | None]]:
    """Per order sent in the chain: (ClOrdID, event -> decision, decision -> send,
    send -> ack) in ns, from the last receipt of each order (the most complete)."""
    last: dict[str, Row[Any]] = {}
    for r in rows:
        if r.clordid is not None and (r.send_ns is not None or r.clordid in last):
            last[r.clordid] = r
    out = []
    for clordid, r in last.items():
        out.append(
            (
                clordid,
                None if r.event_ns is None or r.decision_ns is None else r.decision_ns - r.event_ns,
                None if r.decision_ns is None or r.send_ns is None else r.send_ns - r.decision_ns,
                None if r.send_ns is None or r.ack_ns is None else r.ack_ns - r.send_ns,
            )
        )
    return out
