"""The acceptance report as one self-contained HTML file.

A table first, one row per promise of the product guide: the figure, the promise, what was
measured (p50 and p99 where it is a time, the counts where it is a share), the verdict,
and the sentence that defines the figure. Then the plots, each an ``<img>`` holding its
own SVG (``report_html.figure_img``): the distribution of every time measured, with the
promise's bound drawn on it; how the spread trades ended; the exposure each trade left and
held. Nothing is fetched from a network to read it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any, Final

from oms.audit.acceptance import MS, Figure, Measurer
from oms.audit.report_html import STYLE, figure_img, pyplot
from oms.audit.timerange import utc_text

_VERDICT_STYLE: Final = {
    "met": "background:#e3f4e3;color:#1a6b1a",
    "not met": "background:#fbe3e3;color:#a01919",
    "not exercised": "background:#f1f1f1;color:#666",
}
_EXTRA_STYLE: Final = """
td.v{font-weight:600;white-space:nowrap}td.def{max-width:520px;color:#444}
.plot img{max-width:100%;height:auto}
"""


def _fmt_ns(ns: int | None) -> str:
    return "" if ns is None else f"{ns / MS:,.3f} ms"


def _latency_plot(figure: Figure, plt: Any) -> str:
    """The times measured, the bound as a red line, p50 and p99 as thin ones."""
    import numpy as np

    values = np.asarray(figure.samples, dtype=np.int64) / MS
    bound_ms = float(figure.promise.bound) / MS
    fig, axes = plt.subplots(figsize=(6.4, 2.6))
    top = float(np.percentile(values, 99.5)) if len(values) > 20 else float(values.max())
    shown = values[values <= top] if top > values.min() else values
    axes.hist(shown, bins=min(60, max(5, len(shown) // 5)), color="#4c72b0")
    for value, style in ((figure.p50_ns, "-"), (figure.p99_ns, "--")):
        if value is not None:
            axes.axvline(value / MS, color="#555555", linestyle=style, linewidth=1)
    if bound_ms <= max(top, float(values.max())) * 1.5:
        axes.axvline(bound_ms, color="#c44e52", linewidth=2, label=f"promise {bound_ms:g} ms")
        axes.legend(fontsize=7)
    else:  # drawn to scale, the distribution would be a sliver at the left
        axes.text(
            0.98,
            0.92,
            f"promise {bound_ms:g} ms: off the scale, {bound_ms / max(top, 1e-9):,.0f}× the "
            "right edge",
            transform=axes.transAxes,
            ha="right",
            va="top",
            fontsize=8,
            color="#c44e52",
        )
    axes.set_xlabel("ms")
    axes.set_ylabel("count")
    axes.set_title(f"{figure.promise.title}: {figure.promise.promise}", fontsize=10)
    fig.tight_layout()
    out = figure_img(fig, f"{figure.promise.title}: distribution of the times measured")
    plt.close(fig)
    return out


def _outcome_plot(figure: Figure, plt: Any) -> str:
    names = list(figure.breakdown)
    counts = [figure.breakdown[n] for n in names]
    colours = ["#55a868" if n in ("filled", "topped_up") else "#c44e52" for n in names]
    fig, axes = plt.subplots(figsize=(6.4, 2.4))
    axes.bar(names, counts, color=colours)
    for x, n in enumerate(counts):
        axes.annotate(str(n), (x, n), ha="center", va="bottom", fontsize=8)
    axes.set_ylim(0, max(counts) * 1.2)
    axes.set_ylabel("spread trades")
    axes.set_title("how the spread trades ended (green: both legs complete)", fontsize=10)
    fig.tight_layout()
    out = figure_img(fig, "spread trades by outcome")
    plt.close(fig)
    return out


def _exposure_plot(figure: Figure, plt: Any) -> str:
    fig, axes = plt.subplots(figsize=(6.4, 2.6))
    xs = range(1, len(figure.shares) + 1)
    axes.plot(
        xs,
        [float(s * 100) for s in figure.held_shares],
        marker="o",
        linestyle="none",
        color="#dd8452",
        markersize=3,
        label="held while a repair was decided",
    )
    axes.plot(
        xs,
        [float(s * 100) for s in figure.shares],
        marker="s",
        linestyle="none",
        color="#4c72b0",
        markersize=3,
        label="left when the trade ended",
    )
    axes.axhline(float(figure.promise.bound * 100), color="#c44e52", linewidth=2, label="5 %")
    axes.xaxis.get_major_locator().set_params(integer=True)
    axes.set_xlabel("spread trade, in the order they ended")
    axes.set_ylabel("% of the trade's inner lots")
    axes.set_title("unhedged imbalance per trade", fontsize=10)
    axes.legend(fontsize=7)
    fig.tight_layout()
    out = figure_img(fig, "unhedged imbalance per spread trade")
    plt.close(fig)
    return out


def plots(figures: Sequence[Figure]) -> list[tuple[str, str]]:
    """(caption, ``<img>``) for every figure that has something to draw."""
    plt = pyplot()
    out = []
    for f in figures:
        p = f.promise
        if p.kind == "latency" and f.samples:
            out.append((f"{p.title}: {f.summary}", _latency_plot(f, plt)))
        elif p.id == "execution_success" and f.breakdown:
            out.append((f"{p.title}: {f.summary}", _outcome_plot(f, plt)))
        elif p.id == "risk_exposure" and f.shares:
            out.append((f"{p.title}: {f.summary}", _exposure_plot(f, plt)))
    return out


def render(
    figures: Sequence[Figure],
    measurer: Measurer,
    *,
    store: str,
    selection: str,
    generated_ns: int,
    title: str = "cross-market-connect acceptance report",
) -> str:
    e = html.escape
    counts = {v: sum(1 for f in figures if f.verdict == v) for v in _VERDICT_STYLE}
    span = (
        f" from {e(utc_text(measurer.first_ns))} to {e(utc_text(measurer.last_ns))}"
        if measurer.first_ns is not None and measurer.last_ns is not None
        else ""
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title><style>{STYLE}{_EXTRA_STYLE}</style></head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p>Store <code>{e(store)}</code>; selection: {e(selection)}; "
        f"{measurer.receipts:,} receipt(s){span}. Generated {e(utc_text(generated_ns))}.</p>",
        f"<p>{e(measurer.stage_line())}</p>",
        f"<p><b>{counts['met']} met, {counts['not met']} not met, "
        f"{counts['not exercised']} not exercised</b> of {len(figures)} figures. A figure is "
        "<i>not exercised</i> when nothing in the range measures it: it has not been shown "
        "either way.</p>",
        "<h2>Figures</h2><table><tr>"
        + "".join(
            f"<th>{h}</th>"
            for h in (
                "figure",
                "promise",
                "measured",
                "p50",
                "p99",
                "count",
                "verdict",
                "what was measured",
                "also",
            )
        )
        + "</tr>",
    ]
    for f in figures:
        p = f.promise
        parts.append(
            f'<tr id="{e(p.id)}"><td>{e(p.title)}</td><td>{e(p.promise)}</td>'
            f"<td>{e(f.summary)}</td>"
            f'<td class="n">{_fmt_ns(f.p50_ns)}</td><td class="n">{_fmt_ns(f.p99_ns)}</td>'
            f'<td class="n">{f.count:,}</td>'
            f'<td class="v" style="{_VERDICT_STYLE[f.verdict]}">{e(f.verdict)}</td>'
            f'<td class="def">{e(p.definition)}</td><td class="def">{e(f.detail)}</td></tr>'
        )
    parts.append("</table>")
    drawn = plots(figures)
    parts.append("<h2>Plots</h2>")
    if drawn:
        parts.append('<div class="plots">')
        for caption, img in drawn:
            parts.append(f'<div class="plot">{img}<p class="note">{e(caption)}</p></div>')
        parts.append("</div>")
    else:
        parts.append('<p class="note">Nothing in the range to draw.</p>')
    parts.append("<h2>Receipts by kind</h2><table><tr><th>kind</th><th>count</th></tr>")
    parts += [
        f'<tr><td>{e(k)}</td><td class="n">{n:,}</td></tr>' for k, n in measurer.kinds.most_common()
    ]
    parts.append("</table></body></html>\n")
    return "\n".join(parts)
