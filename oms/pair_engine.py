"""The paired-leg engine: both legs out at once, and whatever the venues do, legs realigned.

It owns every pair's legs and the spread trade in flight, and nothing else: orders are
created, sent and recorded by the OMS (the ``OrderDesk``), books are the OMS's market
view. It runs on the OMS thread like everything that mutates state.

A trade goes: legs sent -> (every order of the trade done) -> aligned on whole units, and
done; or unbalanced, and then repaired by a round of top-ups (the lagging leg re-sent, a
little more aggressive each time, within the pair's slippage, retry and time bounds) or,
past those bounds, by unwinding what the leading leg holds beyond the whole units both legs
have. Decisions wait until no order of the trade is working: a cancel may still fill until
the venue confirms it, and an IOC's answer may still be on the wire.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Protocol

from oms.enums import Side, TimeInForce
from oms.instruments import Instrument
from oms.legs import (
    Leg,
    Position,
    aggressive_limit,
    away,
    beyond,
    repair_span,
    side_of,
    whole_units_done,
)
from oms.market import Book, MarketView
from oms.orders import Order
from oms.pairs import Direction, PairSpec, SpreadIntent, SpreadPair, TradeOutcome
from oms.receipts import Receipt
from oms.strategy import SpreadStrategy

if TYPE_CHECKING:
    from oms.recovery import PairState

_MS = 1_000_000


@dataclass(frozen=True, slots=True)
class NewLeg:
    """One order a pair wants sent: which leg, which way, how much, at what limit, and why."""

    leg: Leg
    side: Side
    qty: int
    limit: Decimal
    tif: TimeInForce
    purpose: str  # leg, top_up, unwind


class OrderDesk(Protocol):
    """What the pair engine needs from the OMS: orders, books, timers and receipts."""

    market: MarketView
    venues_up: dict[str, bool]
    reconciling: set[str]
    """Venues whose working orders are being checked after a line switch: their pairs take
    no new entry and no top-up or unwind until it is done (a fill may have happened on the
    line that went away)."""

    def place(
        self,
        spec: PairSpec,
        legs: Sequence[NewLeg],
        *,
        trade_id: str,
        cause_ns: int | None,
        preface: Callable[[], Receipt] | None = None,
    ) -> list[Order]:
        """Create, send and record the orders back to back; an order that could not be sent
        comes back already Rejected. ``preface`` makes the receipt recorded after the sends,
        before the orders' own, so that receipts cost the second leg nothing."""
        ...

    def clear_intent(
        self, spec: PairSpec, intent: SpreadIntent, preface: Callable[[], Receipt]
    ) -> str | None:
        """Pre-trade risk on the whole trade before any leg goes: None when it may go, else
        why not. ``preface`` is the intent's receipt, recorded before the verdict's."""
        ...

    def order(self, key: str) -> Order | None: ...

    def cancel(self, order: Order, *, cause_ns: int | None, why: str) -> bool:
        """Ask the venue to cancel ``order``: whether the request went out."""
        ...

    def after(self, delay_ns: int, action: Callable[[], None]) -> None: ...

    def record(self, receipt: Receipt) -> None: ...

    def now(self) -> int: ...


@dataclass
class PairBook:
    """What the OMS knows of one pair: its legs, the trade in flight, the ones done."""

    spec: PairSpec
    strategy: SpreadStrategy
    net_inner: int = 0  # signed lots filled on the inner leg, + bought
    net_outer: int = 0
    units: int = 0  # the last aligned position, in pair units (+ long inner)
    working: SpreadPair | None = None
    done: list[SpreadPair] = field(default_factory=list)
    counted: dict[str, int] = field(default_factory=dict)  # order key -> fill lots counted
    repairs: int = 0
    held_until_ns: int = 0  # after risk refused an entry, no new one is asked for until then

    @property
    def legs(self) -> Position:
        return Position(self.net_inner, self.net_outer)

    @property
    def position(self) -> int:
        """Open pair units, + long inner, by the inner leg's fills."""
        return round(Decimal(self.net_inner) / self.spec.inner_lots)

    @property
    def imbalance(self) -> Decimal:
        """Inner lots not matched by outer fills in ratio (signed); 0 when aligned."""
        return self.legs.imbalance_lots(self.spec.inner_lots, self.spec.outer_lots)

    @property
    def aligned(self) -> bool:
        return self.legs.aligned_units(self.spec.inner_lots, self.spec.outer_lots) is not None

    def instrument(self, leg: Leg) -> Instrument:
        return self.spec.inner if leg is Leg.INNER else self.spec.outer


class PairEngine:
    def __init__(self, desk: OrderDesk, pairs: Sequence[PairSpec]) -> None:
        self.desk = desk
        self.pairs = {p.id: PairBook(p, SpreadStrategy(p)) for p in pairs}
        self.by_book: dict[tuple[str, str], list[PairBook]] = {}
        for book in self.pairs.values():
            for inst in (book.spec.inner, book.spec.outer):
                self.by_book.setdefault((inst.venue, inst.symbol), []).append(book)
        self._pair_of_trade: dict[str, PairBook] = {}  # every trade id ever -> its pair
        self._repair_ids = itertools.count(1)
        self._manual_ids = itertools.count(1)
        self._held: set[str] = set()  # pairs whose repair waits for a reconciliation
        self.recovering: set[str] = set()
        """Pairs of a restarted gateway whose recovered orders are not yet settled: no
        entry and no repair until ``finish_recovery``."""
        self.finished: list[Callable[[PairBook, SpreadPair], None]] = []
        """Called on the OMS thread with each trade as it ends (a client's spread order
        reports then)."""

    def pair_of(self, trade_id: str | None) -> PairBook | None:
        """The pair a trade (a spread trade, a top-up's or an unwind's) belongs to."""
        return self._pair_of_trade.get(trade_id or "")

    # -- entries ---------------------------------------------------------------------------

    def consider(self, pair: PairBook, cause_ns: int) -> None:
        """Ask the strategy, when the pair is free to trade: no trade in flight, legs
        aligned, both venues up."""
        if pair.working is not None or not pair.aligned:
            return
        if self.recovering and pair.spec.id in self.recovering:
            return
        spec = pair.spec
        up = self.desk.venues_up
        if not (up.get(spec.inner.venue) and up.get(spec.outer.venue)):
            return
        if self._reconciling(pair):
            return
        if pair.held_until_ns and self.desk.now() < pair.held_until_ns:
            return
        intent = pair.strategy.evaluate(self.desk.market, pair.position, cause_ns)
        if intent is not None:
            self.execute(pair, intent)

    def trade_now(
        self,
        pair_id: str,
        direction: Direction,
        units: int,
        cause_ns: int,
        *,
        min_spread: Decimal | None = None,
    ) -> SpreadPair | str:
        """Trade ``units`` of a pair now at what the books give (an operator's or a client's
        spread order), if the spread it captures is at least ``min_spread`` when one is
        given: the trade, or why it cannot go."""
        pair = self.pairs.get(pair_id)
        if pair is None:
            return f"no pair {pair_id!r}; pairs: {', '.join(self.pairs)}"
        if pair.working is not None:
            return f"pair {pair_id} has a trade in flight"
        if pair_id in self.recovering:
            return (
                f"pair {pair_id} is settling the orders it had working when the gateway "
                "restarted; try again in a moment"
            )
        if not pair.aligned:
            return f"pair {pair_id} is unbalanced ({pair.imbalance} inner lots)"
        spec = pair.spec
        if not (
            self.desk.venues_up.get(spec.inner.venue) and self.desk.venues_up.get(spec.outer.venue)
        ):
            return f"a venue of pair {pair_id} has no line logged on"
        if self._reconciling(pair):
            return (
                f"a venue of pair {pair_id} is reconciling its orders after a line switch; "
                "try again in a moment"
            )
        market = self.desk.market
        inner = market.books.get((spec.inner.venue, spec.inner.symbol))
        outer = market.books.get((spec.outer.venue, spec.outer.symbol))
        priced = pair.strategy.spread(direction, inner, outer, units) if inner and outer else None
        if priced is None:
            return f"the books of pair {pair_id} cannot fill {units} unit(s)"
        captured, inner_limit, outer_limit = priced
        if min_spread is not None and captured < min_spread:
            return (
                f"the books give a spread of {captured:.4f} for {units} unit(s), less than "
                f"the {min_spread} asked"
            )
        intent = SpreadIntent(
            intent_id=f"{spec.id}-M{next(self._manual_ids)}",
            pair_id=spec.id,
            direction=direction,
            closing=pair.position * direction.sign < 0,
            inner_qty=spec.inner_lots * units,
            inner_limit=inner_limit,
            outer_qty=spec.outer_lots * units,
            outer_limit=outer_limit,
            spread=captured,
            threshold=Decimal(0),
            cause_ns=cause_ns,
        )
        return self.execute(pair, intent)

    def execute(self, pair: PairBook, intent: SpreadIntent) -> SpreadPair | str:
        """Send both legs of ``intent`` at once and follow them to an aligned end; or, when
        risk refuses the trade, why (and the pair asks for no entry for ``retry_after_ms``,
        so that a trigger that stays past its threshold does not ask risk on every tick)."""
        policy = pair.spec.config.execution
        decided_ns = self.desk.now()
        quoting = policy.mode == "quote_and_hedge"
        quote = self._quote_leg(pair, intent) if quoting else None
        if isinstance(quote, str):
            return quote

        def preface() -> Receipt:
            return _intent_receipt(pair.spec, intent, decided_ns)

        refusal = self.desk.clear_intent(pair.spec, intent, preface)
        if refusal is not None:
            pair.held_until_ns = self.desk.now() + policy.retry_after_ms * _MS
            return refusal
        pair.held_until_ns = 0
        tif = TimeInForce.IOC if policy.leg_order == "ioc" else TimeInForce.DAY
        units = intent.inner_qty // pair.spec.inner_lots
        trade = SpreadPair(
            intent,
            inner_key="",
            outer_key="",
            from_units=pair.units,
            to_units=pair.units + intent.direction.sign * units,
            leg_limits={Leg.INNER.value: intent.inner_limit, Leg.OUTER.value: intent.outer_limit},
        )
        self._open(pair, trade)
        if quote is not None:
            return self._send_quote(pair, trade, quote, preface)
        side = intent.direction.inner_side
        legs = (
            NewLeg(Leg.INNER, side, intent.inner_qty, intent.inner_limit, tif, "leg"),
            NewLeg(Leg.OUTER, side.opposite, intent.outer_qty, intent.outer_limit, tif, "leg"),
        )
        orders = self.desk.place(
            pair.spec,
            legs,
            trade_id=intent.intent_id,
            cause_ns=intent.cause_ns,
            preface=preface,
        )
        trade.inner_key, trade.outer_key = orders[0].key, orders[1].key
        trade.orders.extend(o.key for o in orders)
        trade.sent_ns = self.desk.now()
        if policy.leg_order == "limit":
            self.desk.after(policy.leg_timeout_ms * _MS, lambda: self._leg_timeout(pair, trade))
        self._settle(pair, trade, intent.cause_ns)  # a leg that could not be sent is a fault
        return trade

    # -- quote and hedge -----------------------------------------------------------------------

    def _quote_leg(self, pair: PairBook, intent: SpreadIntent) -> NewLeg | str:
        """The resting order of a quote-and-hedge trade: the quote leg, passive, at the best
        price on its side (improved by ``quote_improve_ticks``, never crossing)."""
        policy = pair.spec.config.execution
        leg = Leg(policy.quote_leg)
        inst = pair.instrument(leg)
        side = intent.direction.inner_side if leg is Leg.INNER else intent.direction.outer_side
        qty = intent.inner_qty if leg is Leg.INNER else intent.outer_qty
        book = self.desk.market.books.get((inst.venue, inst.symbol))
        price = passive_price(book, side, policy.quote_improve_ticks, inst.tick)
        if price is None:
            return f"the {leg.value} book has no price to quote {side.name.lower()} at"
        return NewLeg(leg, side, qty, price, TimeInForce.DAY, "quote")

    def _send_quote(
        self, pair: PairBook, trade: SpreadPair, quote: NewLeg, preface: Callable[[], Receipt]
    ) -> SpreadPair:
        policy = pair.spec.config.execution
        trade.leg_limits[quote.leg.value] = quote.limit
        [order] = self.desk.place(
            pair.spec,
            [quote],
            trade_id=trade.intent.intent_id,
            cause_ns=trade.intent.cause_ns,
            preface=preface,
        )
        trade.quote_key = order.key
        if quote.leg is Leg.INNER:
            trade.inner_key = order.key
        else:
            trade.outer_key = order.key
        trade.orders.append(order.key)
        trade.sent_ns = self.desk.now()
        self.desk.after(policy.quote_timeout_ms * _MS, lambda: self._quote_timeout(trade))
        self._settle(pair, trade, trade.intent.cause_ns)  # a quote refused is a trade missed
        return trade

    def _hedge(self, pair: PairBook, trade: SpreadPair, cause_ns: int | None) -> None:
        """Bring the hedge leg in ratio with what the quote has filled so far: one IOC for
        the lots now due. What a hedge misses is topped up once the quote is done."""
        spec = pair.spec
        policy = spec.config.execution
        quote_leg = Leg(policy.quote_leg)
        hedge_leg = Leg.OUTER if quote_leg is Leg.INNER else Leg.INNER
        quoted = trade.inner_filled if quote_leg is Leg.INNER else trade.outer_filled
        per = Fraction(spec.outer_lots, spec.inner_lots)
        if quote_leg is Leg.OUTER:
            per = 1 / per
        due = hedge_lots(quoted * per, policy.hedge_rounding)
        qty = due - trade.hedge_sent
        if qty <= 0:
            return
        inst = pair.instrument(hedge_leg)
        direction = trade.intent.direction
        side = direction.inner_side if hedge_leg is Leg.INNER else direction.outer_side
        book = self.desk.market.books.get((inst.venue, inst.symbol))
        limit = aggressive_limit(book, side, qty, policy.hedge_pay_up_ticks, inst.tick)
        if limit is None:
            return  # nothing to hedge against now; the next quote fill or the end tops it up
        trade.hedge_sent += qty
        hedge = NewLeg(hedge_leg, side, qty, limit, TimeInForce.IOC, "hedge")
        self._send_round(
            pair,
            trade,
            [hedge],
            "decision.hedge",
            f"the quote has filled {quoted} lot(s): {due} {hedge_leg.value} lot(s) are due, "
            f"{qty} more now",
            cause_ns,
            settle=False,
        )

    # -- reports -----------------------------------------------------------------------------

    def on_order(self, order: Order, cause_ns: int | None) -> None:
        """An order of some trade changed: count its fills, then see where its trade is."""
        pair = self._pair_of_trade.get(order.pair_id or "")
        if pair is None:
            return
        delta = order.fill_qty - pair.counted.get(order.key, 0)
        if delta:
            pair.counted[order.key] = order.fill_qty
            signed = delta if order.side is Side.BUY else -delta
            if order.leg == Leg.INNER.value:
                pair.net_inner += signed
            else:
                pair.net_outer += signed
        trade = pair.working
        if trade is not None and order.key in trade.orders:
            quote = order.key == trade.quote_key
            if delta:
                self._count(pair, trade, order, delta)
                if quote and not trade.unwinding:
                    self._hedge(pair, trade, cause_ns)
            missed = not order.working and order.fill_qty < order.qty
            if missed and not quote and trade.first_fault_ns is None:
                self._fault(pair, trade, cause_ns)  # a quote that rests unfilled is no fault
            self._settle(pair, trade, cause_ns)
        elif delta and trade is None and not pair.aligned and pair.spec.id not in self.recovering:
            # A bust or a correction on a trade already done: it re-opens the imbalance.
            why = f"{order.key}: its fills changed after its trade ended"
            self._start_repair(pair, cause_ns, why=why)

    def _count(self, pair: PairBook, trade: SpreadPair, order: Order, delta: int) -> None:
        towards = trade.step * (1 if order.side is Side.BUY else -1)
        if order.leg == Leg.INNER.value:
            trade.inner_filled += towards * delta
        else:
            trade.outer_filled -= towards * delta
        trade.round_filled += abs(delta)
        fill = order.fills[-1] if order.fills else None
        if fill is not None and delta > 0 and not fill.busted:
            # A bust takes lots away: it is no fill of the trade's, and the last fill's
            # price would not be its own.
            trade.fills.append((order.leg or "", delta, fill.price, fill.recv_ns))
        imbalance = abs(pair.imbalance)
        if imbalance > trade.peak_imbalance:
            trade.peak_imbalance = imbalance

    # -- the trade's life --------------------------------------------------------------------

    def _open(self, pair: PairBook, trade: SpreadPair) -> None:
        pair.working = trade
        self._pair_of_trade[trade.intent.intent_id] = pair

    def _working_orders(self, trade: SpreadPair) -> list[Order]:
        orders = (self.desk.order(k) for k in trade.orders)
        return [o for o in orders if o is not None and o.working]

    def _fault(self, pair: PairBook, trade: SpreadPair, cause_ns: int | None) -> None:
        now = self.desk.now()
        trade.first_fault_ns = cause_ns or now
        policy = pair.spec.config.execution
        self.desk.after(policy.imbalance_alert_ms * _MS, lambda: self._alert(pair, trade))
        self.desk.after(policy.imbalance_limit_ms * _MS, lambda: self._limit(pair, trade))

    def _settle(self, pair: PairBook, trade: SpreadPair, cause_ns: int | None) -> None:
        """Once nothing of the trade is working: finish it if aligned, else repair it."""
        if trade.outcome is not None or self._working_orders(trade):
            return
        spec = pair.spec
        m, n = spec.inner_lots, spec.outer_lots
        units = pair.legs.aligned_units(m, n)
        if units is None:
            imbalance = abs(pair.imbalance)
            if imbalance > trade.held_imbalance:
                trade.held_imbalance = imbalance
            if trade.first_fault_ns is None:
                self._fault(pair, trade, cause_ns)
            self._repair(pair, trade, cause_ns)
            return
        if units == trade.to_units:
            outcome = TradeOutcome.FILLED if not trade.top_ups else TradeOutcome.TOPPED_UP
        elif trade.unwinding:
            outcome = TradeOutcome.UNWOUND
        elif units == trade.from_units:
            outcome = TradeOutcome.MISSED
        else:
            outcome = TradeOutcome.PARTIAL
        self._finish(pair, trade, units, outcome, cause_ns)

    def _finish(
        self,
        pair: PairBook,
        trade: SpreadPair,
        units: int,
        outcome: TradeOutcome,
        cause_ns: int | None,
    ) -> None:
        now = self.desk.now()
        trade.outcome = outcome
        trade.balanced_ns = now
        pair.units = units
        pair.working = None
        pair.done.append(trade)
        intent = trade.intent
        fault_to_balanced = now - trade.first_fault_ns if trade.first_fault_ns else None
        self.desk.record(
            Receipt.of(
                "decision.pair_done",
                ts_ns=now,
                cause_ns=cause_ns,
                pair_id=intent.intent_id,
                verdict=outcome.value,
                reason=f"inner {trade.inner_filled}/{intent.inner_qty}, "
                f"outer {trade.outer_filled}/{intent.outer_qty}; "
                f"{trade.top_ups} top-up round(s), {trade.unwinds} unwind round(s)",
                data={
                    "pair": pair.spec.id,
                    "position": units,
                    "imbalance_inner_lots": str(pair.imbalance),
                    "top_ups": trade.top_ups,
                    "unwinds": trade.unwinds,
                    "fault_to_balanced_ns": fault_to_balanced,
                    "peak_imbalance_inner_lots": str(trade.peak_imbalance),
                },
            )
        )
        for listener in self.finished:
            listener(pair, trade)

    def _repair(self, pair: PairBook, trade: SpreadPair, cause_ns: int | None) -> None:
        if self._hold(pair):
            return
        now = self.desk.now()
        if not trade.unwinding:
            legs, why = self._top_up_legs(pair, trade, now)
            if legs:
                trade.top_ups += 1
                self._send_round(pair, trade, legs, "decision.top_up", why, cause_ns)
                return
            trade.unwinding = True
            self._unwind(pair, trade, cause_ns, why)
            return
        if trade.retry_booked:
            return
        if trade.unwinds and not trade.round_filled:
            # The last unwind took nothing: the book it was priced on had moved. Wait for
            # fresh market data rather than spin on the same stale view.
            self._book_retry(pair, trade)
            return
        self._unwind(pair, trade, cause_ns, "the last unwind left an imbalance")

    def _top_up_legs(self, pair: PairBook, trade: SpreadPair, now: int) -> tuple[list[NewLeg], str]:
        """The orders of the next top-up round, or none and the reason to unwind instead."""
        policy = pair.spec.config.execution
        if trade.top_ups >= policy.max_top_ups:
            return [], f"{trade.top_ups} top-up round(s) done, the most allowed"
        waited = now - (trade.first_fault_ns or now)
        if waited > policy.max_top_up_ms * _MS:
            return [], f"{waited / _MS:.1f} ms since the first fault (bound {policy.max_top_up_ms})"
        legs: list[NewLeg] = []
        for leg, inst, side, qty, book in self._moves(pair, trade.to_units):
            ticks = policy.top_up_pay_up_ticks * (trade.top_ups + 1)
            limit = aggressive_limit(book, side, qty, ticks, inst.tick)
            first = trade.leg_limits.get(leg.value)
            cap = away(first, side, policy.max_slippage_ticks, inst.tick) if first else None
            if limit is None:
                return [], f"{leg.value} book cannot fill {qty} lots to top up"
            if cap is not None and beyond(limit, cap, side):
                limit = cap  # the bound holds: top up at it, and unwind what it misses
                best = _best(book, side)
                if best is None or beyond(best, cap, side):
                    return [], (
                        f"{leg.value} top-up needs {limit} or worse, past the "
                        f"{policy.max_slippage_ticks}-tick slippage bound {cap}"
                    )
            legs.append(NewLeg(leg, side, qty, limit, TimeInForce.IOC, "top_up"))
        return legs, f"round {trade.top_ups + 1}: re-send what the lagging leg lacks"

    def _unwind(self, pair: PairBook, trade: SpreadPair, cause_ns: int | None, why: str) -> None:
        policy = pair.spec.config.execution
        spec = pair.spec
        m, n = spec.inner_lots, spec.outer_lots
        done = whole_units_done(pair.legs, trade.from_units, trade.to_units, m, n)
        target = trade.from_units + trade.step * done
        legs: list[NewLeg] = []
        for leg, inst, side, qty, book in self._moves(pair, target):
            limit = aggressive_limit(book, side, qty, policy.unwind_pay_up_ticks, inst.tick)
            if limit is None:
                self.desk.record(
                    Receipt.of(
                        "alert.unwind_unpriced",
                        ts_ns=self.desk.now(),
                        cause_ns=cause_ns,
                        pair_id=trade.intent.intent_id,
                        venue=inst.venue,
                        symbol=inst.symbol,
                        verdict="retry",
                        reason=f"the {leg.value} book cannot take {qty} lots; retry in "
                        f"{policy.retry_after_ms} ms",
                    )
                )
                self._book_retry(pair, trade)
                return
            legs.append(NewLeg(leg, side, qty, limit, TimeInForce.IOC, "unwind"))
        trade.unwinds += 1
        self._send_round(
            pair, trade, legs, "decision.unwind", f"{why}; back to {target} unit(s)", cause_ns
        )

    def _moves(
        self, pair: PairBook, units: int
    ) -> list[tuple[Leg, Instrument, Side, int, Book | None]]:
        """Each leg that must trade for the pair to stand aligned at ``units``: the leg, its
        instrument, the side, the lots and the book to price it on."""
        spec = pair.spec
        deltas = pair.legs.deltas_to(units, spec.inner_lots, spec.outer_lots)
        moves = []
        for leg, delta in zip((Leg.INNER, Leg.OUTER), deltas, strict=True):
            if delta:
                inst = pair.instrument(leg)
                book = self.desk.market.books.get((inst.venue, inst.symbol))
                moves.append((leg, inst, side_of(delta), abs(delta), book))
        return moves

    def _send_round(
        self,
        pair: PairBook,
        trade: SpreadPair,
        legs: list[NewLeg],
        kind: str,
        why: str,
        cause_ns: int | None,
        *,
        settle: bool = True,
    ) -> None:
        trade.round_filled = 0
        now = self.desk.now()
        preface = Receipt.of(
            kind,
            ts_ns=now,
            cause_ns=trade.first_fault_ns,
            pair_id=trade.intent.intent_id,
            verdict=kind.rsplit(".", 1)[1],
            reason=why,
            data={
                "pair": pair.spec.id,
                "imbalance_inner_lots": str(pair.imbalance),
                "net_inner": pair.net_inner,
                "net_outer": pair.net_outer,
                "orders": "; ".join(f"{g.leg.value} {g.side.name} {g.qty}@{g.limit}" for g in legs),
            },
        )
        orders = self.desk.place(
            pair.spec,
            legs,
            trade_id=trade.intent.intent_id,
            cause_ns=cause_ns,
            preface=lambda: preface,
        )
        trade.orders.extend(o.key for o in orders)
        if settle:
            self._settle(pair, trade, cause_ns)

    # -- line switches ---------------------------------------------------------------------

    def _reconciling(self, pair: PairBook) -> bool:
        reconciling = self.desk.reconciling
        return bool(reconciling) and (
            pair.spec.inner.venue in reconciling or pair.spec.outer.venue in reconciling
        )

    def _hold(self, pair: PairBook) -> bool:
        """Whether the pair's repair must wait for a reconciliation (and is now waiting)."""
        if not self._reconciling(pair):
            return False
        self._held.add(pair.spec.id)
        return True

    def resume(self, venue: str, cause_ns: int | None) -> None:
        """A venue's reconciliation is over: repairs held for it go on, with what it found."""
        for pair_id in sorted(self._held):
            pair = self.pairs[pair_id]
            if venue not in (pair.spec.inner.venue, pair.spec.outer.venue):
                continue
            if self._reconciling(pair):
                continue  # its other venue is still at it
            self._held.discard(pair_id)
            trade = pair.working
            if trade is not None:
                self._settle(pair, trade, cause_ns)

    # -- a restart -----------------------------------------------------------------------------

    def restore(self, states: Mapping[str, PairState]) -> None:
        """Take each pair's legs as a restarted gateway's receipts leave them (before the OMS
        thread runs). Trade numbers go on after the highest used, so that no trade id of this
        run names a trade of an earlier one."""
        manual = repairs = 0
        for pair_id, state in states.items():
            pair = self.pairs.get(pair_id)
            if pair is None:
                continue  # a pair the configuration no longer has
            pair.net_inner, pair.net_outer, pair.units = (
                state.net_inner,
                state.net_outer,
                state.units,
            )
            pair.counted.update(state.counted)
            for trade_id in state.trades:
                self._pair_of_trade[trade_id] = pair
            # the strategy numbers its entries itself, from 1 in each run
            pair.strategy._ids = itertools.count(state.numbers.get("", 0) + 1)
            manual = max(manual, state.numbers.get("M", 0))
            repairs = max(repairs, state.numbers.get("R", 0))
        self._manual_ids = itertools.count(manual + 1)
        self._repair_ids = itertools.count(repairs + 1)

    def hold_for_recovery(self, pair_ids: set[str]) -> None:
        self.recovering |= pair_ids

    def finish_recovery(self, pair_id: str, cause_ns: int | None) -> None:
        """The pair's recovered orders are settled: it trades again, after a repair if its
        legs are out of ratio (the trade that unbalanced them is gone: the repair tops the
        lagging leg up to the last aligned position, or unwinds to whole units)."""
        self.recovering.discard(pair_id)
        pair = self.pairs[pair_id]
        if pair.working is not None:
            return
        units = pair.legs.aligned_units(pair.spec.inner_lots, pair.spec.outer_lots)
        if units is not None:  # the recovered orders' last reports may have aligned it
            pair.units = units
        else:
            self._start_repair(pair, cause_ns, why="legs out of ratio after a restart")

    # -- timers ------------------------------------------------------------------------------

    def _book_retry(self, pair: PairBook, trade: SpreadPair) -> None:
        trade.retry_booked = True
        delay = pair.spec.config.execution.retry_after_ms * _MS
        self.desk.after(delay, lambda: self._retry(pair, trade))

    def _retry(self, pair: PairBook, trade: SpreadPair) -> None:
        trade.retry_booked = False
        if trade.outcome is not None or pair.working is not trade:
            return
        if self._hold(pair):
            return
        if not self._working_orders(trade):
            self._unwind(pair, trade, None, "retry after an unwind that took nothing")

    def _leg_timeout(self, pair: PairBook, trade: SpreadPair) -> None:
        """Limit legs still working at their time-out are cancelled; what they filled by the
        venue's confirmation is what counts."""
        if trade.outcome is not None:
            return
        for order in self._working_orders(trade):
            if order.pending_kind is None:
                self.desk.cancel(order, cause_ns=None, why="leg time-out")

    def _quote_timeout(self, trade: SpreadPair) -> None:
        """A quote still resting at its time-out is cancelled; its fills until the venue
        confirms are hedged like any other."""
        quote = self.desk.order(trade.quote_key or "")
        if quote is None or trade.outcome is not None:
            return
        if quote.working and quote.pending_kind is None:
            self.desk.cancel(quote, cause_ns=None, why="quote time-out")

    def _alert(self, pair: PairBook, trade: SpreadPair) -> None:
        if trade.outcome is not None or trade.alerted:
            return
        trade.alerted = True
        policy = pair.spec.config.execution
        self.desk.record(
            Receipt.of(
                "alert.imbalance",
                ts_ns=self.desk.now(),
                cause_ns=trade.first_fault_ns,
                pair_id=trade.intent.intent_id,
                verdict="alert",
                reason=f"pair {pair.spec.id} unbalanced for over {policy.imbalance_alert_ms} ms: "
                f"imbalance {pair.imbalance} inner lots, "
                f"{len(self._working_orders(trade))} order(s) still working",
            )
        )

    def _limit(self, pair: PairBook, trade: SpreadPair) -> None:
        """Past the imbalance limit: stop topping up, cancel what works, unwind."""
        if trade.outcome is not None:
            return
        trade.unwinding = True
        working = self._working_orders(trade)
        for order in working:
            if order.pending_kind is None and order.tif is not TimeInForce.IOC:
                self.desk.cancel(order, cause_ns=None, why="imbalance limit")
        if not working:
            self._settle(pair, trade, None)

    # -- busts and corrections -----------------------------------------------------------

    def _start_repair(self, pair: PairBook, cause_ns: int | None, why: str) -> None:
        spec = pair.spec
        from_units, to_units = repair_span(pair.legs, pair.units, spec.inner_lots, spec.outer_lots)
        pair.repairs += 1
        step = 1 if to_units >= from_units else -1
        intent = SpreadIntent(
            intent_id=f"{spec.id}-R{next(self._repair_ids)}",
            pair_id=spec.id,
            direction=Direction.BUY_INNER if step > 0 else Direction.SELL_INNER,
            closing=False,
            inner_qty=abs(to_units - from_units) * spec.inner_lots,
            inner_limit=Decimal(0),
            outer_qty=abs(to_units - from_units) * spec.outer_lots,
            outer_limit=Decimal(0),
            spread=Decimal(0),
            threshold=Decimal(0),
            cause_ns=cause_ns or self.desk.now(),
        )
        trade = SpreadPair(intent, "", "", from_units=from_units, to_units=to_units)
        self._open(pair, trade)
        self.desk.record(
            Receipt.of(
                "decision.repair",
                ts_ns=self.desk.now(),
                cause_ns=cause_ns,
                pair_id=intent.intent_id,
                verdict="repair",
                reason=f"{why}; imbalance {pair.imbalance} inner lots; aim for {to_units} "
                f"unit(s), or back to {from_units}",
                data={"pair": spec.id, "net_inner": pair.net_inner, "net_outer": pair.net_outer},
            )
        )
        self._fault(pair, trade, cause_ns)
        self._settle(pair, trade, cause_ns)


def passive_price(book: Book | None, side: Side, improve: int, tick: Decimal) -> Decimal | None:
    """Where a resting order joins its own side of ``book``, ``improve`` ticks better, but
    always a tick short of the other side (a quote must not take liquidity)."""
    if book is None:
        return None
    buy = side is Side.BUY
    own = book.best_bid() if buy else book.best_ask()
    other = book.best_ask() if buy else book.best_bid()
    if own is None and other is None:
        return None
    if own is None:
        assert other is not None
        return other - tick if buy else other + tick
    price = own + improve * tick if buy else own - improve * tick
    if other is not None:
        price = min(price, other - tick) if buy else max(price, other + tick)
    return price


def hedge_lots(exact: Fraction, rounding: str) -> int:
    """The whole hedge lots due for an exact ratio share: the nearest (a half up), or down."""
    if rounding == "down":
        return math.floor(exact)
    return math.floor(exact + Fraction(1, 2))


def _best(book: Book | None, side: Side) -> Decimal | None:
    """The best price ``side`` can take now (the ask for a buy), for the slippage check."""
    if book is None:
        return None
    return book.best_ask() if side is Side.BUY else book.best_bid()


def _intent_receipt(spec: PairSpec, intent: SpreadIntent, now: int) -> Receipt:
    return Receipt.of(
        "decision.spread_intent",
        ts_ns=now,
        cause_ns=intent.cause_ns,
        pair_id=intent.intent_id,
        verdict="closing" if intent.closing else "entry",
        reason=f"{intent.direction.value}: spread {intent.spread:.4f} "
        f"vs threshold {intent.threshold}",
        data={
            "pair": spec.id,
            "inner_qty": intent.inner_qty,
            "inner_limit": str(intent.inner_limit),
            "outer_qty": intent.outer_qty,
            "outer_limit": str(intent.outer_limit),
            "spread": str(intent.spread),
        },
    )
