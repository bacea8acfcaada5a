"""Receipts against the FIX log: every message sent or received has its receipt, and back.

quickfix logs every message a session sends or receives (``oms.audit.fixlog``); the OMS
records a receipt for every order it sends and every message it receives. Matching the two
one to one finds what one side has and the other lacks:

* a message sent (NewOrderSingle, cancel, replace...) matches the ``command.*`` receipt
  with its ClOrdID (11) that says it was sent; an OrderStatusRequest, which carries the
  ClOrdID of the order it asks after, matches its ``command.status_request`` receipt by
  OrdStatusReqID (790);
* an execution report, cancel reject or reject received matches the ``event.*`` receipt
  whose raw message has the same SenderCompID, TargetCompID, MsgSeqNum and SendingTime;
* market data received (W, X) matches the ``event.market_data`` receipt (or
  ``event.market_data_ignored``, for a line that was not the venue's active one) of the
  same venue and line with the same SendingTime (those receipts keep counts, not the raw
  text);
* session-level messages (logon, heartbeat, test request, resend request, sequence reset,
  logout) and the MarketDataRequests the sessions send carry no receipt by design and are
  only counted.

At start (:func:`reconcile_at_start`, in the receipt writer's process, before trading) the
messages logged since the last reconciliation are matched against the receipts recorded
since; a message without a receipt gets one then (``fix.unrecorded``, with the raw text),
and one ``audit.reconcile`` receipt records the outcome and where in each log file the
next reconciliation starts.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from sqlalchemy import select

from oms.audit.fixlog import LoggedMessage, fix_time_ns, header_tags, read_messages
from oms.receipt_schema import RECEIPTS
from oms.receipts import Receipt, ReceiptFields, ReceiptStore, as_fields

ADMIN_TYPES: Final = frozenset({"0", "1", "2", "4", "5", "A"})
"""Session-level messages: quickfix's own business, no receipt."""
UNRECEIPTED_OUT: Final = frozenset({"V"})
"""Application messages the sessions send without a receipt (market data subscriptions)."""
MARKET_DATA: Final = frozenset({"W", "X"})
MARKET_DATA_KINDS: Final = frozenset({"event.market_data", "event.market_data_ignored"})
"""Receipts of market data received: applied to the books, or not (an inactive line's)."""
UNRECORDED_KIND: Final = "fix.unrecorded"
STATUS_REQUEST_KIND: Final = "command.status_request"
"""Matched on OrdStatusReqID (790): it carries the order's ClOrdID, not one of its own."""
RECONCILE_KIND: Final = "audit.reconcile"
_SLACK_NS: Final = 1_000_000_000
_DETAILS: Final = 50

Key = tuple[Any, ...]
SessionMap = Mapping[tuple[str, str], tuple[str, str]]
"""(our CompID, their CompID) -> (venue id, line role), from the gateway's configuration."""


@dataclass(frozen=True, slots=True)
class FixLogSpec:
    """Where quickfix logs the gateway's messages, and whose sessions they are."""

    directory: Path
    sessions: dict[tuple[str, str], tuple[str, str]]

    @property
    def ours(self) -> frozenset[str]:
        return frozenset(ours for ours, _ in self.sessions)


@dataclass
class Reconciliation:
    """What matched, and what either side has without the other."""

    matched: Counter[str] = field(default_factory=Counter)
    """Matched pairs by ``"<direction> <MsgType>"``."""
    not_receipted: Counter[str] = field(default_factory=Counter)
    """Logged messages that carry no receipt by design, by ``"<direction> <MsgType>"``."""
    unreceipted: list[LoggedMessage] = field(default_factory=list)
    """Messages in the FIX log without a receipt."""
    unlogged: list[tuple[int, str, str]] = field(default_factory=list)
    """Receipts saying a message was sent or received that the log does not have:
    ``(seq, kind, what)``."""
    offsets: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    receipts: int = 0

    @property
    def ok(self) -> bool:
        return not self.unreceipted and not self.unlogged


def _direction(tags: Mapping[int, str], ours: frozenset[str]) -> str | None:
    if tags.get(49) in ours:
        return "out"
    if tags.get(56) in ours:
        return "in"
    return None


def message_key(tags: Mapping[int, str], direction: str, sessions: SessionMap) -> Key | None:
    """What a logged message is matched on; None for one that carries no receipt."""
    msg_type = tags.get(35, "")
    if msg_type in ADMIN_TYPES or (direction == "out" and msg_type in UNRECEIPTED_OUT):
        return None
    if direction == "out":
        if msg_type == "H":  # the order's own ClOrdID, asked after as often as need be
            return ("out", "H", tags.get(790))
        clordid = tags.get(11)
        if clordid is not None:
            return ("out", clordid)
        return ("out", msg_type, tags.get(49), tags.get(56), tags.get(34))
    if msg_type in MARKET_DATA:
        venue, line = sessions.get((tags.get(56, ""), tags.get(49, "")), (None, None))
        sending = tags.get(52)
        return ("md", venue, line, msg_type, fix_time_ns(sending) if sending else None)
    return ("in", tags.get(49), tags.get(56), tags.get(34), tags.get(52))


def receipt_key(
    kind: str,
    clordid: str | None,
    verdict: str | None,
    venue: str | None,
    line: str | None,
    raw: str | None,
    data: Mapping[str, Any],
    ours: frozenset[str],
    sessions: SessionMap,
) -> Key | None:
    """What a receipt is matched on; None for one that stands for no FIX message."""
    if kind == UNRECORDED_KIND and raw:
        tags = header_tags(raw)
        direction = _direction(tags, ours)
        return None if direction is None else message_key(tags, direction, sessions)
    if kind.startswith("command."):
        if clordid is None or verdict == "not sent":
            return None
        if kind == STATUS_REQUEST_KIND:
            return ("out", "H", data.get("status_req_id"))
        return ("out", clordid)
    if kind in MARKET_DATA_KINDS:
        msg_type = "W" if data.get("snapshot") else "X"
        return ("md", venue, line, msg_type, data.get("sending_ns"))
    if kind.startswith("event.") and raw:
        tags = header_tags(raw)
        return ("in", tags.get(49), tags.get(56), tags.get(34), tags.get(52))
    return None


def reconcile(
    store: ReceiptStore,
    spec: FixLogSpec,
    *,
    after_seq: int = 0,
    offsets: Mapping[str, int] | None = None,
) -> Reconciliation:
    """Match the messages logged after ``offsets`` with the receipts after ``after_seq``.

    Receipts older than the first message read (less a second) are left out: they belong
    to a time the log does not cover.
    """
    result = Reconciliation()
    if not spec.directory.is_dir():
        return result
    messages, result.offsets = read_messages(spec.directory, offsets)
    ours = spec.ours
    logged: dict[Key, list[LoggedMessage]] = {}
    for message in messages:
        direction = _direction(message.tags, ours)
        if direction is None:
            continue
        result.messages += 1
        key = message_key(message.tags, direction, spec.sessions)
        if key is None:
            result.not_receipted[f"{direction} {message.msg_type}"] += 1
            continue
        logged.setdefault(key, []).append(message)

    since = (messages[0].logged_ns - _SLACK_NS) if messages else None
    columns = (
        RECEIPTS.c.seq,
        RECEIPTS.c.kind,
        RECEIPTS.c.clordid,
        RECEIPTS.c.verdict,
        RECEIPTS.c.venue,
        RECEIPTS.c.line,
        RECEIPTS.c.raw,
        RECEIPTS.c.data,
    )
    stmt = select(*columns).where(RECEIPTS.c.seq > after_seq).order_by(RECEIPTS.c.seq)
    if since is not None:
        stmt = stmt.where(RECEIPTS.c.ts_ns >= since)
    decode = json.JSONDecoder().decode
    with store.engine.connect() as conn:
        rows = conn.execution_options(stream_results=True, yield_per=10_000).execute(stmt)
        for seq, kind, clordid, verdict, venue, line, raw, data in rows:
            if kind == RECONCILE_KIND:
                continue
            key = receipt_key(
                kind, clordid, verdict, venue, line, raw, decode(data), ours, spec.sessions
            )
            if key is None:
                continue
            result.receipts += 1
            found = logged.get(key)
            if found:
                message = found.pop(0)
                direction = "out" if key[0] == "out" else "in"
                result.matched[f"{direction} {message.msg_type}"] += 1
                if not found:
                    del logged[key]
            elif since is not None:
                result.unlogged.append((seq, kind, " ".join(str(k) for k in key)))
    result.unreceipted = sorted(
        (m for found in logged.values() for m in found), key=lambda m: m.logged_ns
    )
    return result


def reconcile_at_start(store: ReceiptStore, spec: FixLogSpec) -> list[ReceiptFields]:
    """The receipts a starting writer records before anything else: one ``fix.unrecorded``
    per logged message without a receipt, then the ``audit.reconcile`` summary."""
    last = _last_reconciliation(store)
    after_seq, offsets = (0, {}) if last is None else last
    now = time.time_ns()
    if not spec.directory.is_dir():
        summary = Receipt.of(
            RECONCILE_KIND,
            ts_ns=now,
            verdict="no_log",
            reason=f"no FIX message log at {spec.directory}: nothing to reconcile",
        )
        return [as_fields(summary)]
    result = reconcile(store, spec, after_seq=after_seq, offsets=offsets)
    found: list[Receipt] = []
    for message in result.unreceipted:
        direction = _direction(message.tags, spec.ours) or "?"
        tags = message.tags
        ours, theirs = (
            (tags.get(49, ""), tags.get(56, ""))
            if direction == "out"
            else (tags.get(56, ""), tags.get(49, ""))
        )
        venue, line = spec.sessions.get((ours, theirs), (None, None))
        found.append(
            Receipt.of(
                UNRECORDED_KIND,
                ts_ns=message.logged_ns,
                venue=venue,
                line=line,
                symbol=tags.get(55),
                clordid=tags.get(11),
                venue_order_id=tags.get(37),
                exec_id=tags.get(17),
                verdict=direction,
                reason=f"logged by quickfix in {message.file} with no receipt; recorded at "
                "the next start",
                raw=message.text,
                data={
                    "msg_type": message.msg_type,
                    "msg_seq_num": tags.get(34),
                    "file": message.file,
                    "found_ns": now,
                },
            )
        )
    data: dict[str, str | int | None] = {
        "messages": result.messages,
        "receipts": result.receipts,
        "matched": sum(result.matched.values()),
        "unreceipted": len(result.unreceipted),
        "unlogged": len(result.unlogged),
        "after_seq": after_seq,
    }
    for name, offset in sorted(result.offsets.items()):
        data[f"offset:{name}"] = offset
    for seq, kind, what in result.unlogged[:_DETAILS]:
        data[f"unlogged:{seq}"] = f"{kind} {what}"
    summary = Receipt.of(
        RECONCILE_KIND,
        ts_ns=time.time_ns(),
        verdict="ok" if result.ok else "gaps",
        reason=f"{sum(result.matched.values())} FIX message(s) matched their receipts; "
        f"{len(result.unreceipted)} logged without a receipt (recorded now); "
        f"{len(result.unlogged)} receipt(s) without a logged message",
        data=data,
    )
    return [as_fields(r) for r in (*found, summary)]


def _last_reconciliation(store: ReceiptStore) -> tuple[int, dict[str, int]] | None:
    stmt = (
        select(RECEIPTS.c.seq, RECEIPTS.c.data)
        .where(RECEIPTS.c.kind == RECONCILE_KIND)
        .order_by(RECEIPTS.c.seq.desc())
        .limit(1)
    )
    with store.engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        return None
    data = json.loads(row.data)
    offsets = {
        key.removeprefix("offset:"): int(value)
        for key, value in data.items()
        if key.startswith("offset:") and isinstance(value, int)
    }
    return int(row.seq), offsets
