"""The continuous-market rules of the matching engine, one named test per rule.

Each test builds the smallest book that can show its rule and checks the numbers a trader
would check: which order filled, at what price, how much, and what is left. The rules are
those of the matching document (see MISSION.md) and of ``sessions/simulator/matching.py``.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

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

DAY, GTC, IOC, FOK = TimeInForce.DAY, TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK
BUY, SELL = Side.BUY, Side.SELL

# Band: 10 % of 500.00 -> 450.00 .. 550.00. Max order 500 lots.
AU = Instrument(
    venue="SIM",
    symbol="AU",
    currency="CNY",
    tick=Decimal("0.05"),
    prev_close=Decimal("500.00"),
    price_band_pct=Decimal(10),
    max_order_qty=500,
)
# Lot of 5 contracts, no band, no maximum.
CU = Instrument(venue="SIM", symbol="CU", currency="CNY", tick=Decimal(10), lot=5)


def engine(phase: Phase = Phase.CONTINUOUS) -> MatchingEngine:
    return MatchingEngine([AU, CU], phase=phase, clock=itertools.count(1).__next__)


def t(price: str) -> int:
    """Ticks of an AU price: what the engine's books and reports hold."""
    return AU.to_ticks(Decimal(price))


def submit(
    eng: MatchingEngine,
    side: Side,
    qty: int,
    price: str | None,
    tif: TimeInForce = DAY,
    *,
    owner: str = "taker",
    symbol: str = "AU",
    max_fill: int | None = None,
    reject: Reason | None = None,
) -> list[Event]:
    px = None if price is None else Decimal(price)
    return eng.submit(owner, symbol, side, qty, px, tif, max_fill=max_fill, reject=reject)


def rest(eng: MatchingEngine, side: Side, qty: int, price: str, tif: TimeInForce = DAY) -> Order:
    """Enter an order that must rest untouched, and return it."""
    events = submit(eng, side, qty, price, tif, owner="maker")
    assert [e.kind for e in reports(events)] == [ReportKind.NEW]
    order = first_order(events)
    assert order.state is OrderState.WORKING
    return order


def reports(events: list[Event]) -> list[Report]:
    return [e for e in events if isinstance(e, Report)]


def first_order(events: list[Event]) -> Order:
    order = reports(events)[0].order
    assert order is not None
    return order


def fills(events: list[Event], order: Order) -> list[tuple[Decimal, int]]:
    """(price, quantity) of each fill of ``order`` in ``events``, in order."""
    return [
        (AU.from_ticks(r.last_px), r.last_qty)
        for r in reports(events)
        if r.kind is ReportKind.TRADE and r.order is order
    ]


def filled_orders(events: list[Event]) -> list[Order]:
    """The resting orders that traded, in the order they traded."""
    out = []
    for r in reports(events):
        if r.kind is ReportKind.TRADE and not r.aggressor:
            assert r.order is not None
            out.append(r.order)
    return out


def avg_px(order: Order) -> Decimal:
    return AU.tick * order.notional / order.cum


def three_asks(eng: MatchingEngine) -> tuple[Order, Order, Order]:
    """10 @ 500.00, 20 @ 500.05, 30 @ 500.10."""
    return (
        rest(eng, SELL, 10, "500.00"),
        rest(eng, SELL, 20, "500.05"),
        rest(eng, SELL, 30, "500.10"),
    )


# -- price and time priority ----------------------------------------------------------------


def test_price_priority_highest_bid_trades_first() -> None:
    eng = engine()
    low = rest(eng, BUY, 10, "499.00")
    high = rest(eng, BUY, 10, "500.00")
    mid = rest(eng, BUY, 10, "499.50")
    assert eng.books["AU"].depth(BUY, 3) == [
        (t("500.00"), 10, 1),
        (t("499.50"), 10, 1),
        (t("499.00"), 10, 1),
    ]

    first = submit(eng, SELL, 10, "499.00")
    second = submit(eng, SELL, 10, "499.00")

    assert filled_orders(first) == [high]
    assert fills(first, first_order(first)) == [(Decimal("500.00"), 10)]
    assert filled_orders(second) == [mid]
    assert fills(second, first_order(second)) == [(Decimal("499.50"), 10)]
    assert low.cum == 0
    assert eng.books["AU"].best_bid() == t("499.00")


def test_price_priority_lowest_ask_trades_first() -> None:
    eng = engine()
    high = rest(eng, SELL, 10, "501.00")
    low = rest(eng, SELL, 10, "500.00")
    mid = rest(eng, SELL, 10, "500.50")
    assert eng.books["AU"].depth(SELL, 3) == [
        (t("500.00"), 10, 1),
        (t("500.50"), 10, 1),
        (t("501.00"), 10, 1),
    ]

    first = submit(eng, BUY, 10, "501.00")
    second = submit(eng, BUY, 10, "501.00")

    assert filled_orders(first) == [low]
    assert fills(first, first_order(first)) == [(Decimal("500.00"), 10)]
    assert filled_orders(second) == [mid]
    assert fills(second, first_order(second)) == [(Decimal("500.50"), 10)]
    assert high.cum == 0
    assert eng.books["AU"].best_ask() == t("501.00")


def test_time_priority_first_arrival_at_a_price_fills_first() -> None:
    eng = engine()
    a = rest(eng, BUY, 10, "500.00")
    b = rest(eng, BUY, 10, "500.00")
    c = rest(eng, BUY, 10, "500.00")
    assert a.seq < b.seq < c.seq

    events = submit(eng, SELL, 15, "500.00")

    assert filled_orders(events) == [a, b]
    assert fills(events, a) == [(Decimal("500.00"), 10)]
    assert fills(events, b) == [(Decimal("500.00"), 5)]
    assert (a.state, a.cum, a.leaves) == (OrderState.FILLED, 10, 0)
    assert (b.state, b.cum, b.leaves) == (OrderState.WORKING, 5, 5)
    assert (c.cum, c.leaves) == (0, 10)
    assert list(eng.books["AU"].bids[t("500.00")]) == [b, c]

    # b, partly filled, keeps its place ahead of c
    assert filled_orders(submit(eng, SELL, 5, "500.00")) == [b]
    assert c.cum == 0


# -- crossing and the trade price ------------------------------------------------------------


@pytest.mark.parametrize("limit", ["500.00", "500.05", "503.00"])
def test_buy_at_or_above_best_ask_trades_at_the_resting_ask_price(limit: str) -> None:
    eng = engine()
    ask = rest(eng, SELL, 10, "500.00")

    events = submit(eng, BUY, 4, limit)

    taker = first_order(events)
    assert fills(events, taker) == [(Decimal("500.00"), 4)]
    assert fills(events, ask) == [(Decimal("500.00"), 4)]
    assert (taker.state, taker.cum, taker.leaves) == (OrderState.FILLED, 4, 0)
    assert avg_px(taker) == Decimal("500.00")
    prints = [e for e in events if isinstance(e, TradePrint)]
    assert [(p.price, p.qty, p.aggressor) for p in prints] == [(t("500.00"), 4, BUY)]


def test_buy_below_best_ask_does_not_trade_and_rests() -> None:
    eng = engine()
    rest(eng, SELL, 10, "500.00")
    bid = rest(eng, BUY, 10, "499.95")
    book = eng.books["AU"]
    assert (book.best_bid(), book.best_ask()) == (t("499.95"), t("500.00"))
    assert bid.cum == 0
    assert not book.is_crossed()


@pytest.mark.parametrize("limit", ["500.00", "499.95", "497.00"])
def test_sell_at_or_below_best_bid_trades_at_the_resting_bid_price(limit: str) -> None:
    eng = engine()
    bid = rest(eng, BUY, 10, "500.00")

    events = submit(eng, SELL, 4, limit)

    taker = first_order(events)
    assert fills(events, taker) == [(Decimal("500.00"), 4)]
    assert fills(events, bid) == [(Decimal("500.00"), 4)]
    assert (bid.cum, bid.leaves) == (4, 6)
    prints = [e for e in events if isinstance(e, TradePrint)]
    assert [(p.price, p.qty, p.aggressor) for p in prints] == [(t("500.00"), 4, SELL)]


def test_sell_above_best_bid_does_not_trade_and_rests() -> None:
    eng = engine()
    rest(eng, BUY, 10, "500.00")
    rest(eng, SELL, 10, "500.05")
    book = eng.books["AU"]
    assert (book.best_bid(), book.best_ask()) == (t("500.00"), t("500.05"))


# -- walking the book ----------------------------------------------------------------------


def test_large_buy_walks_level_after_level_until_filled() -> None:
    eng = engine()
    a1, a2, a3 = three_asks(eng)

    events = submit(eng, BUY, 45, "500.10")

    taker = first_order(events)
    assert fills(events, taker) == [
        (Decimal("500.00"), 10),
        (Decimal("500.05"), 20),
        (Decimal("500.10"), 15),
    ]
    taker_reports = [r for r in reports(events) if r.order is taker][1:]
    assert [(r.cum, r.leaves) for r in taker_reports] == [(10, 35), (30, 15), (45, 0)]
    assert filled_orders(events) == [a1, a2, a3]
    # (10 x 500.00 + 20 x 500.05 + 15 x 500.10) / 45 = 22502.50 / 45
    assert avg_px(taker) == Decimal("22502.50") / 45
    assert taker.state is OrderState.FILLED
    assert eng.books["AU"].depth(SELL, 5) == [(t("500.10"), 15, 1)]


def test_large_sell_walks_level_after_level_until_filled() -> None:
    eng = engine()
    b1 = rest(eng, BUY, 5, "500.00")
    b2 = rest(eng, BUY, 5, "499.90")
    b3 = rest(eng, BUY, 5, "499.80")

    events = submit(eng, SELL, 12, "499.80")

    taker = first_order(events)
    assert fills(events, taker) == [
        (Decimal("500.00"), 5),
        (Decimal("499.90"), 5),
        (Decimal("499.80"), 2),
    ]
    assert filled_orders(events) == [b1, b2, b3]
    assert avg_px(taker) == Decimal("5999.10") / 12
    assert eng.books["AU"].depth(BUY, 5) == [(t("499.80"), 3, 1)]


@pytest.mark.parametrize("tif", [DAY, GTC])
def test_walk_stops_at_the_limit_and_the_rest_rests(tif: TimeInForce) -> None:
    eng = engine()
    three_asks(eng)

    events = submit(eng, BUY, 50, "500.05", tif)

    taker = first_order(events)
    assert fills(events, taker) == [(Decimal("500.00"), 10), (Decimal("500.05"), 20)]
    assert not [r for r in reports(events) if r.kind is ReportKind.CANCELED]
    assert (taker.state, taker.cum, taker.leaves) == (OrderState.WORKING, 30, 20)
    book = eng.books["AU"]
    assert book.depth(BUY, 5) == [(t("500.05"), 20, 1)]
    assert book.depth(SELL, 5) == [(t("500.10"), 30, 1)]
    assert not book.is_crossed()


def test_walk_stops_at_the_limit_and_ioc_cancels_the_rest() -> None:
    eng = engine()
    three_asks(eng)

    events = submit(eng, BUY, 50, "500.05", IOC)

    taker = first_order(events)
    assert fills(events, taker) == [(Decimal("500.00"), 10), (Decimal("500.05"), 20)]
    last = reports(events)[-1]
    assert (last.kind, last.reason, last.cum, last.leaves) == (
        ReportKind.CANCELED,
        Reason.IOC_REMAINDER,
        30,
        0,
    )
    assert (taker.state, taker.cum, taker.leaves) == (OrderState.CANCELED, 30, 0)
    assert eng.books["AU"].best_bid() is None


# -- fill or kill ----------------------------------------------------------------------------


def test_fok_fills_in_full_when_the_limit_allows() -> None:
    eng = engine()
    three_asks(eng)

    events = submit(eng, BUY, 30, "500.05", FOK)

    taker = first_order(events)
    assert fills(events, taker) == [(Decimal("500.00"), 10), (Decimal("500.05"), 20)]
    assert (taker.state, taker.cum, taker.leaves) == (OrderState.FILLED, 30, 0)
    assert eng.books["AU"].depth(SELL, 5) == [(t("500.10"), 30, 1)]


def test_fok_is_killed_whole_when_its_limit_cannot_fill_it_in_full() -> None:
    eng = engine()
    three_asks(eng)  # 60 lots on offer, but only 30 at 500.05 or better

    events = submit(eng, BUY, 31, "500.05", FOK)

    taker = first_order(events)
    assert [(r.kind, r.reason) for r in reports(events)] == [
        (ReportKind.NEW, None),
        (ReportKind.CANCELED, Reason.FOK_UNFILLED),
    ]
    assert (taker.state, taker.cum, taker.leaves) == (OrderState.CANCELED, 0, 0)
    assert eng.books["AU"].depth(SELL, 5) == [
        (t("500.00"), 10, 1),
        (t("500.05"), 20, 1),
        (t("500.10"), 30, 1),
    ]


def test_fok_sell_is_killed_when_the_bids_fall_short() -> None:
    eng = engine()
    bid = rest(eng, BUY, 10, "500.00")

    events = submit(eng, SELL, 11, "499.00", FOK)

    assert [(r.kind, r.reason) for r in reports(events)][-1] == (
        ReportKind.CANCELED,
        Reason.FOK_UNFILLED,
    )
    assert bid.leaves == 10


# -- market orders ---------------------------------------------------------------------------


def test_market_buy_walks_every_level_and_cancels_what_is_left() -> None:
    eng = engine()
    three_asks(eng)

    events = submit(eng, BUY, 70, None)

    taker = first_order(events)
    assert taker.price is None
    assert fills(events, taker) == [
        (Decimal("500.00"), 10),
        (Decimal("500.05"), 20),
        (Decimal("500.10"), 30),
    ]
    last = reports(events)[-1]
    assert (last.kind, last.reason, last.cum, last.leaves) == (
        ReportKind.CANCELED,
        Reason.NO_LIQUIDITY,
        60,
        0,
    )
    assert taker.state is OrderState.CANCELED
    assert eng.books["AU"].best_ask() is None


def test_market_sell_fills_at_the_bids_prices() -> None:
    eng = engine()
    rest(eng, BUY, 10, "499.95")
    rest(eng, BUY, 10, "499.90")

    events = submit(eng, SELL, 15, None)

    taker = first_order(events)
    assert fills(events, taker) == [(Decimal("499.95"), 10), (Decimal("499.90"), 5)]
    assert taker.state is OrderState.FILLED
    assert not [r for r in reports(events) if r.kind is ReportKind.CANCELED]


def test_market_order_into_an_empty_side_is_cancelled_unfilled() -> None:
    eng = engine()
    rest(eng, BUY, 10, "499.95")

    events = submit(eng, BUY, 5, None)

    assert [(r.kind, r.reason, r.cum) for r in reports(events)] == [
        (ReportKind.NEW, None, 0),
        (ReportKind.CANCELED, Reason.NO_LIQUIDITY, 0),
    ]


# -- the book after fills -------------------------------------------------------------------


def test_an_emptied_level_disappears_and_the_next_becomes_best() -> None:
    eng = engine()
    three_asks(eng)
    book = eng.books["AU"]

    submit(eng, BUY, 10, "500.00")

    assert book.best_ask() == t("500.05")
    assert t("500.00") not in book.asks
    assert book.ask_keys == [-t("500.10"), -t("500.05")]
    assert book.depth(SELL, 3) == [(t("500.05"), 20, 1), (t("500.10"), 30, 1)]


def test_resting_quantity_falls_by_each_fill() -> None:
    eng = engine()
    maker = rest(eng, SELL, 100, "500.00")
    book = eng.books["AU"]

    seen: list[object] = []
    for qty in (30, 25, 45):
        events = submit(eng, BUY, qty, "500.00")
        (maker_report,) = [r for r in reports(events) if r.order is maker]
        seen.append((maker_report.last_qty, maker_report.cum, maker_report.leaves))
        seen.append(book.depth(SELL, 1))

    assert seen == [
        (30, 30, 70),
        [(t("500.00"), 70, 1)],
        (25, 55, 45),
        [(t("500.00"), 45, 1)],
        (45, 100, 0),
        [],
    ]
    assert maker.state is OrderState.FILLED


# -- validation ------------------------------------------------------------------------------


def assert_rejected(events: list[Event], reason: Reason) -> None:
    (report,) = reports(events)
    assert (report.kind, report.reason) == (ReportKind.REJECTED, reason)
    order = report.order
    assert order is not None
    assert (order.state, order.leaves, order.cum) == (OrderState.REJECTED, 0, 0)


@pytest.mark.parametrize("price", ["500.03", "500.001", "0", "-5.00"])
def test_price_off_the_tick_grid_is_rejected(price: str) -> None:
    eng = engine()
    assert_rejected(submit(eng, BUY, 1, price), Reason.OFF_TICK)
    assert eng.books["AU"].best_bid() is None


@pytest.mark.parametrize("qty", [7, 0, -5])
def test_quantity_not_a_positive_multiple_of_the_lot_is_rejected(qty: int) -> None:
    eng = engine()
    assert_rejected(submit(eng, BUY, qty, "70000", symbol="CU"), Reason.BAD_QUANTITY)
    assert eng.books["CU"].best_bid() is None


def test_quantity_a_multiple_of_the_lot_is_accepted() -> None:
    eng = engine()
    events = submit(eng, BUY, 15, "70000", symbol="CU")
    assert [r.kind for r in reports(events)] == [ReportKind.NEW]
    assert eng.books["CU"].depth(BUY, 1) == [(7000, 15, 1)]


def test_quantity_above_the_maximum_order_size_is_rejected() -> None:
    eng = engine()
    assert_rejected(submit(eng, BUY, 501, "500.00"), Reason.QUANTITY_TOO_LARGE)
    assert_rejected(submit(eng, BUY, 501, None), Reason.QUANTITY_TOO_LARGE)
    assert [r.kind for r in reports(submit(eng, BUY, 500, "500.00"))] == [ReportKind.NEW]


@pytest.mark.parametrize("price", ["449.95", "550.05", "600.00"])
def test_price_outside_the_daily_band_is_rejected(price: str) -> None:
    eng = engine()
    assert_rejected(submit(eng, SELL, 1, price), Reason.OUTSIDE_BAND)


@pytest.mark.parametrize("price", ["450.00", "550.00"])
def test_price_on_the_edge_of_the_daily_band_is_accepted(price: str) -> None:
    eng = engine()
    rest(eng, SELL, 1, price)


def test_unknown_symbol_is_rejected() -> None:
    eng = engine()
    assert_rejected(submit(eng, BUY, 1, "1.00", symbol="XX"), Reason.UNKNOWN_SYMBOL)


def test_injected_reject_comes_after_validation() -> None:
    eng = engine()
    assert_rejected(submit(eng, BUY, 1, "500.00", reject=Reason.INJECTED), Reason.INJECTED)
    assert_rejected(submit(eng, BUY, 1, "500.03", reject=Reason.INJECTED), Reason.OFF_TICK)


# -- cancel ----------------------------------------------------------------------------------


def test_cancel_of_a_working_order_removes_it_and_keeps_its_fills() -> None:
    eng = engine()
    bid = rest(eng, BUY, 10, "500.00")
    submit(eng, SELL, 3, "500.00")

    events = eng.cancel(bid.order_id)

    assert [(r.kind, r.reason, r.cum, r.leaves) for r in reports(events)] == [
        (ReportKind.CANCELED, Reason.REQUESTED, 3, 0)
    ]
    assert bid.state is OrderState.CANCELED
    book = eng.books["AU"]
    assert book.best_bid() is None
    assert t("500.00") not in book.bids
    assert book.bid_keys == []


def test_cancel_of_an_unknown_order_is_rejected() -> None:
    eng = engine()
    (report,) = reports(eng.cancel(999))
    assert (report.kind, report.reason, report.order) == (
        ReportKind.CANCEL_REJECTED,
        Reason.UNKNOWN_ORDER,
        None,
    )


@pytest.mark.parametrize("how", ["filled", "cancelled", "ioc_remainder", "rejected"])
def test_cancel_of_a_finished_order_is_rejected(how: str) -> None:
    eng = engine()
    if how == "filled":
        order = rest(eng, BUY, 10, "500.00")
        submit(eng, SELL, 10, "500.00")
    elif how == "cancelled":
        order = rest(eng, BUY, 10, "500.00")
        eng.cancel(order.order_id)
    elif how == "ioc_remainder":
        order = first_order(submit(eng, BUY, 10, "500.00", IOC))
    else:
        order = first_order(submit(eng, BUY, 10, "500.03"))
    state = order.state

    (report,) = reports(eng.cancel(order.order_id))

    assert (report.kind, report.reason, report.order) == (
        ReportKind.CANCEL_REJECTED,
        Reason.ORDER_DONE,
        order,
    )
    assert order.state is state


# -- replace ---------------------------------------------------------------------------------


def test_replace_to_a_new_price_loses_time_priority() -> None:
    eng = engine()
    early = rest(eng, BUY, 10, "499.95")
    late = rest(eng, BUY, 10, "500.00")

    (report,) = reports(eng.replace(early.order_id, 10, Decimal("500.00")))

    assert (report.kind, report.leaves) == (ReportKind.REPLACED, 10)
    assert early.price == t("500.00")
    assert list(eng.books["AU"].bids[t("500.00")]) == [late, early]
    assert filled_orders(submit(eng, SELL, 10, "500.00")) == [late]
    assert early.cum == 0


def test_replace_raising_the_quantity_loses_time_priority() -> None:
    eng = engine()
    a = rest(eng, BUY, 10, "500.00")
    b = rest(eng, BUY, 10, "500.00")

    (report,) = reports(eng.replace(a.order_id, 20, Decimal("500.00")))

    assert (report.kind, report.leaves) == (ReportKind.REPLACED, 20)
    assert list(eng.books["AU"].bids[t("500.00")]) == [b, a]
    events = submit(eng, SELL, 15, "500.00")
    assert filled_orders(events) == [b, a]
    assert fills(events, b) == [(Decimal("500.00"), 10)]
    assert (a.cum, a.leaves) == (5, 15)


def test_replace_reducing_the_quantity_keeps_time_priority() -> None:
    eng = engine()
    a = rest(eng, BUY, 10, "500.00")
    b = rest(eng, BUY, 10, "500.00")
    submit(eng, SELL, 3, "500.00")  # a: cum 3, leaves 7

    (report,) = reports(eng.replace(a.order_id, 5, Decimal("500.00")))

    assert (report.kind, report.cum, report.leaves) == (ReportKind.REPLACED, 3, 2)
    assert (a.qty, a.cum, a.leaves) == (5, 3, 2)
    assert list(eng.books["AU"].bids[t("500.00")]) == [a, b]
    assert eng.books["AU"].depth(BUY, 1) == [(t("500.00"), 12, 2)]
    events = submit(eng, SELL, 4, "500.00")
    assert filled_orders(events) == [a, b]
    assert fills(events, a) == [(Decimal("500.00"), 2)]
    assert a.state is OrderState.FILLED


@pytest.mark.parametrize("qty", [6, 5])
def test_replace_to_or_below_the_filled_quantity_is_rejected(qty: int) -> None:
    eng = engine()
    bid = rest(eng, BUY, 10, "500.00")
    submit(eng, SELL, 6, "500.00")

    (report,) = reports(eng.replace(bid.order_id, qty, Decimal("500.00")))

    assert (report.kind, report.reason) == (ReportKind.REPLACE_REJECTED, Reason.BELOW_FILLED)
    assert (bid.qty, bid.cum, bid.leaves, bid.state) == (10, 6, 4, OrderState.WORKING)
    (ok,) = reports(eng.replace(bid.order_id, 8, Decimal("500.00")))
    assert (ok.kind, ok.cum, ok.leaves) == (ReportKind.REPLACED, 6, 2)


def test_replace_to_a_crossing_price_trades_at_the_resting_prices() -> None:
    eng = engine()
    bid = rest(eng, BUY, 10, "499.95")
    a1 = rest(eng, SELL, 6, "500.05")
    a2 = rest(eng, SELL, 10, "500.10")

    events = eng.replace(bid.order_id, 10, Decimal("500.10"))

    assert reports(events)[0].kind is ReportKind.REPLACED
    assert fills(events, bid) == [(Decimal("500.05"), 6), (Decimal("500.10"), 4)]
    assert filled_orders(events) == [a1, a2]
    assert all(r.aggressor for r in reports(events) if r.order is bid and r.last_qty)
    assert [p.aggressor for p in events if isinstance(p, TradePrint)] == [BUY, BUY]
    assert bid.state is OrderState.FILLED
    assert avg_px(bid) == Decimal("5000.70") / 10
    assert eng.books["AU"].depth(SELL, 2) == [(t("500.10"), 6, 1)]
    assert eng.books["AU"].best_bid() is None


def test_replace_of_unknown_or_finished_orders_is_rejected() -> None:
    eng = engine()
    bid = rest(eng, BUY, 10, "500.00")
    submit(eng, SELL, 10, "500.00")

    (unknown,) = reports(eng.replace(999, 5, Decimal("500.00")))
    (done,) = reports(eng.replace(bid.order_id, 20, Decimal("500.00")))

    assert (unknown.kind, unknown.reason) == (ReportKind.REPLACE_REJECTED, Reason.UNKNOWN_ORDER)
    assert (done.kind, done.reason) == (ReportKind.REPLACE_REJECTED, Reason.ORDER_DONE)


def test_replace_of_an_order_rejected_for_its_symbol_is_rejected() -> None:
    eng = engine()
    order = first_order(submit(eng, BUY, 1, "1.00", symbol="XX"))

    (report,) = reports(eng.replace(order.order_id, 2, Decimal("1.00")))

    assert (report.kind, report.reason) == (ReportKind.REPLACE_REJECTED, Reason.ORDER_DONE)


@pytest.mark.parametrize(
    ("price", "reason"), [("500.03", Reason.OFF_TICK), ("551.00", Reason.OUTSIDE_BAND)]
)
def test_replace_to_an_invalid_price_is_rejected(price: str, reason: Reason) -> None:
    eng = engine()
    bid = rest(eng, BUY, 10, "500.00")

    (report,) = reports(eng.replace(bid.order_id, 10, Decimal(price)))

    assert (report.kind, report.reason) == (ReportKind.REPLACE_REJECTED, reason)
    assert bid.price == t("500.00")


# -- trading phases --------------------------------------------------------------------------


def test_close_expires_day_orders_and_keeps_gtc_orders() -> None:
    eng = engine()
    day_bid = rest(eng, BUY, 10, "499.95")
    gtc_bid = rest(eng, BUY, 10, "499.90", GTC)
    day_ask = rest(eng, SELL, 10, "500.05")
    submit(eng, BUY, 4, "500.05")  # day_ask: cum 4, leaves 6

    events = eng.set_phase(Phase.CLOSED)

    assert len(events) == 2
    assert {first_order([r]).order_id: (r.kind, r.reason, r.cum) for r in reports(events)} == {
        day_bid.order_id: (ReportKind.EXPIRED, Reason.DAY_END, 0),
        day_ask.order_id: (ReportKind.EXPIRED, Reason.DAY_END, 4),
    }
    assert (day_bid.state, day_ask.state) == (OrderState.EXPIRED, OrderState.EXPIRED)
    assert (day_ask.cum, day_ask.leaves) == (4, 0)
    assert gtc_bid.state is OrderState.WORKING
    book = eng.books["AU"]
    assert list(book.orders()) == [gtc_bid]
    assert book.phase is Phase.CLOSED


def test_closed_market_rejects_new_orders_and_replaces_but_allows_cancels() -> None:
    eng = engine()
    gtc = rest(eng, BUY, 10, "499.90", GTC)
    eng.set_phase(Phase.CLOSED)

    assert_rejected(submit(eng, BUY, 1, "500.00", GTC), Reason.MARKET_CLOSED)
    assert_rejected(submit(eng, SELL, 1, None), Reason.MARKET_CLOSED)
    (replace,) = reports(eng.replace(gtc.order_id, 5, Decimal("499.90")))
    assert (replace.kind, replace.reason) == (ReportKind.REPLACE_REJECTED, Reason.MARKET_CLOSED)
    assert gtc.qty == 10

    (cancel,) = reports(eng.cancel(gtc.order_id))
    assert (cancel.kind, cancel.reason) == (ReportKind.CANCELED, Reason.REQUESTED)


def test_gtc_order_trades_again_when_the_market_reopens() -> None:
    eng = engine()
    gtc = rest(eng, BUY, 10, "499.90", GTC)
    eng.set_phase(Phase.CLOSED)
    eng.set_phase(Phase.CONTINUOUS)

    events = submit(eng, SELL, 10, "499.90")

    assert fills(events, gtc) == [(Decimal("499.90"), 10)]


@pytest.mark.parametrize("phase", [Phase.OPENING_AUCTION, Phase.CLOSING_AUCTION])
@pytest.mark.parametrize(("price", "tif"), [(None, DAY), ("500.00", IOC), ("500.00", FOK)])
def test_market_ioc_and_fok_are_refused_during_an_auction(
    phase: Phase, price: str | None, tif: TimeInForce
) -> None:
    eng = engine(phase)
    rest(eng, SELL, 10, "500.00")
    assert_rejected(submit(eng, BUY, 5, price, tif), Reason.NOT_DURING_AUCTION)


def test_limit_orders_collect_without_trading_during_an_auction() -> None:
    eng = engine(Phase.OPENING_AUCTION)
    ask = rest(eng, SELL, 10, "500.00")
    bid = rest(eng, BUY, 10, "500.05", GTC)
    assert eng.books["AU"].is_crossed()
    assert (ask.cum, bid.cum) == (0, 0)


# -- fault injection: max_fill ------------------------------------------------------------------


def test_max_fill_caps_the_fill_of_an_ioc_order() -> None:
    eng = engine()
    rest(eng, SELL, 10, "500.00")
    rest(eng, SELL, 20, "500.05")

    events = submit(eng, BUY, 30, "500.05", IOC, max_fill=15)

    taker = first_order(events)
    assert fills(events, taker) == [(Decimal("500.00"), 10), (Decimal("500.05"), 5)]
    assert (reports(events)[-1].kind, reports(events)[-1].reason) == (
        ReportKind.CANCELED,
        Reason.IOC_REMAINDER,
    )
    assert (taker.cum, taker.leaves) == (15, 0)
    assert eng.books["AU"].depth(SELL, 2) == [(t("500.05"), 15, 1)]


def test_max_fill_caps_the_fill_of_a_market_order() -> None:
    eng = engine()
    three_asks(eng)

    events = submit(eng, BUY, 30, None, max_fill=12)

    taker = first_order(events)
    assert fills(events, taker) == [(Decimal("500.00"), 10), (Decimal("500.05"), 2)]
    assert reports(events)[-1].reason is Reason.NO_LIQUIDITY
    assert taker.cum == 12


def test_max_fill_below_the_quantity_kills_a_fok_order() -> None:
    eng = engine()
    three_asks(eng)

    events = submit(eng, BUY, 30, "500.10", FOK, max_fill=29)

    assert reports(events)[-1].reason is Reason.FOK_UNFILLED
    assert first_order(events).cum == 0
    assert eng.books["AU"].depth(SELL, 1) == [(t("500.00"), 10, 1)]


def test_max_fill_on_a_day_order_cancels_a_remainder_that_would_still_cross() -> None:
    """A venue never rests a crossing order: a forced partial fill ends it instead."""
    eng = engine()
    rest(eng, SELL, 10, "500.00")
    rest(eng, SELL, 20, "500.05")

    events = submit(eng, BUY, 30, "500.05", DAY, max_fill=15)

    taker = first_order(events)
    assert fills(events, taker) == [(Decimal("500.00"), 10), (Decimal("500.05"), 5)]
    last = reports(events)[-1]
    assert (last.kind, last.reason) == (ReportKind.CANCELED, Reason.PARTIAL_FILL_REMAINDER)
    assert (taker.cum, taker.leaves) == (15, 0)
    assert not eng.books["AU"].is_crossed()
    assert eng.books["AU"].depth(BUY, 1) == []


def test_max_fill_on_a_day_order_rests_a_remainder_that_no_longer_crosses() -> None:
    eng = engine()
    rest(eng, SELL, 10, "500.00")
    rest(eng, SELL, 20, "500.10")

    events = submit(eng, BUY, 30, "500.05", DAY, max_fill=10)

    taker = first_order(events)
    assert fills(events, taker) == [(Decimal("500.00"), 10)]
    assert (taker.cum, taker.leaves) == (10, 20)
    assert eng.books["AU"].depth(BUY, 1) == [(t("500.05"), 20, 1)]
    assert not eng.books["AU"].is_crossed()
