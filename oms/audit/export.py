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
_SEPARATORS: Final = len(EXPORT_COLUMNS) - 1


def export_rows(rows: Iterable[Sequence[Any]]) -> Iterable[tuple[Any, ...]]:
    """Scanned rows (``ReceiptStore.scan``: id, then ROW_COLUMNS) as EXPORT_COLUMNS."""
    utc = UtcFormatter()
    for r in rows:
        yield _record(r, utc)


def _record(r: Sequence[Any], utc: UtcFormatter) -> tuple[Any, ...]:
    event_ns, decision_ns, send_ns, ack_ns = r[17], r[18], r[19], r[20]
    return (
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
    """CSV with a header line; empty cells for None. Returns the number of receipts.

    The text is what ``csv.writer`` writes (minimal quoting, ``\\n`` line ends), built
    faster: each line is put together in one f-string, and only a line with a comma, a
    quote or a line break in a cell other than ``data`` (quoted on its own) is made cell
    by cell. The module alone spent half of a million-row export's time converting and
    checking cells one at a time. One difference: a carriage return in a cell is quoted
    too (Python 3.11's module leaves it bare, and that line would not read back).
    """
    csv.writer(out, lineterminator="\n").writerow(EXPORT_COLUMNS)
    utc = UtcFormatter()
    n = 0
    lines: list[str] = []
    for r in rows:
        (
            _,
            seq,
            kind,
            ts_ns,
            _,
            latency_ns,
            venue,
            line,
            symbol,
            clordid,
            order_id,
            exec_id,
            pair_id,
            verdict,
            reason,
            raw,
            data,
            event_ns,
            decision_ns,
            send_ns,
            ack_ns,
            prev_hash,
            digest,
        ) = r
        if data is None:
            cell = ""
        elif '"' in data or "," in data or "\n" in data or "\r" in data:
            cell = '"' + data.replace('"', '""') + '"'
        else:
            cell = data
        text = (
            f"{seq},{utc(ts_ns)},{kind},{ts_ns},"
            f"{'' if event_ns is None else event_ns},"
            f"{'' if decision_ns is None else decision_ns},"
            f"{'' if send_ns is None else send_ns},"
            f"{'' if ack_ns is None else ack_ns},"
            f"{'' if event_ns is None or decision_ns is None else decision_ns - event_ns},"
            f"{'' if decision_ns is None or send_ns is None else send_ns - decision_ns},"
            f"{'' if send_ns is None or ack_ns is None else ack_ns - send_ns},"
            f"{'' if latency_ns is None else latency_ns},"
            f"{venue or ''},{line or ''},{symbol or ''},{clordid or ''},{order_id or ''},"
            f"{exec_id or ''},{pair_id or ''},{verdict or ''},{reason or ''},{raw or ''},"
            f"{cell},{prev_hash or ''},{digest or ''}\n"
        )
        if (
            text.count(",") != _SEPARATORS + cell.count(",")
            or text.count('"') != cell.count('"')
            or text.count("\n") != 1
            or "\r" in text
        ):  # a cell besides data needs quoting
            text = ",".join(map(_cell, _record(r, utc))) + "\n"
        lines.append(text)
        if len(lines) == _EVERY:
            out.write("".join(lines))
            n += len(lines)
            lines = []
            if progress is not None:
                progress(n)
    out.write("".join(lines))
    n += len(lines)
    if progress is not None:
        progress(n)
    return n


def _cell(value: object) -> str:
    """One CSV cell, quoted when it holds a comma, a quote or a line break."""
    if value is None:
        return ""
    text = str(value)
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


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
