"""Receipts out of the store as CSV or JSON, streamed: a million rows in flat memory.

Each exported receipt carries its place (``seq``), its time in UTC text and in ns, the hop
times of its trade and the latency of each hop, the ids (venue, line, ClOrdID, OrderID,
ExecID, pair id), verdict and reason, the raw FIX message where there is one, its ``data``
(JSON with Decimals as strings) and its hashes, so that an export can be checked against
the chain. The raw FIX text is exported exactly, SOH separators included.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, TextIO

from oms.audit.timerange import UtcFormatter

FORMATS: Final = ("csv", "json", "html")

EXPORT_COLUMNS: Final = (
    "seq",
    "time_utc",
    "kind",
    "ts_ns",
    "event_ns",
    "decision_ns",
    "send_ns",
    "ack_ns",
    "event_to_decision_ns",
    "decision_to_send_ns",
    "send_to_ack_ns",
    "latency_ns",
    "venue",
    "line",
    "symbol",
    "clordid",
    "order_id",
    "exec_id",
    "pair_id",
    "verdict",
    "reason",
    "raw",
    "data",
    "prev_hash",
    "hash",
)

Progress = Callable[[int], None]
_EVERY: Final = 10_000


def export_rows(rows: Iterable[Sequence[Any]]) -> Iterable[tuple[Any, ...]]:
    """Scanned rows (``ReceiptStore.scan``: id, then ROW_COLUMNS) as EXPORT_COLUMNS."""
    utc = UtcFormatter()
    for r in rows:
        event_ns, decision_ns, send_ns, ack_ns = r[17], r[18], r[19], r[20]
        yield (
            r[1],
            utc(r[3]),
            r[2],
            r[3],
            event_ns,
            decision_ns,
            send_ns,
            ack_ns,
            None if event_ns is None or decision_ns is None else decision_ns - event_ns,
            None if decision_ns is None or send_ns is None else send_ns - decision_ns,
            None if send_ns is None or ack_ns is None else ack_ns - send_ns,
            r[5],
            r[6],
            r[7],
            r[8],
            r[9],
            r[10],
            r[11],
            r[12],
            r[13],
            r[14],
            r[15],
            r[16],
            r[21],
            r[22],
        )


def write_csv(rows: Iterable[Sequence[Any]], out: TextIO, progress: Progress | None = None) -> int:
    """CSV with a header line; empty cells for None. Returns the number of receipts."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    n = 0
    batch: list[tuple[Any, ...]] = []
    for record in export_rows(rows):
        batch.append(record)
        if len(batch) == _EVERY:
            writer.writerows(batch)
            n += len(batch)
            batch = []
            if progress is not None:
                progress(n)
    writer.writerows(batch)
    n += len(batch)
    if progress is not None:
        progress(n)
    return n


def write_json(rows: Iterable[Sequence[Any]], out: TextIO, progress: Progress | None = None) -> int:
    """One JSON array of objects, one per line; ``data`` as the stored JSON object."""
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    names = EXPORT_COLUMNS
    out.write("[")
    n = 0
    chunk: list[str] = []
    for record in export_rows(rows):
        fields = dict(zip(names, record, strict=True))
        data = fields.pop("data")
        text = encode(fields)
        chunk.append(("\n" if n == 0 else ",\n") + text[:-1] + ',"data":' + (data or "{}") + "}")
        n += 1
        if n % _EVERY == 0:
            out.write("".join(chunk))
            chunk = []
            if progress is not None:
                progress(n)
    out.write("".join(chunk))
    out.write("\n]\n" if n else "]\n")
    if progress is not None:
        progress(n)
    return n
