"""The HTML audit report: one self-contained file, readable without a network.

The plots are matplotlib figures written as inline SVG (text as text, no scripts, no web
fonts, no external files): a histogram of each hop's latency, and for each pair a timeline
of its trades. Below them, counts by kind and venue, and the first receipts of the
selection as a table (a full listing is what the CSV and JSON exports are for).

The figures are drawn from one streaming pass: each hop is counted once per order (the
decision receipt gives event -> decision, the command receipt decision -> send and
event -> send, the venue's first answer send -> ack), and the timelines keep the first
:data:`MAX_TRADES` trades of each pair.
"""

from __future__ import annotations

import html
import io
import re
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

from oms.audit.timerange import UtcFormatter, utc_text

MAX_TRADES: Final = 200
"""Trades drawn per pair on its timeline."""
HOPS: Final = (
    ("event_to_decision", "market data in -> decision"),
    ("decision_to_send", "decision -> order sent"),
    ("event_to_send", "market data in -> order sent"),
    ("send_to_ack", "order sent -> venue's first answer"),
)
_FAMILY_STYLE: Final = {
    "decision": ("D", "#1f77b4", "decision"),
    "command": ("^", "#2ca02c", "order sent"),
    "event": ("o", "#ff7f0e", "venue answer"),
    "alert": ("X", "#d62728", "alert"),
}

Progress = Callable[[int], None]


@dataclass
class _Trade:
    first_ns: int
    last_ns: int
    points: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class ReportData:
    """What one pass over the selected receipts collects for the report."""

    count: int = 0
    first_ns: int | None = None
    last_ns: int | None = None
    kinds: Counter[str] = field(default_factory=Counter)
    venues: Counter[str] = field(default_factory=Counter)
    hops: dict[str, array[int]] = field(
        default_factory=lambda: {name: array("q") for name, _ in HOPS}
    )
    pairs: dict[str, dict[str, _Trade]] = field(default_factory=dict)
    trade_ids: dict[str, set[str]] = field(default_factory=dict)
    table: list[Sequence[Any]] = field(default_factory=list)

    def add(self, r: Sequence[Any], max_rows: int) -> None:
        """One scanned row (id, then ROW_COLUMNS)."""
        kind, ts_ns, cause_ns = r[2], r[3], r[4]
        pair_id, venue = r[12], r[6]
        event_ns, decision_ns, send_ns, ack_ns = r[17], r[18], r[19], r[20]
        self.count += 1
        if self.first_ns is None:
            self.first_ns = ts_ns
        self.last_ns = ts_ns
        self.kinds[kind] += 1
        if venue is not None:
            self.venues[venue] += 1
        family = kind.partition(".")[0]
        hops = self.hops
        if family == "decision" and event_ns is not None and decision_ns is not None:
            hops["event_to_decision"].append(decision_ns - event_ns)
        elif family == "command" and send_ns is not None:
            if decision_ns is not None:
                hops["decision_to_send"].append(send_ns - decision_ns)
            if event_ns is not None:
                hops["event_to_send"].append(send_ns - event_ns)
        elif family == "event" and ack_ns is not None and ack_ns == cause_ns and send_ns:
            hops["send_to_ack"].append(ack_ns - send_ns)
        if pair_id is not None:
            pair = pair_id.rsplit("-", 1)[0] if "-" in pair_id else pair_id
            trades = self.pairs.setdefault(pair, {})
            trade = trades.get(pair_id)
            if trade is None:
                self.trade_ids.setdefault(pair, set()).add(pair_id)
                if len(trades) < MAX_TRADES:
                    trade = trades[pair_id] = _Trade(ts_ns, ts_ns)
            if trade is not None:
                trade.last_ns = max(trade.last_ns, ts_ns)
                trade.points.append((ts_ns, family))
        if len(self.table) < max_rows:
            self.table.append(tuple(r))

    def trades_of(self, pair: str) -> int:
        return len(self.trade_ids.get(pair, ()))


def collect(
    rows: Iterable[Sequence[Any]], *, max_rows: int = 1_000, progress: Progress | None = None
) -> ReportData:
    data = ReportData()
    for r in rows:
        data.add(r, max_rows)
        if progress is not None and data.count % 10_000 == 0:
            progress(data.count)
    if progress is not None:
        progress(data.count)
    return data


# --- drawing ----------------------------------------------------------------------------------


def _svg(figure: Any) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    start = text.find("<svg")
    return re.sub(r"<metadata>.*?</metadata>", "", text[start:], flags=re.S)


def _percentile(values: Sequence[int], q: float) -> int:
    rank = max(0, min(len(values) - 1, round(q / 100 * len(values)) - 1))
    return int(values[rank])


def _histograms(data: ReportData, plt: Any) -> list[tuple[str, str, str]]:
    """(title, summary line, svg) per hop that has values."""
    import numpy as np

    out = []
    for name, title in HOPS:
        values = np.frombuffer(data.hops[name], dtype=np.int64) if data.hops[name] else None
        if values is None or not len(values):
            continue
        us = np.sort(values) / 1_000.0
        top = float(np.percentile(us, 99.5)) if len(us) > 20 else float(us[-1])
        shown = us[us <= top] if top > us[0] else us
        figure, axes = plt.subplots(figsize=(6.4, 2.6))
        axes.hist(shown, bins=min(60, max(5, len(shown) // 5)), color="#4c72b0")
        p50, p99 = _percentile(list(us), 50), _percentile(list(us), 99)
        for value, style in ((p50, "-"), (p99, "--")):
            axes.axvline(value, color="#c44e52", linestyle=style, linewidth=1)
        axes.set_xlabel("µs")
        axes.set_ylabel("count")
        axes.set_title(title, fontsize=10)
        figure.tight_layout()
        summary = (
            f"{len(us):,} value(s); p50 {p50:,} µs, p99 {p99:,} µs, max {float(us[-1]):,.0f} µs"
            + (" (axis cut at the 99.5th percentile)" if len(shown) < len(us) else "")
        )
        out.append((title, summary, _svg(figure)))
        plt.close(figure)
    return out


def _timelines(data: ReportData, plt: Any) -> list[tuple[str, str, str]]:
    """(pair, summary line, svg) per pair: one row per trade, a mark per receipt."""
    out = []
    for pair, trades in sorted(data.pairs.items()):
        ordered = sorted(trades.items(), key=lambda item: item[1].first_ns)
        height = min(12.0, 1.4 + 0.22 * len(ordered))
        figure, axes = plt.subplots(figsize=(7.5, height))
        seen: set[str] = set()
        for row, (_, trade) in enumerate(ordered):
            axes.hlines(row, 0, (trade.last_ns - trade.first_ns) / 1e3, color="#999999", lw=1)
            for family, (marker, colour, label) in _FAMILY_STYLE.items():
                xs = [(ts - trade.first_ns) / 1e3 for ts, f in trade.points if f == family]
                if xs:
                    axes.scatter(
                        xs,
                        [row] * len(xs),
                        marker=marker,
                        color=colour,
                        s=18,
                        label=None if family in seen else label,
                        zorder=3,
                    )
                    seen.add(family)
        axes.set_yticks(range(len(ordered)))
        axes.set_yticklabels(
            [f"{trade_id} {utc_text(t.first_ns)[11:23]}" for trade_id, t in ordered], fontsize=7
        )
        axes.invert_yaxis()
        axes.set_xlabel("µs after the trade's first receipt (its time of day, UTC, on the left)")
        axes.set_title(f"pair {pair}: each trade's receipts", fontsize=10)
        if seen:
            axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        figure.tight_layout()
        total = data.trades_of(pair)
        summary = f"{total:,} trade(s)" + (
            f"; the first {len(ordered)} drawn" if total > len(ordered) else ""
        )
        out.append((pair, summary, _svg(figure)))
        plt.close(figure)
    return out


_STYLE: Final = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;
color:#222}h1{font-size:20px}h2{font-size:16px;margin-top:28px}table{border-collapse:collapse;
font-size:12px}td,th{border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.n{text-align:right;font-variant-numeric:tabular-nums}
.plots{display:flex;flex-wrap:wrap;gap:16px}.plot{max-width:720px}.plot svg{max-width:100%;
height:auto}.note{color:#666;font-size:12px}code{font-size:11px;word-break:break-all}
"""


def render(data: ReportData, *, title: str, selection: str, store: str, generated_ns: int) -> str:
    import matplotlib

    matplotlib.use("Agg", force=True)
    matplotlib.rcParams["svg.fonttype"] = "none"
    import matplotlib.pyplot as plt

    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>Store <code>{e(store)}</code>; selection: {e(selection)}; "
        f"{data.count:,} receipt(s)"
        + (
            f" from {e(utc_text(data.first_ns))} to {e(utc_text(data.last_ns))}"
            if data.first_ns is not None and data.last_ns is not None
            else ""
        )
        + f". Generated {e(utc_text(generated_ns))}.</p>",
    ]
    histograms = _histograms(data, plt)
    parts.append("<h2>Latency per hop</h2>")
    if histograms:
        parts.append('<div class="plots">')
        for hop_title, summary, svg in histograms:
            parts.append(
                f'<div class="plot"><div>{svg}</div><p class="note">{e(hop_title)}: '
                f"{e(summary)}; solid line p50, dashed p99</p></div>"
            )
        parts.append("</div>")
    else:
        parts.append('<p class="note">No trade in the selection: no hop to measure.</p>')
    timelines = _timelines(data, plt)
    parts.append("<h2>Per-pair timeline</h2>")
    if timelines:
        for pair, summary, svg in timelines:
            parts.append(
                f'<div class="plot"><div>{svg}</div>'
                f'<p class="note">pair {e(pair)}: {e(summary)}</p></div>'
            )
    else:
        parts.append('<p class="note">No pair traded in the selection.</p>')
    parts.append("<h2>Receipts by kind and venue</h2><table><tr><th>kind</th><th>count</th></tr>")
    parts += [
        f'<tr><td>{e(k)}</td><td class="n">{n:,}</td></tr>' for k, n in data.kinds.most_common()
    ]
    parts.append("</table><p></p><table><tr><th>venue</th><th>count</th></tr>")
    parts += [
        f'<tr><td>{e(k)}</td><td class="n">{n:,}</td></tr>' for k, n in data.venues.most_common()
    ]
    parts.append("</table>")
    parts.append(_table(data))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _table(data: ReportData) -> str:
    e = html.escape
    utc = UtcFormatter()
    head = (
        "seq",
        "time (UTC)",
        "kind",
        "venue",
        "line",
        "ClOrdID",
        "OrderID",
        "ExecID",
        "pair",
        "verdict",
        "reason",
        "latency µs",
        "raw FIX",
    )
    rows = []
    for r in data.table:
        latency = "" if r[5] is None else f"{r[5] / 1000:,.1f}"
        raw = "" if r[15] is None else str(r[15]).replace("\x01", "|")
        cells = [
            f'<td class="n">{r[1]}</td>',
            f"<td>{e(utc(r[3]))}</td>",
            *(f"<td>{e(str(v) if v is not None else '')}</td>" for v in (r[2], r[6], r[7])),
            *(f"<td>{e(str(v) if v is not None else '')}</td>" for v in (r[9], r[10], r[11])),
            *(f"<td>{e(str(v) if v is not None else '')}</td>" for v in (r[12], r[13], r[14])),
            f'<td class="n">{latency}</td>',
            f"<td><code>{e(raw)}</code></td>",
        ]
        rows.append("<tr>" + "".join(cells) + "</tr>")
    shown = len(data.table)
    note = (
        f"the first {shown:,} of {data.count:,}; the CSV and JSON exports hold every one"
        if shown < data.count
        else f"all {shown:,}"
    )
    return (
        f"<h2>Receipts ({e(note)})</h2><table><tr>"
        + "".join(f"<th>{e(h)}</th>" for h in head)
        + "</tr>"
        + "\n".join(rows)
        + "</table>"
    )


def write_html(
    rows: Iterable[Sequence[Any]],
    out: TextIO,
    *,
    title: str,
    selection: str,
    store: str,
    generated_ns: int,
    max_rows: int = 1_000,
    progress: Progress | None = None,
) -> int:
    """The report for ``rows`` (``ReceiptStore.scan`` rows); returns how many there were."""
    data = collect(rows, max_rows=max_rows, progress=progress)
    out.write(
        render(data, title=title, selection=selection, store=store, generated_ns=generated_ns)
    )
    return data.count


# --- shared with other reports ----------------------------------------------------------------

STYLE: Final = _STYLE
"""The report's style sheet, for other reports that want to look the same."""


def figure_img(figure: Any, alt: str) -> str:
    """A matplotlib figure as an ``<img>`` whose source is the SVG itself (a ``data:`` URI):
    one self-contained file still, vector still, and the picture can be saved on its own
    from a browser."""
    import base64

    encoded = base64.b64encode(_svg(figure).encode("utf-8")).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/svg+xml;base64,{encoded}">'


def pyplot() -> Any:
    """matplotlib's pyplot on the file-only backend, text kept as text in SVG."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    matplotlib.rcParams["svg.fonttype"] = "none"
    import matplotlib.pyplot as plt

    return plt
