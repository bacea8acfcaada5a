"""The operator's live page: both books, the spread, the pairs, the lines, risk and receipts.

The gateway serves it from its admin API (same loopback address, same bearer token). The
HTML, our script and stylesheet and plotly's script carry no data and are served without
the token; every endpoint with data, and the stream, wants it. The page keeps the token in
its tab (it arrives in the URL's fragment, which browsers never send to a server) and reads
the stream with ``fetch`` so that it can send the token as a header.

What it shows comes from one snapshot per tick, taken on the OMS thread by ``capture``:
references to immutable values (the pair's live view, receipts) and copies of the few
mutable ones (orders of the pairs' trades), so that the OMS thread spends microseconds on
it. Turning that into JSON (Decimals as strings, times as integer ns) happens on a worker
thread of the API. ``SnapshotHub`` ticks only while someone watches, and hands every reader
the latest snapshot: a reader that falls behind skips to the newest, it never gets a queue.

Receipts reach the page through ``RecentReceipts``, which stands in the recorder's path:
it hands each receipt on to the writer and keeps the latest few, and counts rejects per
venue as they pass, so that nothing reads the database each tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import importlib.resources
import itertools
import json
import logging
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from oms.enums import Side, TimeInForce
from oms.events import ExecType, LineRole, OrdStatus
from oms.orders import CLOSED
from oms.pair_view import BookState, PairSnapshot, SpreadSample
from oms.pairs import PairSpec, SpreadIntent, SpreadPair, TradeOutcome
from oms.receipts import Receipt
from oms.triggers import TriggerKind

if TYPE_CHECKING:
    from oms.core import Oms
    from oms.instruments import Instrument
    from oms.pair_engine import PairBook
    from sessions.gateway import Gateway
    from sessions.venue_link import LineStatus

log = logging.getLogger("cmc.dashboard")

PAGE = "/dashboard"
STATIC = "/dashboard/static"
SNAPSHOT = "/v1/dashboard/snapshot"
STREAM = "/v1/dashboard/stream"

TICK_S = 0.08
"""Between two snapshots: 12.5 a second, so that the page sees at least 10 a second even
when a snapshot takes a few milliseconds to make."""
DEPTH = 5
SAMPLES = 120
"""Spread samples in each snapshot: the page keeps its own history and merges them by time,
so a snapshot needs only what came since the last one, with room to spare."""
TRADES = 8  # recent trades per pair, besides the one working
RECEIPTS = 40

Handler = Callable[[Request], Awaitable[Response]]
Guard = Callable[[Handler], Handler]

_MARKET_DATA = frozenset({"event.market_data"})
_REJECTED = ExecType.REJECTED.value


# -- receipts on their way to the writer -----------------------------------------------------


class RecentReceipts:
    """The recorder's tee: every receipt goes on to ``forward`` (the writer), and the latest
    few, with counts per venue, stay here for the page.

    Market-data receipts are most of them (one per message); they are counted but not kept,
    so that the few an operator looks for (orders, fills, risk) stay on screen. Call
    ``record`` on the OMS thread, as the OMS records everything; read on it too.
    """

    def __init__(self, forward: Callable[[Receipt], None], keep: int = RECEIPTS) -> None:
        self._forward = forward
        self.latest: deque[Receipt] = deque(maxlen=keep)
        self.total = 0
        self.market_data = 0
        self.rejects: dict[str, dict[str, int]] = {}
        """venue -> {"orders", "cancels", "session", "not_sent"}: counted since start."""
        self.risk_changes: dict[str, Receipt] = {}
        """scope -> the receipt of its last trading-state change (who, why, when)."""

    def record(self, receipt: Receipt) -> None:
        self._forward(receipt)
        self.total += 1
        kind = receipt.kind
        if kind in _MARKET_DATA:
            self.market_data += 1
            return
        self.latest.append(receipt)
        if kind == "event.execution":
            if receipt.data.get("exec_type") == _REJECTED:
                self._count(receipt.venue, "orders")
        elif kind == "event.cancel_reject":
            self._count(receipt.venue, "cancels")
        elif kind == "event.session_reject":
            self._count(receipt.venue, "session")
        elif kind == "command.send_order":
            if receipt.verdict != "sent":
                self._count(receipt.venue, "not_sent")
        elif kind == "risk.state":
            scope = receipt.data.get("scope")
            if isinstance(scope, str):
                self.risk_changes[scope] = receipt

    def _count(self, venue: str | None, what: str) -> None:
        counts = self.rejects.get(venue or "-")
        if counts is None:
            counts = self.rejects[venue or "-"] = {
                "orders": 0,
                "cancels": 0,
                "session": 0,
                "not_sent": 0,
            }
        counts[what] += 1


# -- one snapshot: taken on the OMS thread, rendered off it -----------------------------------


@dataclass(frozen=True, slots=True)
class OrderCopy:
    """An order's fields as they were at the tick (``Order`` itself changes on)."""

    key: str
    leg: str | None
    venue: str
    symbol: str
    side: Side
    qty: int
    price: Decimal | None
    tif: TimeInForce
    status: OrdStatus
    cum_qty: int
    fill_qty: int
    fill_notional: Decimal


@dataclass(frozen=True, slots=True)
class TradeCopy:
    """A spread trade's fields as they were at the tick, with copies of its orders."""

    intent: SpreadIntent
    outcome: TradeOutcome | None
    from_units: int
    to_units: int
    inner_filled: int
    outer_filled: int
    top_ups: int
    unwinds: int
    unwinding: bool
    peak_imbalance: Decimal
    sent_ns: int
    first_fault_ns: int | None
    balanced_ns: int | None
    inner_key: str
    outer_key: str
    quote_key: str | None
    fills: tuple[tuple[str, int, Decimal, int], ...]
    orders: tuple[OrderCopy, ...]


@dataclass(frozen=True, slots=True)
class PairCapture:
    spec: PairSpec
    view: PairSnapshot
    evaluations: int
    fired: int
    position: int
    units: int
    net_inner: int
    net_outer: int
    imbalance: Decimal
    trades: tuple[TradeCopy, ...]  # the working trade first, then the latest done


@dataclass(frozen=True, slots=True)
class VenueCapture:
    venue: str
    up: bool
    active: str | None  # the OMS's view of the line orders go out on
    reconciling: bool
    state: str
    open_orders: int
    last_ack_ns: int | None
    md_delay_ns: int | None
    clock_offset_ns: int | None
    recent_rejects: int | None  # within the risk breaker's window, where there is one
    rejects: dict[str, int]


@dataclass(frozen=True, slots=True)
class Capture:
    """What one tick copied out of the OMS: immutable values, or copies."""

    at_ns: int
    pairs: tuple[PairCapture, ...]
    venues: tuple[VenueCapture, ...]
    states: dict[str, str]
    pnl: Decimal
    currency: str
    risk_changes: tuple[Receipt, ...]
    receipts: tuple[Receipt, ...]
    receipts_total: int
    market_data_receipts: int
    oms_errors: int


def capture(
    oms: Oms,
    recent: RecentReceipts | None,
    *,
    depth: int = DEPTH,
    samples: int = SAMPLES,
    trades: int = TRADES,
) -> Capture:
    """The page's data as of now. Call it on the OMS thread (``oms.call``): it reads state
    only that thread may touch, and copies what could change after it returns, as plain
    values; turning them into text is left to ``render``, off that thread."""
    now = oms.now()
    pairs = tuple(_pair(oms, book, depth, samples, trades) for book in oms.pairs.values())
    risk = oms.risk
    market = oms.market
    venues = []
    for name, vb in sorted(risk.venues.items()):
        calibration = market.clocks.get(name)
        window = vb.rejects
        venues.append(
            VenueCapture(
                venue=name,
                up=oms.venues_up.get(name, False),
                active=_role(oms.lines.active.get(name)),
                reconciling=name in oms.reconciling,
                state=vb.state.label,
                open_orders=vb.open_orders,
                last_ack_ns=vb.last_ack_ns,
                md_delay_ns=calibration.delay_ns if calibration is not None else None,
                clock_offset_ns=calibration.offset_ns if calibration is not None else None,
                recent_rejects=window.within(now) if window is not None else None,
                rejects=dict(recent.rejects.get(name, {})) if recent is not None else {},
            )
        )
    return Capture(
        at_ns=now,
        pairs=pairs,
        venues=tuple(venues),
        states=risk.states(),
        pnl=risk.pnl(),
        currency=risk.config.base_currency,
        risk_changes=tuple(recent.risk_changes.values()) if recent is not None else (),
        receipts=tuple(recent.latest) if recent is not None else (),
        receipts_total=recent.total if recent is not None else 0,
        market_data_receipts=recent.market_data if recent is not None else 0,
        oms_errors=oms.errors,
    )


def _role(role: LineRole | None) -> str | None:
    return None if role is None else role.value


def _pair(oms: Oms, book: PairBook, depth: int, samples: int, trades: int) -> PairCapture:
    view = book.strategy.view
    shown = [] if book.working is None else [book.working]
    shown += reversed(book.done[-trades:])
    return PairCapture(
        spec=book.spec,
        view=view.snapshot(oms.market, depth, samples),
        evaluations=view.evaluations,
        fired=view.fired,
        position=book.position,
        units=book.units,
        net_inner=book.net_inner,
        net_outer=book.net_outer,
        imbalance=book.imbalance,
        trades=tuple(_trade_copy(oms, t) for t in shown),
    )


def _trade_copy(oms: Oms, t: SpreadPair) -> TradeCopy:
    copies = []
    for key in t.orders:
        o = oms.orders.by_key(key)
        if o is not None:
            copies.append(
                OrderCopy(
                    o.key,
                    o.leg,
                    o.venue,
                    o.symbol,
                    o.side,
                    o.qty,
                    o.price,
                    o.tif,
                    o.status,
                    o.cum_qty,
                    o.fill_qty,
                    o.fill_notional,
                )
            )
    return TradeCopy(
        t.intent,
        t.outcome,
        t.from_units,
        t.to_units,
        t.inner_filled,
        t.outer_filled,
        t.top_ups,
        t.unwinds,
        t.unwinding,
        t.peak_imbalance,
        t.sent_ns,
        t.first_fault_ns,
        t.balanced_ns,
        t.inner_key,
        t.outer_key,
        t.quote_key,
        tuple(t.fills),
        tuple(copies),
    )


def _trade(trade: TradeCopy, spec: PairSpec) -> dict[str, Any]:
    """One spread trade as the page shows it: each leg's target and fills, and every order
    it sent with what it was for (read from the order: a leg's first order, a quote, more
    of the trade's own direction (a top-up or a hedge), or the other way (an unwind))."""
    intent = trade.intent
    quoting = trade.quote_key is not None
    orders = [_order(o, _purpose(trade, o, quoting)) for o in trade.orders]
    legs = {}
    for leg, inst, target, filled, lots in (
        ("inner", spec.inner, intent.inner_qty, trade.inner_filled, spec.inner_lots),
        ("outer", spec.outer, intent.outer_qty, trade.outer_filled, spec.outer_lots),
    ):
        side = intent.direction.inner_side if leg == "inner" else intent.direction.outer_side
        mine = [o for o in orders if o["leg"] == leg]
        legs[leg] = {
            "venue": inst.venue,
            "symbol": inst.symbol,
            "side": side.name,
            "target": target,
            "filled": filled,
            "lots_per_unit": lots,
            "working": any(o["working"] for o in mine),
            "state": _leg_state(target, filled, mine),
        }
    fills = [
        {"leg": leg, "qty": qty, "price": str(px), "ns": ns} for leg, qty, px, ns in trade.fills
    ]
    return {
        "id": intent.intent_id,
        "pair": spec.id,
        "direction": intent.direction.value,
        "closing": intent.closing,
        "status": "working" if trade.outcome is None else "done",
        "outcome": None if trade.outcome is None else trade.outcome.value,
        "spread": str(intent.spread),
        "threshold": str(intent.threshold),
        "from_units": trade.from_units,
        "to_units": trade.to_units,
        "top_ups": trade.top_ups,
        "unwinds": trade.unwinds,
        "unwinding": trade.unwinding,
        "peak_imbalance": str(trade.peak_imbalance),
        "cause_ns": intent.cause_ns,
        "sent_ns": trade.sent_ns,
        "first_fault_ns": trade.first_fault_ns,
        "balanced_ns": trade.balanced_ns,
        "legs": legs,
        "orders": orders,
        "fills": fills,
    }


def _purpose(trade: TradeCopy, order: OrderCopy, quoting: bool) -> str:
    if order.key == trade.quote_key:
        return "quote"
    if order.key in (trade.inner_key, trade.outer_key):
        return "leg"
    direction = trade.intent.direction
    forward = direction.inner_side if order.leg == "inner" else direction.outer_side
    if order.side is not forward:
        return "unwind"
    return "hedge" if quoting else "top-up"


def _leg_state(target: int, filled: int, orders: list[dict[str, Any]]) -> str:
    if any(o["working"] for o in orders):
        return "working"
    if filled == target:
        return "filled"
    if filled == 0:
        return "unfilled"
    return "partial"


def _order(order: OrderCopy, purpose: str) -> dict[str, Any]:
    vwap = order.fill_notional / order.fill_qty if order.fill_qty else None
    return {
        "clordid": order.key,
        "leg": order.leg,
        "purpose": purpose,
        "venue": order.venue,
        "symbol": order.symbol,
        "side": order.side.name,
        "qty": order.qty,
        "price": None if order.price is None else str(order.price),
        "tif": order.tif.name,
        "status": order.status.name,
        "filled": order.cum_qty,
        "avg_px": None if vwap is None else str(vwap),
        "working": order.status not in CLOSED,
    }


def render(
    cap: Capture, lines: list[LineStatus], specs: dict[str, dict[str, Any]], seq: int
) -> dict[str, Any]:
    """The snapshot as JSON-ready data: Decimals as their exact strings, times as ns.

    ``specs`` is each pair's static side (instruments, ratio, thresholds: ``pair_specs``).
    Runs off the OMS thread: everything in ``cap`` is immutable or a copy.
    """
    by_venue: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_venue.setdefault(line.venue, []).append(line.as_json())
    venues = []
    for v in cap.venues:
        mine = by_venue.get(v.venue, [])
        active = next((x["role"] for x in mine if x["active"]), None) if mine else v.active
        venues.append(
            {
                "venue": v.venue,
                "up": v.up,
                "active": active,
                "reconciling": v.reconciling,
                "state": v.state,
                "open_orders": v.open_orders,
                "ack_latency_ns": v.last_ack_ns,
                "md_delay_ns": v.md_delay_ns,
                "clock_offset_ns": v.clock_offset_ns,
                "recent_rejects": v.recent_rejects,
                "rejects": {
                    "orders": v.rejects.get("orders", 0),
                    "cancels": v.rejects.get("cancels", 0),
                    "session": v.rejects.get("session", 0),
                    "not_sent": v.rejects.get("not_sent", 0),
                },
                "lines": mine,
            }
        )
    return {
        "seq": seq,
        "at_ns": cap.at_ns,
        "pairs": [_pair_json(p, specs.get(p.spec.id, {})) for p in cap.pairs],
        "venues": venues,
        "risk": {
            "states": cap.states,
            "halted": any(s == "halted" for s in cap.states.values()),
            "pnl": str(cap.pnl),
            "currency": cap.currency,
            "changes": [
                {
                    "scope": r.data.get("scope"),
                    "state": r.verdict,
                    "who": r.data.get("who"),
                    "why": r.reason,
                    "rule": r.data.get("rule"),
                    "at_ns": r.ts_ns,
                }
                for r in sorted(cap.risk_changes, key=lambda r: r.ts_ns, reverse=True)
            ],
        },
        "receipts": {
            "total": cap.receipts_total,
            "market_data": cap.market_data_receipts,
            "latest": [_receipt_json(r) for r in reversed(cap.receipts)],
        },
        "oms_errors": cap.oms_errors,
    }


def _pair_json(p: PairCapture, spec: dict[str, Any]) -> dict[str, Any]:
    view = p.view
    lots = spec.get("lots", {})
    samples = view.samples
    last = samples[-1] if samples else None
    return {
        **spec,
        "pair": p.spec.id,
        "position": p.position,
        "units": p.units,
        "net_inner": p.net_inner,
        "net_outer": p.net_outer,
        "imbalance": str(p.imbalance),
        "evaluations": p.evaluations,
        "fired": p.fired,
        "books": {
            "inner": _book_json(view.inner, lots.get("inner", 1)),
            "outer": _book_json(view.outer, lots.get("outer", 1)),
        },
        "last": None if last is None else _sample_json(last),
        "series": {
            "ts_ns": [s.ts_ns for s in samples],
            "buy_inner": [_dec(s.buy_inner) for s in samples],
            "sell_inner": [_dec(s.sell_inner) for s in samples],
            "fired": [s.fired for s in samples],
        },
        "trades": [_trade(t, p.spec) for t in p.trades],
    }


def _book_json(book: BookState | None, lots_per_unit: int) -> dict[str, Any] | None:
    """A book's top levels, each with the lots from the touch down to it, and how many pair
    units each side could fill (what a trade of that size can really take)."""
    if book is None:
        return None
    sides: dict[str, Any] = {}
    for name, levels in (("bids", book.bids), ("asks", book.asks)):
        total = 0
        rows = []
        for level in levels:
            total += level.qty
            rows.append({"price": str(level.price), "qty": level.qty, "cum": total})
        sides[name] = rows
        sides[f"{name}_units"] = total // lots_per_unit if lots_per_unit > 0 else 0
    return {
        "venue": book.venue,
        "symbol": book.symbol,
        **sides,
        "stale": book.stale,
        "crossed": book.crossed,
        "age_ns": book.age_ns,
        "clock_offset_ns": book.clock_offset_ns,
        "updated_ns": book.updated_ns,
    }


def _sample_json(s: SpreadSample) -> dict[str, Any]:
    return {
        "ts_ns": s.ts_ns,
        "cause_ns": s.cause_ns,
        "buy_inner": _dec(s.buy_inner),
        "sell_inner": _dec(s.sell_inner),
        "inner_bid": _dec(s.inner_bid),
        "inner_ask": _dec(s.inner_ask),
        "outer_bid": _dec(s.outer_bid),
        "outer_ask": _dec(s.outer_ask),
        "fx_buy_inner": _dec(s.fx_buy_inner),
        "fx_sell_inner": _dec(s.fx_sell_inner),
        "inner_age_ns": s.inner_age_ns,
        "outer_age_ns": s.outer_age_ns,
        "blocked": s.blocked,
        "fired": s.fired,
    }


def _receipt_json(r: Receipt) -> dict[str, Any]:
    return {
        "kind": r.kind,
        "ts_ns": r.ts_ns,
        "latency_ns": r.latency_ns,
        "venue": r.venue,
        "line": r.line,
        "symbol": r.symbol,
        "clordid": r.clordid,
        "pair_id": r.pair_id,
        "verdict": r.verdict,
        "reason": r.reason,
    }


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def pair_specs(oms: Oms) -> dict[str, dict[str, Any]]:
    """What does not change while the gateway runs: each pair's legs, ratio, thresholds."""
    out = {}
    for pair_id, book in oms.pairs.items():
        spec = book.spec
        strategy = book.strategy
        ratio = strategy.trigger.kind is TriggerKind.RATIO
        out[pair_id] = {
            "inner": _instrument(spec.inner),
            "outer": _instrument(spec.outer),
            "lots": {"inner": spec.inner_lots, "outer": spec.outer_lots},
            "units_per_trade": spec.config.units_per_trade,
            "max_position": spec.config.max_position,
            "fx_rate": str(spec.config.fx_rate),
            "trigger": strategy.trigger.kind.value,
            "entry": str(strategy.entry),
            "exit": str(strategy.exit),
            "edge_unit": (
                "fraction" if ratio else f"{spec.outer.currency}/{spec.outer.contract_unit}"
            ),
        }
    return out


def _instrument(inst: Instrument) -> dict[str, Any]:
    return {
        "venue": inst.venue,
        "symbol": inst.symbol,
        "currency": inst.currency,
        "tick": str(inst.tick),
        "contract_size": str(inst.contract_size),
        "contract_unit": inst.contract_unit,
    }


# -- the stream: one producer, readers that always get the latest -----------------------------


class SnapshotHub:
    """Makes a snapshot every ``period_s`` while anyone reads, and gives each reader the
    newest one each time it is ready for more.

    A reader that is slower than the ticks (a busy browser, a slow link) skips the snapshots
    it missed: the hub holds one snapshot, never a queue per reader. With no reader, nothing
    ticks, so an unwatched gateway spends nothing on the page. Runs on the API's event loop;
    ``take`` runs on a worker thread.
    """

    def __init__(self, take: Callable[[int], bytes], period_s: float = TICK_S) -> None:
        self._take = take
        self.period_s = period_s
        self.version = 0
        self.latest: bytes | None = None
        self.readers = 0
        self.closed = False
        self._changed: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def publish(self, data: bytes) -> None:
        """A new snapshot for every reader (on the event loop's thread)."""
        self.version += 1
        self.latest = data
        changed = self._changed
        self._changed = asyncio.Event()
        if changed is not None:
            changed.set()

    def close(self) -> None:
        """End every stream at its next wake-up (any thread: one attribute set)."""
        self.closed = True

    @property
    def ticking(self) -> bool:
        """Whether snapshots are being made (only while someone reads)."""
        return self._task is not None and not self._task.done()

    async def updates(self) -> AsyncGenerator[bytes, None]:
        """One reader's snapshots: the newest each time round, starting with a fresh one."""
        self.readers += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        seen = self.version
        try:
            while not self.closed:
                if self.version == seen:
                    if self._changed is None:
                        self._changed = asyncio.Event()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), 0.5)
                    continue
                seen = self.version
                assert self.latest is not None
                yield self.latest
        finally:
            self.readers -= 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while self.readers > 0 and not self.closed:
            version = self.version + 1
            try:
                data = await run_in_threadpool(self._take, version)
            except Exception as exc:  # say so on the page; try again next tick
                log.exception("dashboard: the snapshot failed")
                data = json.dumps({"seq": version, "error": str(exc)}).encode()
            self.publish(data)
            due += self.period_s
            wait = due - loop.time()
            if wait < 0:  # fell behind (a slow snapshot): start counting from now
                due, wait = loop.time(), 0.0
            await asyncio.sleep(wait)


# -- the routes -----------------------------------------------------------------------------


_STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
"""The page runs our script and plotly's, from this server only; plotly sets inline styles
on the elements it draws, hence 'unsafe-inline' for styles (and only for them)."""
_PAGE_HEADERS = {
    "Content-Security-Policy": _CSP,
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def static_file(name: str) -> bytes:
    """One of the page's own files, from the package (``sessions/dashboard_static``)."""
    return importlib.resources.files("sessions").joinpath("dashboard_static", name).read_bytes()


def plotly_js() -> tuple[bytes, str]:
    """plotly's script as the ``plotly`` package ships it (never fetched), and its version."""
    version = importlib.metadata.version("plotly")
    try:
        shipped = importlib.resources.files("plotly").joinpath("package_data", "plotly.min.js")
        return shipped.read_bytes(), version
    except OSError:  # laid out otherwise: ask plotly itself
        from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

        return str(get_plotlyjs()).encode(), version


class Dashboard:
    """The page's routes for one gateway. ``guard`` is the admin API's bearer-token check."""

    def __init__(self, gateway: Gateway, guard: Guard) -> None:
        self.gateway = gateway
        self._guard = guard
        self._specs: dict[str, dict[str, Any]] | None = None
        self._plotly: tuple[bytes, str] | None = None
        self._seq = itertools.count(1)
        self.hub = SnapshotHub(self._take)

    def routes(self) -> list[Route]:
        guard = self._guard
        return [
            Route(PAGE, self.page, methods=["GET"]),
            Route(f"{STATIC}/{{name}}", self.static, methods=["GET"]),
            Route(SNAPSHOT, guard(self.snapshot), methods=["GET"]),
            Route(STREAM, guard(self.stream), methods=["GET"]),
        ]

    def close(self) -> None:
        self.hub.close()

    # -- data --------------------------------------------------------------------------------

    def take(self, seq: int) -> dict[str, Any]:
        """One snapshot: the lines' state (quickfix's, read here), then the OMS's (on its
        thread), rendered here. Call it on a worker thread, never on the event loop."""
        gateway = self.gateway
        if self._specs is None:
            self._specs = gateway.oms.call(pair_specs)
        lines = gateway.sessions.status()
        recent = gateway.recent_receipts
        cap = gateway.oms.call(lambda oms: capture(oms, recent))
        snapshot = render(cap, lines, self._specs, seq)
        snapshot["stage"] = gateway.stage.current.value  # the header's badge: paper or real
        return snapshot

    def _take(self, seq: int) -> bytes:
        return json.dumps(self.take(seq), separators=(",", ":")).encode()

    async def snapshot(self, request: Request) -> Response:
        data = await run_in_threadpool(self.take, next(self._seq))
        return JSONResponse(data, headers={"Cache-Control": "no-store"})

    async def stream(self, request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            async for data in self.hub.updates():
                yield b"event: snapshot\ndata: " + data + b"\n\n"

        return StreamingResponse(
            events(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # -- the page's files (no data in them: no token needed) -----------------------------------

    async def page(self, request: Request) -> Response:
        body = static_file("index.html")
        return Response(body, media_type=_STATIC_TYPES[".html"], headers=_PAGE_HEADERS)

    async def static(self, request: Request) -> Response:
        name: str = request.path_params["name"]
        if name == "plotly.min.js":
            if self._plotly is None:
                self._plotly = await run_in_threadpool(plotly_js)
            body, version = self._plotly
            return Response(
                body,
                media_type=_STATIC_TYPES[".js"],
                headers={
                    "Cache-Control": "public, max-age=86400",
                    "ETag": f'"plotly-{version}"',
                    "X-Content-Type-Options": "nosniff",
                },
            )
        suffix = name[name.rfind(".") :] if "." in name else ""
        if name not in ("dashboard.js", "dashboard.css") or suffix not in _STATIC_TYPES:
            return JSONResponse({"error": f"no such file: {name}"}, status_code=404)
        return Response(
            static_file(name),
            media_type=_STATIC_TYPES[suffix],
            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
        )


def page_url(api_url: str) -> str:
    """The page's address on a gateway whose admin API is at ``api_url``."""
    return api_url.rstrip("/") + PAGE
