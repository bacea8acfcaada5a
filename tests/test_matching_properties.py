"""Random order flow against the matching engine, checked against its invariants.

The hand-worked tests show each rule once; this finds the sequences nobody thought to write
down (a replace into a half-filled level during an auction, a close straight after a cancel).
A hypothesis state machine sends limit, market, cancel and replace commands and phase changes,
keeps its own ledger of every order from the events alone, and after every step checks the
book's structure and that the ledger and the engine agree.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import Decimal

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from oms.enums import Side, TimeInForce
from oms.instruments import Instrument
from sessions.simulator.matching import (
    Event,
    MatchingEngine,
    Order,
    OrderState,
    Phase,
    Reason,
    Report,
    ReportKind,
    TradePrint,
)

BUY, SELL = Side.BUY, Side.SELL
MAX_QTY = 25  # orders enter with up to 20 lots; a replace may grow one past this
INST = Instrument(
    venue="SIM",
    symbol="AU",
    currency="CNY",
    tick=Decimal("0.05"),
    prev_close=Decimal("500.00"),
    price_band_pct=Decimal(10),
    max_order_qty=MAX_QTY,
)
MID = INST.to_ticks(Decimal("500.00"))
SPREAD = 4  # limits within 4 ticks of the mid on either side, so that orders cross often

sides = st.sampled_from([BUY, SELL])
offsets = st.integers(-SPREAD, SPREAD)
quantities = st.integers(1, 20)
tifs = st.sampled_from(list(TimeInForce))
# which order a cancel or replace names: see MatchingMachine.pick
picks = st.tuples(st.sampled_from(["working"] * 4 + ["any", "unknown"]), st.integers(0, 10**6))
NEXT_PHASE = {
    Phase.OPENING_AUCTION: Phase.CONTINUOUS,
    Phase.CONTINUOUS: Phase.CLOSING_AUCTION,
    Phase.CLOSING_AUCTION: Phase.CLOSED,
    Phase.CLOSED: Phase.OPENING_AUCTION,
}


@dataclass
class Ledger:
    """One order as the events told it."""

    order: Order
    qty: int
    leaves: int
    cum: int = 0
    notional: int = 0
    gone: int = 0  # quantity cancelled, expired or refused
    fills: list[tuple[int, int]] = field(default_factory=list)  # (price ticks, qty)


class MatchingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.engine = MatchingEngine([INST], clock=itertools.count(1).__next__)
        self.book = self.engine.books["AU"]
        self.ledger: dict[int, Ledger] = {}
        self.matches = 0

    # -- commands ----------------------------------------------------------------------------

    @rule(side=sides, offset=offsets, qty=quantities, tif=tifs)
    def limit(self, side: Side, offset: int, qty: int, tif: TimeInForce) -> None:
        phase = self.book.phase
        events = self.engine.submit("t", "AU", side, qty, INST.from_ticks(MID + offset), tif)
        self.apply(events)
        first = self.first_report(events)
        if phase is Phase.CLOSED:
            assert first.reason is Reason.MARKET_CLOSED
        elif phase.is_auction and tif in (TimeInForce.IOC, TimeInForce.FOK):
            assert first.reason is Reason.NOT_DURING_AUCTION
        else:
            assert first.kind is ReportKind.NEW
            if phase.is_auction:
                assert len(events) == 1

    @rule(side=sides, away=st.integers(0, SPREAD), qty=quantities, gtc=st.booleans())
    def passive(self, side: Side, away: int, qty: int, gtc: bool) -> None:
        """A DAY or GTC limit on its own side of the mid: what builds a book to trade with."""
        phase = self.book.phase
        px = INST.from_ticks(MID - away if side is BUY else MID + away)
        tif = TimeInForce.GTC if gtc else TimeInForce.DAY
        events = self.engine.submit("p", "AU", side, qty, px, tif)
        self.apply(events)
        first = self.first_report(events)
        expected = ReportKind.REJECTED if phase is Phase.CLOSED else ReportKind.NEW
        assert first.kind is expected

    @rule(side=sides, qty=quantities)
    def market(self, side: Side, qty: int) -> None:
        phase = self.book.phase
        events = self.engine.submit("t", "AU", side, qty, None)
        self.apply(events)
        first = self.first_report(events)
        if phase is Phase.CLOSED:
            assert first.reason is Reason.MARKET_CLOSED
        elif phase.is_auction:
            assert first.reason is Reason.NOT_DURING_AUCTION
        else:
            assert first.order is not None
            assert first.order.state in (OrderState.FILLED, OrderState.CANCELED)

    @rule(pick=picks)
    def cancel(self, pick: tuple[str, int]) -> None:
        known = self.pick(pick)
        expected_live = known is not None and known.order.state is OrderState.WORKING
        order_id = known.order.order_id if known is not None else 1_000_000
        events = self.engine.cancel(order_id)
        self.apply(events)
        (report,) = events
        assert isinstance(report, Report)
        if expected_live:
            assert (report.kind, report.reason) == (ReportKind.CANCELED, Reason.REQUESTED)
        elif known is None:
            assert (report.kind, report.reason) == (
                ReportKind.CANCEL_REJECTED,
                Reason.UNKNOWN_ORDER,
            )
        else:
            assert (report.kind, report.reason) == (ReportKind.CANCEL_REJECTED, Reason.ORDER_DONE)

    @rule(pick=picks, delta=st.integers(-10, 10), offset=st.one_of(st.none(), offsets))
    def replace(self, pick: tuple[str, int], delta: int, offset: int | None) -> None:
        """Change an order's quantity by ``delta`` and its price to ``offset`` (None: keep it).

        The ledger predicts the outcome, and the order's place in its queue: a new price or
        a larger quantity sends it to the back, a smaller quantity alone keeps its place.
        """
        known = self.pick(pick)
        order = known.order if known is not None else None
        order_id = order.order_id if order is not None else 1_000_000
        old_qty = order.qty if order is not None else 5
        old_px = order.price if order is not None and order.price is not None else MID
        qty = max(1, old_qty + delta)
        ticks = old_px if offset is None else MID + offset
        old_seq = order.seq if order is not None else 0
        last_seq = max((e.order.seq for e in self.ledger.values()), default=0)
        if known is None:
            expected = Reason.UNKNOWN_ORDER
        elif known.order.state is not OrderState.WORKING:
            expected = Reason.ORDER_DONE
        elif qty > MAX_QTY:
            expected = Reason.QUANTITY_TOO_LARGE
        elif qty <= known.cum:
            expected = Reason.BELOW_FILLED
        elif self.book.phase is Phase.CLOSED:
            expected = Reason.MARKET_CLOSED
        else:
            expected = None

        events = self.engine.replace(order_id, qty, INST.from_ticks(ticks))

        self.apply(events)
        first = self.first_report(events)
        if expected is not None:
            assert (first.kind, first.reason) == (ReportKind.REPLACE_REJECTED, expected)
            assert len(events) == 1
            return
        assert order is not None
        assert first.kind is ReportKind.REPLACED
        assert (order.qty, order.price) == (qty, ticks)
        if ticks != old_px or qty > old_qty:
            if order.state is OrderState.WORKING:
                assert order.seq > last_seq  # the newest arrival at its price
        else:
            assert len(events) == 1  # nothing to trade against that it did not face before
            assert order.seq == old_seq

    @rule(jump=st.one_of(st.none(), st.sampled_from(list(Phase))))
    def set_phase(self, jump: Phase | None) -> None:
        """The next phase of the trading day, or (``jump``) any phase at all."""
        before = self.book.phase
        phase = NEXT_PHASE[before] if jump is None else jump
        found = self.engine.auction_price("AU") if before.is_auction else None
        events = self.engine.set_phase(phase)
        self.apply(events)
        assert self.book.phase is phase
        trades = [e for e in events if isinstance(e, Report) and e.kind is ReportKind.TRADE]
        if before.is_auction and not phase.is_auction and found is not None:
            px, volume, _ = found
            assert {r.last_px for r in trades} == {px}
            assert sum(r.last_qty for r in trades) == 2 * volume
            assert self.book.last_uncross == (px, volume)
        else:
            assert trades == []
        if phase is Phase.CLOSED:
            assert all(o.tif is TimeInForce.GTC for o in self.book.orders())

    # -- the ledger ------------------------------------------------------------------------

    def pick(self, pick: tuple[str, int]) -> Ledger | None:
        """Mostly a working order (what traders cancel and replace), sometimes any known
        order (a finished one must be refused), sometimes an unknown id (None)."""
        kind, index = pick
        working = [e for e in self.ledger.values() if e.order.state is OrderState.WORKING]
        pool = working if kind == "working" and working else list(self.ledger.values())
        if kind == "unknown" or not pool:
            return None
        return pool[index % len(pool)]

    @staticmethod
    def first_report(events: list[Event]) -> Report:
        first = events[0]
        assert isinstance(first, Report)
        return first

    def apply(self, events: list[Event]) -> None:
        """Post the events to the ledger, checking each report against it as it goes."""
        trades: dict[int, list[Report]] = {}
        prints: dict[int, list[TradePrint]] = {}
        for e in events:
            if isinstance(e, TradePrint):
                assert e.symbol == "AU"
                prints.setdefault(e.match_id, []).append(e)
                continue
            if e.kind in (ReportKind.CANCEL_REJECTED, ReportKind.REPLACE_REJECTED):
                continue
            order = e.order
            assert order is not None
            if e.kind is ReportKind.NEW:
                assert order.order_id not in self.ledger
                self.ledger[order.order_id] = Ledger(order, order.qty, order.qty)
            elif e.kind is ReportKind.REJECTED:
                assert order.order_id not in self.ledger
                self.ledger[order.order_id] = Ledger(order, order.qty, 0, gone=order.qty)
            else:
                entry = self.ledger[order.order_id]
                if e.kind is ReportKind.TRADE:
                    entry.cum += e.last_qty
                    entry.leaves -= e.last_qty
                    entry.notional += e.last_px * e.last_qty
                    entry.fills.append((e.last_px, e.last_qty))
                    trades.setdefault(e.match_id, []).append(e)
                    limit = order.price
                    if limit is not None:  # never worse than the limit
                        ok = e.last_px <= limit if order.side is BUY else e.last_px >= limit
                        assert ok, (e, order)
                elif e.kind in (ReportKind.CANCELED, ReportKind.EXPIRED):
                    assert entry.leaves > 0
                    entry.gone += entry.leaves
                    entry.leaves = 0
                else:
                    assert e.kind is ReportKind.REPLACED
                    entry.qty = order.qty
                    entry.leaves = order.qty - entry.cum
            entry = self.ledger[order.order_id]
            assert (e.cum, e.leaves, e.notional) == (entry.cum, entry.leaves, entry.notional)
        # each match: one buy fill and one sell fill of equal size and price, and one print
        assert trades.keys() == prints.keys()
        for match_id, pair in trades.items():
            assert len(pair) == 2
            buy, sell = sorted(pair, key=lambda r: r.order.side.value if r.order else "")
            assert buy.order is not None and sell.order is not None
            assert (buy.order.side, sell.order.side) == (BUY, SELL)
            assert (buy.last_px, buy.last_qty) == (sell.last_px, sell.last_qty)
            assert buy.last_qty > 0
            (trade_print,) = prints[match_id]
            assert (trade_print.price, trade_print.qty) == (buy.last_px, buy.last_qty)
            takers = [r.order.side for r in pair if r.aggressor and r.order]
            assert takers == ([] if trade_print.aggressor is None else [trade_print.aggressor])
        assert all(m > self.matches for m in trades)
        self.matches = max([self.matches, *trades])

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def book_is_uncrossed_outside_auctions(self) -> None:
        if not self.book.phase.is_auction:
            assert not self.book.is_crossed()

    @invariant()
    def levels_are_consistent(self) -> None:
        book = self.book
        assert book.bid_keys == sorted(book.bids)
        assert book.ask_keys == sorted(-px for px in book.asks)
        assert all(book.bids.values()) and all(book.asks.values())  # no empty level

    @invariant()
    def each_level_is_fifo_of_working_orders_at_its_price(self) -> None:
        for side, levels in ((BUY, self.book.bids), (SELL, self.book.asks)):
            for px, queue in levels.items():
                seqs = [o.seq for o in queue]
                assert all(a < b for a, b in itertools.pairwise(seqs)), seqs
                for o in queue:
                    assert (o.side, o.price, o.state) == (side, px, OrderState.WORKING)
                    assert o.leaves > 0

    @invariant()
    def resting_orders_are_exactly_the_working_ones(self) -> None:
        resting = [o.order_id for o in self.book.orders()]
        assert len(resting) == len(set(resting))
        working = [oid for oid, e in self.ledger.items() if e.order.state is OrderState.WORKING]
        assert sorted(resting) == sorted(working)

    @invariant()
    def quantities_are_conserved(self) -> None:
        assert self.engine.orders.keys() == self.ledger.keys()
        for entry in self.ledger.values():
            o = entry.order
            assert o.qty == entry.qty == o.cum + o.leaves + entry.gone
            assert (o.cum, o.leaves, o.notional) == (entry.cum, entry.leaves, entry.notional)
            assert o.cum == sum(q for _, q in entry.fills)
            assert o.notional == sum(px * q for px, q in entry.fills)
            assert (o.state is OrderState.FILLED) == (o.cum == o.qty and entry.gone == 0)

    @invariant()
    def only_priced_day_and_gtc_orders_rest_and_fok_is_all_or_nothing(self) -> None:
        for entry in self.ledger.values():
            o = entry.order
            if o.state is OrderState.WORKING:
                assert o.price is not None
                assert o.tif in (TimeInForce.DAY, TimeInForce.GTC)
            if o.tif is TimeInForce.FOK:
                assert o.cum in (0, o.qty)


MatchingMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=60, deadline=None, print_blob=True
)
TestMatchingMachine = MatchingMachine.TestCase
