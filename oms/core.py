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
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from oms.client_desk import ClientDesk
from oms.client_messages import (
    ClientCancel,
    ClientMessage,
    ClientNewOrder,
    ClientReplace,
    ClientRequest,
    ClientSpread,
    ClientStatus,
)
from oms.clock import now_ns
from oms.commands import Command, SendOrder
from oms.enums import OrderType, Side, TimeInForce
from oms.events import (
    CancelRejected,
    ExecutionReceived,
    LineRole,
    LineStateChanged,
    MarketDataGap,
    MarketDataIgnored,
    MarketDataReceived,
    OrdStatus,
    SessionRejected,
)
from oms.line_health import LinePolicy, LineWatch
from oms.market import MarketView
from oms.orders import Applied, IllegalTransition, Order, Orders, RequestKind
from oms.pair_engine import NewLeg, PairBook, PairEngine
from oms.pairs import PairSpec, SpreadIntent
from oms.receipts import Receipt
from oms.recovery import Resumption, Snapshot
from oms.risk import GLOBAL, RiskEngine, Scope, TradingState, Verdict
from oms.risk import verdicts as risk_checks
from oms.risk_gate import KillReport, RiskGate

log = logging.getLogger("cmc.oms")

VenueEvent = (
    MarketDataReceived
    | ExecutionReceived
    | CancelRejected
    | LineStateChanged
    | SessionRejected
    | MarketDataGap
    | MarketDataIgnored
)
Event = VenueEvent | ClientRequest | LinePolicy
_CLIENT_REQUESTS = (ClientNewOrder, ClientCancel, ClientReplace, ClientStatus, ClientSpread)
Hook = Callable[[Event, "Oms"], None]

_STOP = object()
T = TypeVar("T")


class Oms:
    def __init__(
        self,
        *,
        pairs: list[PairSpec],
        send: Callable[[Command], LineRole | None],
        record: Callable[[Receipt], None],
        risk: RiskEngine,
        clock: Callable[[], int] = now_ns,
        clordid_prefix: str = "CMC",
        why_unsent: Callable[[str], str] | None = None,
        emit: Callable[[ClientMessage], None] | None = None,
    ) -> None:
        self.market = MarketView()
        self.risk = risk
        self.gate = RiskGate(risk, record)
        self.orders = Orders()
        self.venues_up: dict[str, bool] = {}
        self.reconciling: set[str] = set()  # venues whose orders are checked after a switch
        self.engine = PairEngine(self, pairs)
        self.pairs: dict[str, PairBook] = self.engine.pairs
        self._pairs_by_book = self.engine.by_book
        self.clients = ClientDesk(self, emit or _nobody)
        self.lines = LineWatch(self)  # line health and reconciliation after a switch
        self.hooks: list[Hook] = []
        self.errors = 0
        self._send_on = send  # the line that took a command, or None
        self._why_unsent = why_unsent
        self._cleared: tuple[Verdict, str, int | None, int] | None = None  # an intent's verdict
        self._record = record
        self._clock = clock
        self._clordid_prefix = f"{clordid_prefix}{int(time.time()) % 10**8:08d}-"
        self._next_clordid = 0
        self.recovery: Resumption | None = None  # a restarted gateway's way back to trading
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
        elif isinstance(event, _CLIENT_REQUESTS):
            self.clients.handle(event)
        elif isinstance(event, CancelRejected):
            applied = self.orders.apply_cancel_reject(event)
            if applied.order is not None and applied.order.pair_id is not None:
                self.engine.on_order(applied.order, event.recv_ns)
            if self.recovery is not None and applied.order is not None:
                self.recovery.on_order(applied.order, event.recv_ns)
            self.clients.on_cancel_reject(applied, event)
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
            self.risk.on_session(event.venue, event.active is not None)
            self._event_receipt(
                "event.line_state",
                event,
                verdict=event.state.value,
                reason=event.text,
                data={"active": event.active.value if event.active else None},
            )
            self.lines.on_line_state(event)
            if self.recovery is not None:
                self.recovery.on_line_state(event)
        elif isinstance(event, MarketDataGap):  # books stale until their next snapshot
            stale = self.market.mark_stale(event.venue, event.symbols, event.reason, event.recv_ns)
            self._event_receipt(
                "event.market_data_gap", event, symbol=",".join(stale), reason=event.reason
            )
        elif isinstance(event, MarketDataIgnored):  # a trace only: the books never see it
            self._event_receipt(
                "event.market_data_ignored",
                event,
                symbol=event.symbols,
                reason=event.reason,
                data={
                    "entries": event.entries,
                    "snapshot": int(event.snapshot),
                    "sending_ns": event.sending_ns,
                },
            )
        elif isinstance(event, LinePolicy):
            self.lines.configure(event)
        elif isinstance(event, SessionRejected):
            self._event_receipt(
                "event.session_reject",
                event,
                reason=event.text,
                data={"msg_type": event.msg_type, "ref_seq_num": event.ref_seq_num},
            )
        for hook in self.hooks:
            hook(event, self)

    def _event_receipt(self, kind: str, event: VenueEvent, **fields: Any) -> None:
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
        self.gate.on_market(self.market, event.venue, touched, event.recv_ns)
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
        """Create the orders, pass each through risk, send them back to back, then write
        the receipts.

        The receipts carry the times taken at each hop, so recording them once every order
        is on the wire loses nothing and keeps their cost off the second leg's latency. An
        order risk refused, or no line could take, is Rejected at once, so nothing waits for
        its answer.
        """
        created_ns = self._clock()
        made: list[tuple[Order, SendOrder, str, Verdict]] = []
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
            verdict = self.gate.check_order(
                command, self.gate.context(spec.id, leg.purpose), created_ns
            )
            made.append((order, command, leg.purpose, verdict))
        sent: list[tuple[bool, int]] = []
        for order, new_order, _, verdict in made:
            ok = verdict.passed and self._send_new(order, new_order)
            sent.append((ok, self._clock()))
        if preface is not None:
            self._record(preface())
        if self._cleared is not None:
            intent_verdict, intent_id, intent_cause, checked_ns = self._cleared
            self._cleared = None
            self.gate.record_verdict(
                intent_verdict, ts_ns=checked_ns, cause_ns=intent_cause, pair_id=intent_id
            )
        for order, _, _, verdict in made:  # checked at created_ns, before any send
            self.gate.record_order_verdict(verdict, order, ts_ns=created_ns, cause_ns=cause_ns)
        for (order, _, purpose, verdict), (ok, sent_ns) in zip(made, sent, strict=True):
            self._sent(order, verdict, ok, sent_ns, purpose, cause_ns)
        return [order for order, _, _, _ in made]

    def send_single(
        self,
        venue: str,
        symbol: str,
        side: Side,
        qty: int,
        ord_type: OrderType,
        price: Decimal | None,
        tif: TimeInForce,
        *,
        account: str | None,
        cause_ns: int | None,
        purpose: str = "client",
    ) -> tuple[Order | None, str | None]:
        """One order outside any pair (a client's), through risk like every other: the
        order and None when it went out; the order (Rejected) and why when risk refused it
        or no line took it; None and why when no order could even be made of the request."""
        if venue not in self.venues_up:
            known = ", ".join(sorted(self.venues_up)) or "none"
            return None, f"ExDestination {venue} is not a venue of this gateway ({known})"
        created_ns = self._clock()
        try:
            order, command = self.orders.submit(
                venue,
                symbol,
                side,
                qty,
                ord_type,
                price,
                tif,
                clordid=self._new_clordid(),
                account=account,
                now_ns=created_ns,
                cause_ns=cause_ns,
            )
        except ValueError as exc:
            return None, str(exc)
        verdict = self.gate.check_order(command, self.gate.context(None, purpose), created_ns)
        ok = verdict.passed and self._send_new(order, command)
        sent_ns = self._clock()
        self.gate.record_order_verdict(verdict, order, ts_ns=created_ns, cause_ns=cause_ns)
        return order, self._sent(order, verdict, ok, sent_ns, purpose, cause_ns)

    def _sent(
        self,
        order: Order,
        verdict: Verdict,
        ok: bool,
        sent_ns: int,
        purpose: str,
        cause_ns: int | None,
    ) -> str | None:
        """Settle one order after its send: Rejected here if risk refused it or no line took
        it, and its receipt either way. Why it did not go, or None."""
        if not verdict.passed:
            why: str | None = f"refused by risk ({verdict.check}): {verdict.reason}"
        elif not ok:
            why = self._unsent_reason(order.venue)
            self.gate.unsent(order)
        else:
            why = None
        if why is not None:
            self.orders.send_failed(order, reason=why, now_ns=sent_ns)
        self._record(
            Receipt.of(
                "command.send_order",
                ts_ns=sent_ns,
                cause_ns=cause_ns,
                venue=order.venue,
                line=order.line.value if ok and order.line is not None else None,
                symbol=order.symbol,
                clordid=order.clordid,
                pair_id=order.pair_id,
                verdict="sent" if ok else "not sent",
                reason=why,
                data={
                    "side": order.side.name,
                    "qty": order.qty,
                    "price": str(order.price),
                    "tif": order.tif.name,
                    "leg": order.leg,
                    "purpose": purpose,
                    "account": order.account,
                },
            )
        )
        return why

    def replace(
        self, order: Order, qty: int, price: Decimal, *, cause_ns: int | None
    ) -> str | None:
        """Ask the venue to change ``order`` to ``qty`` (its new total) at ``price``, through
        risk: None when the request went out, else why not."""
        now = self._clock()
        clordid = self._new_clordid()
        ctx = self.gate.context(None, "client")
        verdict = self.risk.check_replace(order.key, clordid, qty, price, ctx, now)
        self.gate.record_order_verdict(
            verdict, order, ts_ns=now, cause_ns=cause_ns, clordid=clordid
        )
        if not verdict.passed:
            return f"refused by risk ({verdict.check}): {verdict.reason}"
        try:
            command = self.orders.request_replace(
                order, qty, price, clordid=clordid, now_ns=now, cause_ns=cause_ns
            )
        except ValueError as exc:
            return str(exc)
        ok = self._send(command)
        if ok:
            self.risk.on_replace_sent(order.key, clordid, qty, price)
        self._record(
            Receipt.of(
                "command.replace_order",
                ts_ns=self._clock(),
                cause_ns=cause_ns,
                venue=order.venue,
                symbol=order.symbol,
                clordid=clordid,
                pair_id=order.pair_id,
                verdict="sent" if ok else "not sent",
                reason=None if ok else self._unsent_reason(order.venue),
                data={"orig_clordid": command.orig_clordid, "qty": qty, "price": str(price)},
            )
        )
        return None if ok else self._unsent_reason(order.venue)

    def clear_intent(
        self, spec: PairSpec, intent: SpreadIntent, preface: Callable[[], Receipt]
    ) -> str | None:
        """Risk's verdict on a whole spread trade: None if it may go, else why not.

        ``preface`` is the intent's own receipt. A refused intent has its receipt and the
        verdict recorded now; a passed one's wait for ``place``, which records them after the
        legs are on the wire, so that the trigger reads before the verdict in the trail.
        """
        now = self._clock()
        verdict = self.gate.check_intent(spec, intent, now)
        if verdict.passed:
            self._cleared = (verdict, intent.intent_id, intent.cause_ns, now)
            return None
        self._record(preface())
        self.gate.record_verdict(
            verdict, ts_ns=now, cause_ns=intent.cause_ns, pair_id=intent.intent_id
        )
        return f"refused by risk ({verdict.check}): {verdict.reason}"

    def cancel(self, order: Order, *, cause_ns: int | None, why: str, kill: bool = False) -> bool:
        """Ask the venue to cancel ``order``: whether a cancel went out. A cancel held back
        by the venue's cancel throttle is sent once the throttle has a token for it."""
        now = self._clock()
        verdict = self.risk.check_cancel(order.venue, now, kill=kill)
        if not verdict.passed:
            self.gate.record_order_verdict(verdict, order, ts_ns=now, cause_ns=cause_ns)
            if verdict.check == risk_checks.CANCELS_PER_S:
                wait = verdict.figures.get("wait_ns")
                wait = wait if isinstance(wait, int) and wait > 0 else 1_000_000
                self.after(wait, lambda: self._cancel_again(order, cause_ns, why))
            return False
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
                reason=why if ok else f"{why}; {self._unsent_reason(order.venue)}",
                data={"orig_clordid": command.orig_clordid},
            )
        )
        return ok

    # -- line switches: what the line watch asks of the OMS --------------------------------

    def send_command(self, command: Command) -> bool:
        """Hand a command to the sessions (a status request, a switch): whether it went."""
        return self._send(command)

    def _send(self, command: Command) -> bool:
        return self._send_on(command) is not None

    def _send_new(self, order: Order, command: SendOrder) -> bool:
        """Send a new order and keep the line that took it: a venue that holds each line's
        orders apart can only tell whether it received the order on that line."""
        order.line = self._send_on(command)
        if order.line is None:
            return False
        self.lines.sent(order)
        return True

    def order_gone(self, order: Order, why: str, now_ns: int) -> None:
        """An order the venue never received (it went out on a line that was lost): Rejected
        here as if its send had failed, so that risk stops counting it, its pair repairs and
        its client, if it is a client's, is told."""
        pending = order.pending_clordid
        self.orders.send_failed(order, reason=why, now_ns=now_ns)
        self.gate.unsent(order)
        self.clients.order_gone(order, pending, why, now_ns)
        if order.pair_id is not None:
            self.engine.on_order(order, now_ns)
        if self.recovery is not None:
            self.recovery.on_order(order, now_ns)

    def reconciled(self, venue: str, cause_ns: int | None) -> None:
        """The venue's orders are checked: the repairs held for it go on."""
        self.engine.resume(venue, cause_ns)
        if self.recovery is not None:
            self.recovery.on_reconciled(venue, cause_ns)

    # -- a restart ----------------------------------------------------------------------------

    def restore(self, snapshot: Snapshot, lines: Mapping[str, int]) -> None:
        """Start from what a restarted gateway's receipt store proves (``oms.recovery``):
        its orders, its pairs' legs, risk's positions, and the ClOrdID numbers used. Before
        ``start``: nothing else touches the OMS yet. ``lines`` is each venue's number of
        lines: a venue's orders are asked after once all of them are logged on again.

        With orders still working or a pair out of ratio, the OMS goes back to trading
        through a ``Resumption`` (the working orders reconciled at the first logons, then
        cancelled; then repairs); otherwise at once. One ``recovery.restored`` receipt says
        what was taken."""
        if self._thread.is_alive():
            raise RuntimeError("restore the OMS before it starts")
        self.orders = snapshot.orders
        self._next_clordid = max(self._next_clordid, snapshot.highest_clordid(self._clordid_prefix))
        self.engine.restore(snapshot.pairs)
        self.gate.restore(snapshot.orders.all(), self._strategy_of, self._clock())
        working = snapshot.working
        unaligned = [p.spec.id for p in self.pairs.values() if not p.aligned]
        if working or unaligned:
            self.recovery = Resumption(self, snapshot, lines)
        stats = snapshot.stats
        positions = {
            f"{pair_id}:{field}": value
            for pair_id, pair in self.pairs.items()
            for field, value in (
                ("net_inner", pair.net_inner),
                ("net_outer", pair.net_outer),
                ("units", pair.units),
            )
        }
        self._record(
            Receipt.of(
                "recovery.restored",
                ts_ns=self._clock(),
                verdict="resuming" if self.recovery is not None else "restored",
                reason=f"{stats.orders} order(s) rebuilt from {stats.receipts} receipt(s) "
                f"({stats.unrecorded} message(s) only the FIX log had), {stats.fills} fill(s); "
                f"{len(working)} working, to reconcile at the first logons"
                + (f"; pairs out of ratio: {', '.join(unaligned)}" if unaligned else "")
                + (f"; {len(stats.problems)} receipt(s) not applied" if stats.problems else ""),
                data={
                    "orders": stats.orders,
                    "working": len(working),
                    "fills": stats.fills,
                    "duplicates": stats.duplicates,
                    "unrecorded": stats.unrecorded,
                    "inferred": stats.inferred,
                    "receipts": stats.receipts,
                    "problems": len(stats.problems),
                    **positions,
                    **{f"problem:{i}": p for i, p in enumerate(stats.problems[:10])},
                },
            )
        )

    def _strategy_of(self, order: Order) -> str | None:
        pair = self.engine.pair_of(order.pair_id)
        return pair.spec.id if pair is not None else None

    def _cancel_again(self, order: Order, cause_ns: int | None, why: str) -> None:
        if order.working and order.pending_kind is None:
            self.cancel(order, cause_ns=cause_ns, why=why)

    def _unsent_reason(self, venue: str) -> str:
        """Why a send returned False: the sender may know better (receipts halted, say)."""
        explain = self._why_unsent
        return explain(venue) if explain is not None else "no line to the venue is logged on"

    # -- the operator's controls ------------------------------------------------------------

    def kill(self, venue: str | None, *, who: str, why: str) -> KillReport:
        """Halt ``venue`` (every venue when None) and cancel every order working there.

        Cancels go out at once, past any cancel throttle; what the venues answer is applied
        as usual, so an order that fills before its cancel lands is still counted.
        """
        kill = self.risk.kill(venue, who, why, self._clock())
        self.gate.record_kill(kill)
        cancels: list[str] = []
        missed: list[tuple[str, str]] = []
        for order in self.orders.working():
            if not kill.covers(order.venue):
                continue
            if order.pending_kind is RequestKind.CANCEL:
                cancels.append(order.key)  # a cancel is on its way already
            elif self.cancel(order, cause_ns=kill.at_ns, why=f"kill switch: {why}", kill=True):
                cancels.append(order.key)
            else:
                missed.append((order.key, self._unsent_reason(order.venue)))
        change = kill.change
        return KillReport(
            str(kill.scope),
            tuple(cancels),
            tuple(missed),
            f"{change.previous.label} -> {change.state.label}" if change else None,
        )

    def resume(self, venue: str | None, *, who: str, why: str) -> bool:
        """Set ``venue`` (the whole gateway when None) ACTIVE again: whether it changed."""
        scope = GLOBAL if venue is None else Scope.venue(venue)
        change = self.risk.set_state(scope, TradingState.ACTIVE, who, why, self._clock())
        if change is not None:
            self.gate.record_notices((change,))
        return change is not None

    def _new_clordid(self) -> str:
        self._next_clordid += 1
        clordid = f"{self._clordid_prefix}{self._next_clordid}"
        while self.orders.by_clordid(clordid) is not None:  # a ClOrdID is never sent twice
            self._next_clordid += 1
            clordid = f"{self._clordid_prefix}{self._next_clordid}"
        return clordid

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
        if order is not None and not applied.duplicate:
            self._feed_back(applied, order, event)
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
        if order is None or applied.duplicate:
            return
        self.clients.on_execution(applied, event)  # the fill's report before what it ends
        if order.pair_id is not None:
            self.engine.on_order(order, event.recv_ns)
        self.lines.on_execution(applied, event)
        if self.recovery is not None:
            self.recovery.on_order(order, event.recv_ns)

    def _feed_back(self, applied: Applied, order: Order, event: ExecutionReceived) -> None:
        """What the report tells risk, and, from an acknowledgement, the venue's clock."""
        if applied.previous is OrdStatus.PENDING_NEW and event.transact_ns is not None:
            # our stamp before the send, the venue's on its ack, ours on receipt: one
            # round trip that separates the venue's clock offset from the wire's delay
            calibration = self.market.calibration(order.venue)
            calibration.observe_round_trip(order.created_ns, event.transact_ns, event.recv_ns)
            self.gate.on_clock_offset(order.venue, calibration.offset_ns, event.recv_ns)
        pair = self.engine.pair_of(order.pair_id)
        strategy = pair.spec.id if pair is not None else None
        self.gate.on_execution(applied, event, strategy, event.recv_ns)


def _nobody(message: ClientMessage) -> None:
    """Where client messages go when the gateway has no client acceptor."""


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
