"""No stream of orders, intents, fills and prices takes exposure past a limit.

A hypothesis state machine drives the risk engine as the OMS would: every order (a client's,
a strategy's leg, a top-up) goes through ``check_order`` and is counted only if it passed;
an intent that passed must see both its legs pass; fills land on working orders in any
amount up to what is left, at any price; orders finish at any time; marks move.

The test keeps its own books (positions, working orders, marks) from what it sent, never
from the engine's, and checks after every step:

* quantity: for each contract, the worst long (position + working buys) and worst short
  (working sells - position) never exceed the net limit, nor their sum the gross limit;
* notional and margin, valued at the marks: an order that passed never leaves the contract's
  notional, the gross notional across contracts or a venue's margin above its limit, unless
  the order did not increase it (a move of the mark can carry exposure past a notional limit
  with no order at all; from there only orders that do not add to it pass);
* the engine's own exposure figures agree with the test's.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import Decimal

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from oms.commands import SendOrder
from oms.enums import OrderType, Side, TimeInForce
from oms.instruments import Instrument
from oms.risk import IntentFacts, LegFacts, OrderContext, Origin, RiskConfig, RiskEngine

D = Decimal
T0 = 1_700_000_000_000_000_000

AU = Instrument(
    venue="SHFE",
    symbol="AU",
    currency="CNY",
    tick=D("0.02"),
    contract_size=D(1000),
    contract_unit="g",
)
GC = Instrument(
    venue="COMEX",
    symbol="GC",
    currency="USD",
    tick=D("0.1"),
    contract_size=D(100),
    contract_unit="troy_oz",
)
CONTRACTS = (AU, GC)
MULT = {AU.symbol: D(140), GC.symbol: D(100)}  # base-currency notional per price unit, per lot
START_MID_TICKS = {AU.symbol: 28_001, GC.symbol: 24_001}  # 560.02 and 2400.1

MARGIN_RATE = D("0.1")


@dataclass(frozen=True)
class Limits:
    """One draw of the limits: any of them may be off, so that each binds in some runs."""

    net: int
    gross: int | None
    notional: dict[str, Decimal | None]
    gross_notional: Decimal | None
    shfe_margin: Decimal | None  # CNY

    def config(self) -> RiskConfig:
        defaults: dict[str, object] = {"max_net_position": self.net, "max_qty": 8}
        if self.gross is not None:
            defaults["max_gross_position"] = self.gross
        shfe: dict[str, object] = {}
        if self.shfe_margin is not None:
            shfe = {"margin_rate": str(MARGIN_RATE), "margin_available": str(self.shfe_margin)}
        raw: dict[str, object] = {
            "fx": {"CNY": "0.14"},
            "defaults": defaults,
            "venues": {"SHFE": shfe},
            "instruments": {
                inst.venue: {inst.symbol: {"max_position_notional": str(limit)}}
                for inst in CONTRACTS
                if (limit := self.notional[inst.symbol]) is not None
            },
        }
        if self.gross_notional is not None:
            raw["max_gross_notional"] = str(self.gross_notional)
        return RiskConfig.model_validate(raw)


def _money(*choices: int) -> st.SearchStrategy[Decimal | None]:
    return st.none() | st.sampled_from([D(c) for c in choices])


LIMITS = st.builds(
    Limits,
    net=st.integers(1, 12),
    gross=st.none() | st.integers(1, 20),
    notional=st.fixed_dictionaries(
        {
            "AU": _money(300_000, 700_000, 1_000_000),  # one AU lot: about 78,400 USD
            "GC": _money(700_000, 2_000_000, 3_000_000),  # one GC lot: about 240,000 USD
        }
    ),
    gross_notional=_money(1_000_000, 3_000_000, 5_000_000),
    shfe_margin=_money(200_000, 600_000),  # one AU lot: about 56,000 CNY
)
CONTEXTS = (
    OrderContext(Origin.CLIENT),
    OrderContext(Origin.ENTRY, "GOLD"),
    OrderContext(Origin.TOP_UP, "GOLD"),
    OrderContext(Origin.UNWIND, "GOLD"),
)


@dataclass
class Shadow:
    """The test's own view of one working order."""

    inst: Instrument
    buy: bool
    leaves: int
    price: Decimal


class RiskStream(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.ids = itertools.count(1)
        self.now = T0
        self.position = {i.symbol: 0 for i in CONTRACTS}
        self.working: dict[str, Shadow] = {}
        self.mid_ticks = dict(START_MID_TICKS)

    @initialize(limits=LIMITS)
    def start(self, limits: Limits) -> None:
        self.limits = limits
        self.engine = RiskEngine(limits.config(), {(i.venue, i.symbol): i for i in CONTRACTS})
        self.engine.on_session("SHFE", True)
        self.engine.on_session("COMEX", True)
        for inst in CONTRACTS:
            self._quote(inst)

    # -- the test's own arithmetic ---------------------------------------------------------

    def _quote(self, inst: Instrument) -> None:
        mid = self.mid_ticks[inst.symbol]
        bid, ask = inst.tick * (mid - 1), inst.tick * (mid + 1)
        self.engine.on_market(inst.venue, inst.symbol, bid, ask, None, self.now)

    def mark(self, inst: Instrument) -> Decimal:
        return inst.tick * self.mid_ticks[inst.symbol]

    def sides(self, inst: Instrument) -> tuple[int, int]:
        """(worst long, worst short) counting every working order."""
        buys = sum(w.leaves for w in self.working.values() if w.inst is inst and w.buy)
        sells = sum(w.leaves for w in self.working.values() if w.inst is inst and not w.buy)
        pos = self.position[inst.symbol]
        return pos + buys, sells - pos

    def notional(self, inst: Instrument) -> Decimal:
        long, short = self.sides(inst)
        return max(long, short, 0) * self.mark(inst) * MULT[inst.symbol]

    def gross_notional(self) -> Decimal:
        total = D(0)
        for inst in CONTRACTS:
            long, short = self.sides(inst)
            total += (max(long, 0) + max(short, 0)) * self.mark(inst) * MULT[inst.symbol]
        return total

    def shfe_margin(self) -> Decimal:
        long, short = self.sides(AU)
        return max(long, short, 0) * self.mark(AU) * AU.contract_size * MARGIN_RATE

    def figures(self) -> list[Decimal]:
        return [self.notional(AU), self.notional(GC), self.gross_notional(), self.shfe_margin()]

    def assert_valued_limits(self, before: list[Decimal]) -> None:
        after = self.figures()
        lim = self.limits
        limits = [lim.notional["AU"], lim.notional["GC"], lim.gross_notional, lim.shfe_margin]
        for b, a, limit in zip(before, after, limits, strict=True):
            assert limit is None or a <= limit or a <= b, (b, a, limit)

    def _send(self, o: SendOrder, ctx: OrderContext) -> None:
        self.engine.on_order_sent(o, ctx, self.now)
        inst = AU if o.symbol == "AU" else GC
        assert o.price is not None
        self.working[o.clordid] = Shadow(inst, o.side is Side.BUY, o.qty, o.price)

    def _order(self, inst: Instrument, buy: bool, qty: int, price: Decimal) -> SendOrder:
        return SendOrder(
            venue=inst.venue,
            clordid=f"P{next(self.ids)}",
            symbol=inst.symbol,
            side=Side.BUY if buy else Side.SELL,
            qty=qty,
            ord_type=OrderType.LIMIT,
            price=price,
            tif=TimeInForce.IOC,
            account=None,
            created_ns=self.now,
        )

    # -- what happens ----------------------------------------------------------------------

    @rule(
        inst=st.sampled_from(CONTRACTS),
        buy=st.booleans(),
        qty=st.integers(1, 8),
        offset=st.integers(-3, 3),
        ctx=st.sampled_from(CONTEXTS),
    )
    def order(self, inst: Instrument, buy: bool, qty: int, offset: int, ctx: OrderContext) -> None:
        price = inst.tick * (self.mid_ticks[inst.symbol] + offset)
        o = self._order(inst, buy, qty, price)
        before = self.figures()
        if self.engine.check_order(o, ctx, self.now).passed:
            self._send(o, ctx)
            self.assert_valued_limits(before)

    @rule(
        inner_qty=st.integers(1, 8),
        outer_qty=st.integers(1, 4),
        buy_inner=st.booleans(),
        pay_up=st.integers(0, 3),
    )
    def intent(self, inner_qty: int, outer_qty: int, buy_inner: bool, pay_up: int) -> None:
        inner_px = AU.tick * (self.mid_ticks["AU"] + (1 if buy_inner else -1))
        outer_px = GC.tick * (self.mid_ticks["GC"] + (-1 if buy_inner else 1))
        side = Side.BUY if buy_inner else Side.SELL
        facts = IntentFacts(
            "GOLD",
            LegFacts("SHFE", "AU", side, inner_qty, inner_px),
            LegFacts("COMEX", "GC", side.opposite, outer_qty, outer_px),
            max_pay_up_ticks=pay_up,
        )
        before = self.figures()
        if not self.engine.check_intent(facts, self.now).passed:
            return
        ctx = CONTEXTS[1]
        legs = [
            self._order(AU, buy_inner, inner_qty, inner_px),
            self._order(GC, not buy_inner, outer_qty, outer_px),
        ]
        for leg in legs:
            verdict = self.engine.check_order(leg, ctx, self.now)
            assert verdict.passed, f"an intent passed but its leg did not: {verdict}"
            self._send(leg, ctx)
        self.assert_valued_limits(before)

    @precondition(lambda self: bool(self.working))
    @rule(data=st.data())
    def fill(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.working)))
        w = self.working[key]
        qty = data.draw(st.integers(1, w.leaves))
        away = data.draw(st.integers(-5, 5))
        price = w.price + w.inst.tick * away
        self.engine.on_fill(
            key, w.inst.venue, w.inst.symbol, Side.BUY if w.buy else Side.SELL, qty, price, self.now
        )
        w.leaves -= qty
        self.position[w.inst.symbol] += qty if w.buy else -qty
        if w.leaves == 0:
            self.engine.on_order_done(key)
            del self.working[key]

    @precondition(lambda self: bool(self.working))
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.working)))
        self.engine.on_order_done(key)
        del self.working[key]

    @rule(inst=st.sampled_from(CONTRACTS), move=st.integers(-400, 400))
    def mark_moves(self, inst: Instrument, move: int) -> None:
        start = START_MID_TICKS[inst.symbol]
        self.mid_ticks[inst.symbol] = min(
            max(self.mid_ticks[inst.symbol] + move, start * 9 // 10), start * 11 // 10
        )
        self.now += 1_000_000
        self._quote(inst)

    # -- what must always hold -------------------------------------------------------------

    @invariant()
    def positions_within_limits(self) -> None:
        for inst in CONTRACTS:
            long, short = self.sides(inst)
            net, gross = self.limits.net, self.limits.gross
            assert long <= net and short <= net, (inst.symbol, long, short, net)
            gross_now = max(long, 0) + max(short, 0)
            assert gross is None or gross_now <= gross, (inst.symbol, long, short, gross)

    @invariant()
    def engine_agrees(self) -> None:
        for inst in CONTRACTS:
            pos, buys, sells = self.engine.exposure(inst.venue, inst.symbol)
            long, short = self.sides(inst)
            assert (pos, pos + buys, sells - pos) == (self.position[inst.symbol], long, short)
        assert self.engine.ledger.gross_notional == self.gross_notional()
        if self.limits.shfe_margin is not None:
            assert self.engine.venues["SHFE"].margin_used == self.shfe_margin()
        assert self.engine.ledger.open_orders == len(self.working)


RiskStream.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRiskStream = RiskStream.TestCase
