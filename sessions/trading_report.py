"""What a running gateway has traded: a live feed of spread trades and a summary table.

Read on the OMS thread (``oms.call``), so the figures are a consistent snapshot.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from decimal import Decimal

from rich.console import Console
from rich.table import Table

from oms.clock import NS_PER_US
from oms.core import Oms
from oms.pairs import SpreadPair
from sessions.gateway import Gateway


@dataclass(frozen=True)
class PairSummary:
    trades: int
    entries: int
    closes: int
    legs: int
    fills: int
    position: int
    imbalance: Decimal
    latencies_us: list[float]  # market data received -> both legs sent, per trade
    top_ups: int = 0  # top-up rounds
    unwinds: int = 0  # unwind rounds


def summarise(oms: Oms) -> dict[str, PairSummary]:
    """Per pair: call on the OMS thread, ``gateway.oms.call(summarise)``."""
    out: dict[str, PairSummary] = {}
    for pair_id, pair in oms.pairs.items():
        trades = pair.done + ([pair.working] if pair.working else [])
        orders = [oms.orders.by_key(k) for t in trades for k in t.orders]
        out[pair_id] = PairSummary(
            trades=len(trades),
            entries=sum(1 for t in trades if not t.intent.closing),
            closes=sum(1 for t in trades if t.intent.closing),
            legs=len(orders),
            fills=sum(len(o.fills) for o in orders if o is not None),
            position=pair.position,
            imbalance=pair.imbalance,
            latencies_us=sorted(
                (t.sent_ns - t.intent.cause_ns) / NS_PER_US for t in trades if t.sent_ns
            ),
            top_ups=sum(t.top_ups for t in trades),
            unwinds=sum(t.unwinds for t in trades),
        )
    return out


def _us(value: float) -> str:
    return f"{value:,.0f} µs"


def summary_table(summaries: dict[str, PairSummary], receipts: int | None) -> Table:
    table = Table(title="the gateway's spread trading")
    table.add_column("")
    for pair_id in summaries:
        table.add_column(pair_id, justify="right")
    rows: list[tuple[str, list[str]]] = [
        (
            "spread trades (entries / closes)",
            [f"{s.trades} ({s.entries} / {s.closes})" for s in summaries.values()],
        ),
        ("orders sent (legs, top-ups, unwinds)", [str(s.legs) for s in summaries.values()]),
        (
            "top-up / unwind rounds",
            [f"{s.top_ups} / {s.unwinds}" for s in summaries.values()],
        ),
        ("fills", [str(s.fills) for s in summaries.values()]),
        ("open position (pair units)", [str(s.position) for s in summaries.values()]),
        ("residual imbalance (inner lots)", [str(s.imbalance) for s in summaries.values()]),
        (
            "market data to both legs sent, p50",
            [
                _us(statistics.median(s.latencies_us)) if s.latencies_us else "-"
                for s in summaries.values()
            ],
        ),
        (
            "market data to both legs sent, max",
            [_us(max(s.latencies_us)) if s.latencies_us else "-" for s in summaries.values()],
        ),
    ]
    if receipts is not None:
        rows.append(("receipts written", [f"{receipts:,}"] + [""] * (len(summaries) - 1)))
    for name, cells in rows:
        table.add_row(name, *cells)
    return table


class TradeFeed:
    """Prints each spread trade once it is done, as the OMS records it."""

    def __init__(self, console: Console, gateway: Gateway) -> None:
        self._console = console
        self._gateway = gateway
        self._seen: dict[str, int] = {}
        self._start = time.monotonic()

    def say(self, text: str) -> None:
        elapsed = time.monotonic() - self._start
        self._console.print(f"[dim]{elapsed:5.1f} s[/dim] {text}", soft_wrap=True)

    def poll(self) -> None:
        done = self._gateway.oms.call(
            lambda oms: {pid: list(p.done) for pid, p in oms.pairs.items()}
        )
        assert isinstance(done, dict)
        for pair_id, trades in done.items():
            for trade in trades[self._seen.get(pair_id, 0) :]:
                self.say(describe(trade))
            self._seen[pair_id] = len(trades)


def describe(trade: SpreadPair) -> str:
    intent = trade.intent
    kind = "close" if intent.closing else "entry"
    return (
        f"spread trade {intent.intent_id}: {kind} {intent.direction.value}, captured "
        f"{intent.spread:.3f}; filled inner {trade.inner_filled}/{intent.inner_qty}, "
        f"outer {trade.outer_filled}/{intent.outer_qty}"
        + (f"; {trade.outcome.value}" if trade.outcome else "")
    )
