"""The hash chain and the hop times: what the writer adds to each receipt, in ``seq`` order.

A receipt is *sealed* when it gets its place in the store: its ``seq``, the times of the hops
of the trade it belongs to (``event_ns``, ``decision_ns``, ``send_ns``, ``ack_ns``), the hash
of the receipt before it (``prev_hash``) and its own ``hash``::

    hash = sha256(canonical(row without its hash)).hexdigest()

``canonical`` is the UTF-8 of the compact JSON array (``ensure_ascii=False``, no spaces) of
the row's columns in :data:`ROW_COLUMNS` order, ``seq`` and ``prev_hash`` included, so each
hash covers the one before it (``data`` is already canonical JSON text). So a receipt
cannot be edited, moved to another ``seq`` or dropped without breaking the chain at that
point: ``oms.audit.verify`` walks it and says where.

Sealing happens in one place only, the writer process (or a store written directly), in
``seq`` order: never on the OMS thread, whose work stops at building the ``Receipt``.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import orjson

if TYPE_CHECKING:
    from oms.receipts import ReceiptFields

HASH_SCHEME: Final = "sha256 over the JSON array of the row, prev_hash included (v1)"

GENESIS_HASH: Final = "0" * 64
"""The ``prev_hash`` of the first receipt of a store."""

ROW_COLUMNS: Final = (
    "seq",
    "kind",
    "ts_ns",
    "cause_ns",
    "latency_ns",
    "venue",
    "line",
    "symbol",
    "clordid",
    "venue_order_id",
    "exec_id",
    "pair_id",
    "verdict",
    "reason",
    "raw",
    "data",
    "event_ns",
    "decision_ns",
    "send_ns",
    "ack_ns",
    "prev_hash",
    "hash",
)
"""The stored columns of a sealed receipt, in the order rows, COPY and the hash use."""

SealedRow = tuple[
    int,  # seq
    str,  # kind
    int,  # ts_ns
    int | None,  # cause_ns
    int | None,  # latency_ns
    str | None,  # venue
    str | None,  # line
    str | None,  # symbol
    str | None,  # clordid
    str | None,  # venue_order_id
    str | None,  # exec_id
    str | None,  # pair_id
    str | None,  # verdict
    str | None,  # reason
    str | None,  # raw
    str,  # data (canonical JSON text)
    int | None,  # event_ns
    int | None,  # decision_ns
    int | None,  # send_ns
    int | None,  # ack_ns
    str,  # prev_hash
    str,  # hash
]


def _compact_json(*, sort_keys: bool) -> Callable[[object], str]:
    """``json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=...).encode``,
    the same text, with the C encoder built once instead of on every call (what ``encode``
    does; measured, a third of the time of encoding a row). Receipts hold no containers
    but ``data``, so the check for circular references is left out.

    This is the definition of the canonical text; :func:`canonical_row` and
    :func:`dump_data` produce the same bytes faster and fall back on it."""
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without the C accelerator
        return encoder.encode
    iterencode = make(
        None,
        encoder.default,
        json.encoder.encode_basestring,
        None,
        encoder.key_separator,
        encoder.item_separator,
        sort_keys,
        False,
        True,
    )
    join = "".join

    def encode(obj: object) -> str:
        return join(iterencode(obj, 0))

    return encode


reference_row = _compact_json(sort_keys=False)
"""The canonical text of a row's hashed columns, by definition (the standard library)."""

reference_data = _compact_json(sort_keys=True)
"""The canonical text of ``Receipt.data``, by definition (the standard library)."""

_sha256 = hashlib.sha256
_fast_json = orjson.dumps
_SORT_KEYS: Final = orjson.OPT_SORT_KEYS


def canonical_row(body: Sequence[object]) -> bytes:
    """The UTF-8 of ``reference_row(body)``, five times faster (orjson: sealing is the
    writer's main cost, and the writer shares two CPUs with the database).

    For what a row holds (str, int, None; text without lone surrogates, which
    ``oms.receipts`` has escaped) orjson writes the same bytes as the reference encoder:
    the same escapes, lowercase ``\\u00XX`` for control characters, non-ASCII as UTF-8,
    ``/`` unescaped (tests/test_audit_chain.py checks it on generated rows). What it refuses
    (an int beyond 64 bits) goes through the reference encoder, so no chain depends on
    which one ran."""
    try:
        return _fast_json(body)
    except TypeError:
        return reference_row(body).encode()


def dump_data(data: object) -> str:
    """``Receipt.data`` as stored: canonical JSON (keys sorted, no spaces), the same data
    always the same text, so that the hash over it is stable. The text of
    :data:`reference_data`, made as :func:`canonical_row` makes a row's."""
    try:
        return _fast_json(data, option=_SORT_KEYS).decode()
    except TypeError:
        return reference_data(data)


def row_hash(row: Sequence[object]) -> str:
    """The hash a sealed row must carry: ``row`` is a row of ``ROW_COLUMNS`` (its last
    item, the stored hash, is left out of what is hashed)."""
    return _sha256(canonical_row(list(row[:-1]))).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where the chain ends: the last sealed ``seq`` (0 when empty) and its hash."""

    seq: int = 0
    hash: str = GENESIS_HASH


Hops = tuple[int | None, int | None, int | None, int | None]

_MAX_TRACKED_ORDERS: Final = 200_000
_MAX_TRACKED_PAIRS: Final = 50_000


class HopTracker:
    """The times of one trade's hops, carried from receipt to receipt in ``seq`` order.

    The OMS records each step when it happens and does no look-ups for it; the writer knows
    the order of everything, so it fills in each receipt's ``event_ns`` (what started it),
    ``decision_ns`` (the latest decision of its trade), ``send_ns`` (the order went out) and
    ``ack_ns`` (the venue's first answer arrived), from the earlier receipts of the same
    trade (``pair_id``) and order (``clordid``). A receipt with no trade gets only its own
    ``event_ns`` (its ``cause_ns``). After a writer restart, trades in flight start afresh:
    their later receipts miss the hops recorded before.
    """

    def __init__(self) -> None:
        self._pairs: OrderedDict[str, tuple[int | None, int]] = OrderedDict()
        self._orders: OrderedDict[str, list[int | None]] = OrderedDict()

    def hops(self, fields: ReceiptFields) -> Hops:
        kind, ts_ns, cause_ns = fields[0], fields[1], fields[2]
        clordid, pair_id, verdict = fields[7], fields[10], fields[11]
        family = kind.partition(".")[0]
        if family == "decision" and pair_id is not None:
            self._pairs[pair_id] = (cause_ns, ts_ns)
            self._pairs.move_to_end(pair_id)
            if len(self._pairs) > _MAX_TRACKED_PAIRS:
                self._pairs.popitem(last=False)
            return cause_ns, ts_ns, None, None
        if family == "command" and clordid is not None:
            event_ns, decision_ns = cause_ns, None
            if pair_id is not None and pair_id in self._pairs:
                pair_event, decision_ns = self._pairs[pair_id]
                event_ns = cause_ns if cause_ns is not None else pair_event
            send_ns = None if verdict == "not sent" else ts_ns
            self._orders[clordid] = [event_ns, decision_ns, send_ns, None]
            if len(self._orders) > _MAX_TRACKED_ORDERS:
                self._orders.popitem(last=False)
            return event_ns, decision_ns, send_ns, None
        if family == "event" and clordid is not None:
            order = self._orders.get(clordid)
            if order is not None:
                if order[3] is None and order[2] is not None:
                    order[3] = cause_ns  # the first answer to what was sent: the ack
                return order[0], order[1], order[2], order[3]
        if pair_id is not None and pair_id in self._pairs:
            pair_event, decision_ns = self._pairs[pair_id]
            return pair_event, decision_ns, None, None
        return cause_ns, None, None, None


class Chain:
    """Seals receipts in order: ``seq``, hop times, ``prev_hash`` and ``hash``.

    :meth:`seal` does not move the head; :meth:`advance` does, once the sealed rows are
    durable (committed, or in the spool), so that a batch the database refused leaves no
    hole in ``seq`` and no fork in the chain.
    """

    def __init__(self, head: ChainHead | None = None) -> None:
        self.head = head or ChainHead()
        self._hops = HopTracker()

    def seal(self, batch: Sequence[ReceiptFields]) -> tuple[list[SealedRow], ChainHead]:
        seq, prev = self.head.seq, self.head.hash
        rows: list[SealedRow] = []
        hops = self._hops.hops
        encode, sha = canonical_row, _sha256
        for f in batch:
            seq += 1
            body = [seq, *f[:14], dump_data(f[14]), *hops(f), prev]
            digest = sha(encode(body)).hexdigest()
            body.append(digest)
            rows.append(tuple(body))  # type: ignore[arg-type]
            prev = digest
        return rows, ChainHead(seq, prev)

    def advance(self, head: ChainHead) -> None:
        self.head = head
