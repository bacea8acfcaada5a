"""The single writer: one thread that owns every order, pair, position and book.

quickfix calls back on its own threads; those callbacks decode and ``post`` events here.
The OMS thread takes them one at a time, in arrival order, applies them, asks the strategy
what to do, and hands commands to ``send`` (the sessions). Nothing else mutates OMS state,
so nothing needs a lock. Hooks run on this thread after each event and must not block:
receipts, for one, are handed to a writer in another process.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from oms.clock import now_ns
from oms.commands import Command, SendOrder
from oms.enums import OrderType, Side, TimeInForce
from oms.events import (
    CancelRejected,
    ExecutionReceived,
    LineStateChanged,
    MarketDataReceived,
    SessionRejected,
)
from oms.market import MarketView
from oms.orders import Applied, IllegalTransition, Order, Orders
from oms.pairs import PairSpec, SpreadIntent, SpreadPair
from oms.receipts import Receipt
from oms.strategy import SpreadStrategy

log = logging.getLogger("cmc.oms")

Event = MarketDataReceived | ExecutionReceived | CancelRejected | LineStateChanged | SessionRejected
Hook = Callable[[Event, "Oms"], None]

_STOP = object()


@dataclass
class PairBook:
    """What the OMS knows of one pair: its net legs, the trade in flight, the ones done."""

    spec: PairSpec
    strategy: SpreadStrategy
    net_inner: int = 0  # signed lots filled on the inner leg, + bought
    net_outer: int = 0
    working: SpreadPair | None = None
    done: list[SpreadPair] = field(default_factory=list)

    @property
    def position(self) -> int:
        """Open pair units, + long inner, by the inner leg's fills."""
        return round(Decimal(self.net_inner) / self.spec.inner_lots)

    @property
    def imbalance(self) -> Decimal:
        """Inner lots not matched by outer fills in ratio (signed); 0 when aligned."""
        return (
            Decimal(self.net_inner)
            + Decimal(self.net_outer * self.spec.inner_lots) / self.spec.outer_lots
        )


class Oms:
    def __init__(
        self,
        *,
        pairs: list[PairSpec],
        send: Callable[[Command], bool],
        record: Callable[[Receipt], None],
        clock: Callable[[], int] = now_ns,
        clordid_prefix: str = "CMC",
    ) -> None:
        self.market = MarketView()
        self.orders = Orders()
        self.pairs = {p.id: PairBook(p, SpreadStrategy(p)) for p in pairs}
        self._pairs_by_book: dict[tuple[str, str], list[PairBook]] = {}
        for book in self.pairs.values():
            cfg = book.spec.config
            for leg in (cfg.inner, cfg.outer):
                self._pairs_by_book.setdefault((leg.venue, leg.symbol), []).append(book)
        self._pair_of_trade: dict[str, PairBook] = {}  # intent id of a working trade -> pair
        self.venues_up: dict[str, bool] = {}
        self.hooks: list[Hook] = []
        self.errors = 0
        self._send = send
        self._record = record
        self._clock = clock
        self._clordid_prefix = f"{clordid_prefix}{int(time.time()) % 10**8:08d}-"
        self._next_clordid = 0
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="oms", daemon=True)
        self._idle = threading.Event()

    # -- any thread -----------------------------------------------------------------------

    def post(self, event: Event) -> None:
        self._inbox.put(event)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread.is_alive():
            self._inbox.put(_STOP)
            self._thread.join(timeout)

    def call(self, fn: Callable[[Oms], object], timeout: float = 5.0) -> object:
        """Run ``fn(oms)`` on the OMS thread (for reads that must see a consistent state)."""
        done = threading.Event()
        box: list[object] = []

        def run(oms: Oms) -> None:
            box.append(fn(oms))
            done.set()

        self._inbox.put(run)
        if not done.wait(timeout):
            raise TimeoutError("the OMS thread did not answer")
        return box[0]

    # -- the OMS thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            item = self._inbox.get()
            if item is _STOP:
                return
            try:
                if callable(item):
                    item(self)
                else:
                    self.handle(item)  # type: ignore[arg-type]
            except Exception:  # one bad event must not end the OMS
                self.errors += 1
                log.exception("OMS: error handling %r", item)

    def handle(self, event: Event) -> None:
        if isinstance(event, MarketDataReceived):
            self._on_market_data(event)
        elif isinstance(event, ExecutionReceived):
            self._on_execution(event)
        elif isinstance(event, CancelRejected):
            applied = self.orders.apply_cancel_reject(event)
            self._event_receipt(
                "event.cancel_reject",
                event,
                clordid=event.clordid,
                venue_order_id=event.venue_order_id,
                reason=event.text,
                verdict=applied.note,
            )
        elif isinstance(event, LineStateChanged):
            self.venues_up[event.venue] = event.active is not None
            self._event_receipt(
                "event.line_state",
                event,
                verdict=event.state.value,
                reason=event.text,
                data={"active": event.active.value if event.active else None},
            )
        elif isinstance(event, SessionRejected):
            self._event_receipt(
                "event.session_reject",
                event,
                reason=event.text,
                data={"msg_type": event.msg_type, "ref_seq_num": event.ref_seq_num},
            )
        for hook in self.hooks:
            hook(event, self)

    def _event_receipt(self, kind: str, event: Event, **fields: Any) -> None:
        """Record what an event was and did: the fields every event receipt shares are
        taken from the event (venue, line, raw message, and its receive time as the cause)."""
        raw = getattr(event, "raw", None)
        self._record(
            Receipt.of(
                kind,
                ts_ns=self._clock(),
                cause_ns=event.recv_ns,
                venue=event.venue,
                line=event.line.value,
                raw=raw,
                **fields,
            )
        )

    def _on_market_data(self, event: MarketDataReceived) -> None:
        touched = self.market.apply(event)
        self._event_receipt(
            "event.market_data",
            event,
            symbol=",".join(sorted(touched)),
            data={
                "entries": len(event.entries),
                "snapshot": int(event.snapshot),
                "sending_ns": event.sending_ns,
            },
        )
        considered: set[str] = set()
        for symbol in touched:
            for pair in self._pairs_by_book.get((event.venue, symbol), ()):
                if pair.spec.id not in considered:
                    considered.add(pair.spec.id)
                    self._consider(pair, event.recv_ns)

    def _consider(self, pair: PairBook, cause_ns: int) -> None:
        if pair.working is not None:
            return  # one spread trade at a time per pair: no new entry while legs work
        if pair.imbalance != 0:
            return  # legs out of ratio: nothing new until they are realigned
        cfg = pair.spec.config
        if not (self.venues_up.get(cfg.inner.venue) and self.venues_up.get(cfg.outer.venue)):
            return
        intent = pair.strategy.evaluate(self.market, pair.position, cause_ns)
        if intent is not None:
            self._execute(pair, intent)

    def _execute(self, pair: PairBook, intent: SpreadIntent) -> None:
        """Create both leg orders and send them back to back; write the receipts after.

        The receipts carry the times taken at each hop, so recording them once both legs
        are on the wire loses nothing and keeps their cost off the second leg's latency.
        """
        decided_ns = self._clock()
        cfg = pair.spec.config
        legs: list[tuple[Order, SendOrder]] = [
            self.orders.submit(
                ref.venue,
                ref.symbol,
                side,
                qty,
                OrderType.LIMIT,
                limit,
                TimeInForce.IOC,
                clordid=self._new_clordid(),
                pair_id=intent.intent_id,
                leg=leg,
                now_ns=decided_ns,
            )
            for leg, ref, side, qty, limit in (
                (
                    "inner",
                    cfg.inner,
                    intent.direction.inner_side,
                    intent.inner_qty,
                    intent.inner_limit,
                ),
                (
                    "outer",
                    cfg.outer,
                    intent.direction.outer_side,
                    intent.outer_qty,
                    intent.outer_limit,
                ),
            )
        ]
        sent: list[tuple[bool, int]] = []
        for _, command in legs:
            ok = self._send(command)
            sent.append((ok, self._clock()))
        trade = SpreadPair(intent, legs[0][0].key, legs[1][0].key, sent_ns=sent[-1][1])
        pair.working = trade
        self._pair_of_trade[intent.intent_id] = pair

        self._record(
            Receipt.of(
                "decision.spread_intent",
                ts_ns=decided_ns,
                cause_ns=intent.cause_ns,
                pair_id=intent.intent_id,
                verdict="closing" if intent.closing else "entry",
                reason=f"{intent.direction.value}: spread {intent.spread:.4f} "
                f"vs threshold {intent.threshold}",
                data={
                    "pair": cfg.id,
                    "inner_qty": intent.inner_qty,
                    "inner_limit": str(intent.inner_limit),
                    "outer_qty": intent.outer_qty,
                    "outer_limit": str(intent.outer_limit),
                    "spread": str(intent.spread),
                },
            )
        )
        for (order, command), (ok, sent_ns) in zip(legs, sent, strict=True):
            self._record(
                Receipt.of(
                    "command.send_order",
                    ts_ns=sent_ns,
                    cause_ns=intent.cause_ns,
                    venue=command.venue,
                    symbol=command.symbol,
                    clordid=command.clordid,
                    pair_id=intent.intent_id,
                    verdict="sent" if ok else "not sent",
                    reason=None if ok else "no line to the venue is logged on",
                    data={
                        "side": command.side.name,
                        "qty": command.qty,
                        "price": str(command.price),
                        "tif": command.tif.name,
                        "leg": order.leg,
                    },
                )
            )

    def _new_clordid(self) -> str:
        self._next_clordid += 1
        return f"{self._clordid_prefix}{self._next_clordid}"

    def _on_execution(self, event: ExecutionReceived) -> None:
        ids = {
            "clordid": event.clordid,
            "venue_order_id": event.venue_order_id,
            "exec_id": event.exec_id,
            "symbol": event.symbol,
        }
        try:
            applied = self.orders.apply(event)
        except IllegalTransition as exc:
            self._event_receipt(
                "event.execution", event, verdict="illegal_transition", reason=str(exc), **ids
            )
            raise
        order = applied.order
        if applied.fill is not None and not applied.duplicate:
            fill = applied.fill
            self.market.consume(
                fill.venue, fill.symbol, fill.side is Side.BUY, fill.price, fill.qty
            )
        self._event_receipt(
            "event.execution",
            event,
            pair_id=order.pair_id if order else None,
            verdict=_verdict(applied),
            reason=applied.note or event.text,
            **ids,
            data={
                "exec_type": event.exec_type.value,
                "ord_status": event.ord_status.value,
                "last_qty": event.last_qty,
                "last_px": str(event.last_px) if event.last_px else None,
                "cum_qty": event.cum_qty,
                "leaves_qty": event.leaves_qty,
            },
        )
        if order is None or order.pair_id is None or applied.duplicate:
            return
        self._update_pair(order, applied)

    def _update_pair(self, order: Order, applied: Applied) -> None:
        pair = self._pair_of_trade.get(order.pair_id or "")
        if pair is None or pair.working is None:
            return
        trade = pair.working
        fill = applied.fill
        if fill is not None:
            signed = fill.qty if fill.side.value == "1" else -fill.qty
            if order.leg == "inner":
                trade.inner_filled += fill.qty
                pair.net_inner += signed
            else:
                trade.outer_filled += fill.qty
                pair.net_outer += signed
            trade.fills.append((order.leg or "", fill.qty, fill.price, fill.recv_ns))
        if not order.working:
            if order.leg == "inner":
                trade.inner_done = True
            else:
                trade.outer_done = True
        if trade.inner_done and trade.outer_done:
            pair.done.append(trade)
            pair.working = None
            del self._pair_of_trade[trade.intent.intent_id]
            self._record(
                Receipt.of(
                    "decision.pair_done",
                    ts_ns=self._clock(),
                    cause_ns=applied_cause(applied),
                    pair_id=trade.intent.intent_id,
                    verdict="aligned" if pair.imbalance == 0 else "unbalanced",
                    reason=f"inner {trade.inner_filled}/{trade.intent.inner_qty}, "
                    f"outer {trade.outer_filled}/{trade.intent.outer_qty}",
                    data={
                        "pair": pair.spec.id,
                        "position": pair.position,
                        "imbalance_inner_lots": str(pair.imbalance),
                    },
                )
            )


def applied_cause(applied: Applied) -> int | None:
    return applied.fill.recv_ns if applied.fill is not None else None


def _verdict(applied: Applied) -> str:
    if applied.unknown:
        return "unknown_order"
    if applied.duplicate:
        return "duplicate"
    if applied.overfill:
        return "overfill"
    before = applied.previous.value if applied.previous else "-"
    after = applied.status.value if applied.status else "-"
    return f"{before}->{after}"
