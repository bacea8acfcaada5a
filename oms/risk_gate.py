"""The OMS's side of pre-trade risk: ask before anything leaves, tell what came back.

Why a module between the OMS and ``oms.risk``: the engine is pure (values in, a verdict out,
no receipts, no orders), and the OMS's core should read as the single writer's loop, not as
a list of risk calls. The gate holds the one translation between the two: which context an
order is checked in, which OMS fact is which engine feedback, and how a verdict or a notice
becomes a receipt. Everything here runs on the OMS thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from oms.commands import SendOrder
from oms.events import ExecutionReceived, OrdStatus
from oms.market import MarketView
from oms.orders import Applied, Fill, Order, OrderEvent
from oms.pairs import PairSpec, SpreadIntent
from oms.receipts import Receipt
from oms.risk import (
    IntentFacts,
    KillOrder,
    LegFacts,
    Notice,
    OrderContext,
    Origin,
    RiskEngine,
    StateChange,
    Verdict,
)

_ORIGIN_OF_PURPOSE: Final = {
    "leg": Origin.ENTRY,
    "top_up": Origin.TOP_UP,
    "unwind": Origin.UNWIND,
    "quote": Origin.ENTRY,  # a quote-and-hedge trade's resting leg opens it
    "hedge": Origin.TOP_UP,  # and its hedges complete what the quote filled
    "client": Origin.CLIENT,
    "operator": Origin.OPERATOR,
}
_PENDING_NEW: Final = OrdStatus.PENDING_NEW
_AMENDED: Final = frozenset({OrderEvent.REPLACED, OrderEvent.RESTATED})


@dataclass(frozen=True, slots=True)
class KillReport:
    """What pulling the kill switch did: the scope halted, and the cancels sent for it."""

    scope: str
    cancels: tuple[str, ...]
    """The ClOrdIDs of the orders a cancel was sent for (their first ClOrdID)."""
    not_cancelled: tuple[tuple[str, str], ...]
    """(ClOrdID, why) of working orders no cancel could be sent for (no line logged on)."""
    state_change: str | None
    """``previous -> halted``, or None when the scope was halted already."""


class RiskGate:
    """Asks the risk engine on the OMS's behalf and records every answer as a receipt."""

    def __init__(self, engine: RiskEngine, record: Callable[[Receipt], None]) -> None:
        self.engine = engine
        self._record = record
        self._contexts: dict[tuple[str | None, str], OrderContext] = {}

    # -- questions -----------------------------------------------------------------------

    def context(self, strategy: str | None, purpose: str) -> OrderContext:
        """The context an order of ``purpose`` (leg, top_up, unwind, client, operator) is
        checked in; built once per strategy and purpose, as the engine asks."""
        key = (strategy, purpose)
        ctx = self._contexts.get(key)
        if ctx is None:
            ctx = self._contexts[key] = OrderContext(_ORIGIN_OF_PURPOSE[purpose], strategy)
        return ctx

    def check_order(self, command: SendOrder, ctx: OrderContext, now_ns: int) -> Verdict:
        """The verdict on one order; a pass counts as working from now on (undo it with
        :meth:`unsent` if the send then fails)."""
        verdict = self.engine.check_order(command, ctx, now_ns)
        if verdict.passed:
            self.engine.on_order_sent(command, ctx, now_ns)
        return verdict

    def unsent(self, order: Order) -> None:
        """An order that passed but never reached the wire exposes nothing."""
        self.engine.on_order_done(order.key)

    def check_intent(self, spec: PairSpec, intent: SpreadIntent, now_ns: int) -> Verdict:
        """The verdict on a whole spread trade, at the worst its legs and top-ups could do."""
        policy = spec.config.execution
        inner_side = intent.direction.inner_side
        facts = IntentFacts(
            strategy=spec.id,
            inner=LegFacts(
                spec.inner.venue,
                spec.inner.symbol,
                inner_side,
                intent.inner_qty,
                intent.inner_limit,
            ),
            outer=LegFacts(
                spec.outer.venue,
                spec.outer.symbol,
                inner_side.opposite,
                intent.outer_qty,
                intent.outer_limit,
            ),
            # each top-up round pays up one step more, never past the slippage bound
            max_pay_up_ticks=min(
                policy.top_up_pay_up_ticks * policy.max_top_ups, policy.max_slippage_ticks
            ),
            max_top_up_retries=policy.max_top_ups,
            intent_id=intent.intent_id,
        )
        return self.engine.check_intent(facts, now_ns)

    # -- receipts --------------------------------------------------------------------------

    def record_verdict(
        self,
        verdict: Verdict,
        *,
        ts_ns: int,
        cause_ns: int | None,
        venue: str | None = None,
        symbol: str | None = None,
        clordid: str | None = None,
        pair_id: str | None = None,
    ) -> None:
        self._record(
            Receipt.of(
                Verdict.kind,
                ts_ns=ts_ns,
                cause_ns=cause_ns,
                venue=venue,
                symbol=symbol,
                clordid=clordid,
                pair_id=pair_id,
                verdict=verdict.verdict,
                reason=f"{verdict.check}: {verdict.reason}",
                data={"check": verdict.check, **verdict.figures},
            )
        )
        self.record_notices(verdict.notices)

    def record_order_verdict(
        self,
        verdict: Verdict,
        order: Order,
        *,
        ts_ns: int,
        cause_ns: int | None,
        clordid: str | None = None,
    ) -> None:
        """The verdict on something asked of ``order`` (sending it, cancelling or replacing
        it under ``clordid``), with the order's venue, symbol and pair."""
        self.record_verdict(
            verdict,
            ts_ns=ts_ns,
            cause_ns=cause_ns,
            venue=order.venue,
            symbol=order.symbol,
            clordid=clordid or order.clordid,
            pair_id=order.pair_id,
        )

    def record_notices(self, notices: Iterable[Notice], cause_ns: int | None = None) -> None:
        """One receipt per state change or alert, with who, why and the figures."""
        for notice in notices:
            if isinstance(notice, StateChange):
                verdict, reason = notice.state.label, notice.why
            else:
                verdict, reason = notice.check, notice.message
            self._record(
                Receipt.of(
                    notice.kind,
                    ts_ns=notice.at_ns,
                    cause_ns=cause_ns,
                    verdict=verdict,
                    reason=reason,
                    data=notice.data,
                )
            )

    def record_kill(self, kill: KillOrder) -> None:
        self._record(
            Receipt.of(
                KillOrder.kind,
                ts_ns=kill.at_ns,
                venue=kill.venue,
                verdict="halted",
                reason=kill.why,
                data=kill.data,
            )
        )
        if kill.change is not None:
            self.record_notices((kill.change,))

    # -- feedback: what the OMS learned, told to the engine ----------------------------------

    def on_execution(
        self, applied: Applied, event: ExecutionReceived, strategy: str | None, now_ns: int
    ) -> None:
        """Acks, rejects, fills, amendments and ends of one report, once each."""
        order = applied.order
        if order is None or applied.duplicate:
            return
        engine = self.engine
        notices: tuple[Notice, ...] = ()
        if (
            applied.previous is OrdStatus.PENDING_NEW
            and applied.status is not OrdStatus.PENDING_NEW
        ):
            if applied.status is OrdStatus.REJECTED:
                notices += engine.on_reject(order.venue, strategy, now_ns)
            else:
                notices += engine.on_ack(order.venue, event.recv_ns - order.created_ns, now_ns)
        fill = applied.fill
        if fill is not None:
            notices += self._fill(order, fill, now_ns)
        if applied.event in _AMENDED and order.working:
            engine.on_order_amended(order.key, order.leaves_qty, order.price)
        if not order.working:
            engine.on_order_done(order.key)
        if notices:
            self.record_notices(notices, event.recv_ns)

    def _fill(self, order: Order, fill: Fill, now_ns: int) -> tuple[Notice, ...]:
        """A live fill counts against the order; a bust takes its fill back out of the
        position; a correction takes the old fill out and books the new one."""
        engine = self.engine
        side, qty = fill.side, fill.qty
        venue, symbol = order.venue, order.symbol
        if fill.busted:
            return engine.on_fill(None, venue, symbol, side.opposite, qty, fill.price, now_ns)
        if fill.correction_of is not None:
            old = next((f for f in order.fills if f.exec_id == fill.correction_of), None)
            notices: tuple[Notice, ...] = ()
            if old is not None:
                notices += engine.on_fill(
                    None, venue, symbol, old.side.opposite, old.qty, old.price, now_ns
                )
            return notices + engine.on_fill(None, venue, symbol, side, qty, fill.price, now_ns)
        return engine.on_fill(order.key, venue, symbol, side, qty, fill.price, now_ns)

    def on_market(
        self, market: MarketView, venue: str, symbols: Iterable[str], now_ns: int
    ) -> None:
        """The top of each touched book, for marks, P&L, collars and staleness."""
        engine = self.engine
        notices: tuple[Notice, ...] = ()
        for symbol in symbols:
            book = market.books.get((venue, symbol))
            if book is None:
                continue
            last = book.last_trade[0] if book.last_trade else None
            notices += engine.on_market(
                venue, symbol, book.best_bid(), book.best_ask(), last, book.updated_ns
            )
        if notices:
            self.record_notices(notices, now_ns)

    def restore(
        self, orders: Sequence[Order], strategy_of: Callable[[Order], str | None], now_ns: int
    ) -> None:
        """Count a restarted gateway's recovered orders as the engine would have counted
        them live: every order sent, then every live fill in the order it was received (so
        that realised P&L comes out the same), then what is still working or done. Every
        ClOrdID they used stays used."""
        engine = self.engine
        for order in orders:
            strategy = strategy_of(order)
            ctx = self.context(strategy, "leg" if strategy is not None else "client")
            command = SendOrder(
                venue=order.venue,
                clordid=order.key,  # the engine keys working orders by their first ClOrdID
                symbol=order.symbol,
                side=order.side,
                qty=order.qty,
                ord_type=order.ord_type,
                price=order.price,
                tif=order.tif,
                account=order.account,
                created_ns=order.created_ns,
            )
            engine.on_order_sent(command, ctx, now_ns)
            engine.ledger.clordids.update(order.clordids)
        fills = sorted(
            ((fill, order) for order in orders for fill in order.fills if not fill.busted),
            key=lambda item: item[0].recv_ns,
        )
        notices: tuple[Notice, ...] = ()
        for fill, order in fills:
            notices += engine.on_fill(
                order.key, order.venue, order.symbol, fill.side, fill.qty, fill.price, now_ns
            )
        for order in orders:
            if order.working:
                engine.on_order_amended(order.key, order.leaves_qty, order.price)
            else:
                engine.on_order_done(order.key)
        self.record_notices(notices)

    def on_clock_offset(self, venue: str, offset_ns: int | None, now_ns: int) -> None:
        if offset_ns is not None:
            self.record_notices(self.engine.on_clock_offset(venue, offset_ns, now_ns), now_ns)
