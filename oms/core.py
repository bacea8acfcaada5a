"""The single writer: one thread that owns every order, pair, position and book.

quickfix calls back on its own threads; those callbacks decode and ``post`` events here.
The OMS thread takes them one at a time, in arrival order, applies them, asks the strategy
what to do, and hands commands to ``send`` (the sessions). Nothing else mutates OMS state,
so nothing needs a lock. Hooks run on this thread after each event and must not block:
receipts, for one, are handed to a writer in another process.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from oms.clock import now_ns
from oms.commands import Command
from oms.enums import OrderType, Side
from oms.events import (
    CancelRejected,
    ExecutionReceived,
    LineStateChanged,
    MarketDataGap,
    MarketDataReceived,
    SessionRejected,
)
from oms.market import MarketView
from oms.orders import Applied, IllegalTransition, Order, Orders
from oms.pair_engine import NewLeg, PairBook, PairEngine
from oms.pairs import PairSpec
from oms.receipts import Receipt

log = logging.getLogger("cmc.oms")

Event = (
    MarketDataReceived
    | ExecutionReceived
    | CancelRejected
    | LineStateChanged
    | SessionRejected
    | MarketDataGap
)
Hook = Callable[[Event, "Oms"], None]

_STOP = object()
T = TypeVar("T")


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
        self.venues_up: dict[str, bool] = {}
        self.engine = PairEngine(self, pairs)
        self.pairs: dict[str, PairBook] = self.engine.pairs
        self._pairs_by_book = self.engine.by_book
        self.hooks: list[Hook] = []
        self.errors = 0
        self._send = send
        self._record = record
        self._clock = clock
        self._clordid_prefix = f"{clordid_prefix}{int(time.time()) % 10**8:08d}-"
        self._next_clordid = 0
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._timers: list[tuple[int, int, Callable[[], None]]] = []  # (due ns, seq, action)
        self._timer_seq = itertools.count()
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

    def call(self, fn: Callable[[Oms], T], timeout: float = 5.0) -> T:
        """Run ``fn(oms)`` on the OMS thread (for reads that must see a consistent state)."""
        done = threading.Event()
        box: list[T] = []

        def run(oms: Oms) -> None:
            box.append(fn(oms))
            done.set()

        self._inbox.put(run)
        if not done.wait(timeout):
            raise TimeoutError("the OMS thread did not answer")
        return box[0]

    # -- the OMS thread -------------------------------------------------------------------

    def _run(self) -> None:
        inbox = self._inbox
        while True:
            if self._timers:
                wait = (self._timers[0][0] - time.monotonic_ns()) / 1e9
                try:
                    item = inbox.get(timeout=wait) if wait > 0 else inbox.get_nowait()
                except queue.Empty:
                    self._run_due_timers()
                    continue
            else:
                item = inbox.get()
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
            if self._timers and self._timers[0][0] <= time.monotonic_ns():
                self._run_due_timers()

    def _run_due_timers(self) -> None:
        now = time.monotonic_ns()
        while self._timers and self._timers[0][0] <= now:
            _, _, action = heapq.heappop(self._timers)
            try:
                action()
            except Exception:
                self.errors += 1
                log.exception("OMS: error in timer %r", action)

    def handle(self, event: Event) -> None:
        if isinstance(event, MarketDataReceived):
            self._on_market_data(event)
        elif isinstance(event, ExecutionReceived):
            self._on_execution(event)
        elif isinstance(event, CancelRejected):
            applied = self.orders.apply_cancel_reject(event)
            if applied.order is not None and applied.order.pair_id is not None:
                self.engine.on_order(applied.order, event.recv_ns)
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
        elif isinstance(event, MarketDataGap):  # books stale until their next snapshot
            stale = self.market.mark_stale(event.venue, event.symbols, event.reason, event.recv_ns)
            self._event_receipt(
                "event.market_data_gap", event, symbol=",".join(stale), reason=event.reason
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
        self.engine.consider(pair, cause_ns)

    # -- the order desk: what the pair engine asks of the OMS ------------------------------

    def now(self) -> int:
        return self._clock()

    def order(self, key: str) -> Order | None:
        return self.orders.by_key(key)

    def record(self, receipt: Receipt) -> None:
        self._record(receipt)

    def after(self, delay_ns: int, action: Callable[[], None]) -> None:
        """Run ``action`` on this thread once ``delay_ns`` has passed (monotonic clock)."""
        due = time.monotonic_ns() + delay_ns
        heapq.heappush(self._timers, (due, next(self._timer_seq), action))

    def place(
        self,
        spec: PairSpec,
        legs: Sequence[NewLeg],
        *,
        trade_id: str,
        cause_ns: int | None,
        preface: Callable[[], Receipt] | None = None,
    ) -> list[Order]:
        """Create the orders, send them back to back, then write the receipts.

        The receipts carry the times taken at each hop, so recording them once every order
        is on the wire loses nothing and keeps their cost off the second leg's latency. An
        order no line could take is Rejected at once, so nothing waits for its answer.
        """
        created_ns = self._clock()
        made: list[tuple[Order, Command, str]] = []
        for leg in legs:
            inst = spec.inner if leg.leg.value == "inner" else spec.outer
            order, command = self.orders.submit(
                inst.venue,
                inst.symbol,
                leg.side,
                leg.qty,
                OrderType.LIMIT,
                leg.limit,
                leg.tif,
                clordid=self._new_clordid(),
                pair_id=trade_id,
                leg=leg.leg.value,
                now_ns=created_ns,
                cause_ns=cause_ns,
            )
            made.append((order, command, leg.purpose))
        sent: list[tuple[bool, int]] = []
        for _, new_order, _ in made:
            ok = self._send(new_order)
            sent.append((ok, self._clock()))
        if preface is not None:
            self._record(preface())
        for (order, _, purpose), (ok, sent_ns) in zip(made, sent, strict=True):
            if not ok:
                self.orders.send_failed(order, reason="no line logged on", now_ns=sent_ns)
            self._record(
                Receipt.of(
                    "command.send_order",
                    ts_ns=sent_ns,
                    cause_ns=cause_ns,
                    venue=order.venue,
                    symbol=order.symbol,
                    clordid=order.clordid,
                    pair_id=trade_id,
                    verdict="sent" if ok else "not sent",
                    reason=None if ok else "no line to the venue is logged on",
                    data={
                        "side": order.side.name,
                        "qty": order.qty,
                        "price": str(order.price),
                        "tif": order.tif.name,
                        "leg": order.leg,
                        "purpose": purpose,
                    },
                )
            )
        return [order for order, _, _ in made]

    def cancel(self, order: Order, *, cause_ns: int | None, why: str) -> None:
        now = self._clock()
        command = self.orders.request_cancel(
            order, clordid=self._new_clordid(), now_ns=now, cause_ns=cause_ns
        )
        ok = self._send(command)
        self._record(
            Receipt.of(
                "command.cancel_order",
                ts_ns=self._clock(),
                cause_ns=cause_ns,
                venue=order.venue,
                symbol=order.symbol,
                clordid=command.clordid,
                pair_id=order.pair_id,
                verdict="sent" if ok else "not sent",
                reason=why,
                data={"orig_clordid": command.orig_clordid},
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
        fill = applied.fill
        if (
            fill is not None
            and not applied.duplicate
            and not fill.busted
            and fill.correction_of is None
        ):
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
        self.engine.on_order(order, event.recv_ns)


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
