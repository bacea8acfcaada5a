"""The call auction on hand-worked books.

Each test carries its worked table: for every candidate price p, demand = buy quantity with
limit >= p, supply = sell quantity with limit <= p, volume = min(demand, supply) and
imbalance = |demand - supply|. The uncross price has the largest volume; ties go to the
smallest imbalance, then to the price nearest the previous close, then to the lower price.
Prices are whole yuan (tick 1) so that the tables read as they are computed.
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

BUY, SELL = Side.BUY, Side.SELL
DAY, GTC = TimeInForce.DAY, TimeInForce.GTC


def engine(prev_close: int | None, phase: Phase = Phase.OPENING_AUCTION) -> MatchingEngine:
    inst = Instrument(
        venue="SIM",
        symbol="AG",
        currency="CNY",
        tick=Decimal(1),
        prev_close=None if prev_close is None else Decimal(prev_close),
    )
    return MatchingEngine([inst], phase=phase, clock=itertools.count(1).__next__)


def order(eng: MatchingEngine, side: Side, qty: int, price: int, tif: TimeInForce = DAY) -> Order:
    """Enter a limit order that must be accepted without trading, and return it."""
    events = eng.submit("trader", "AG", side, qty, Decimal(price), tif)
    assert [e.kind for e in events if isinstance(e, Report)] == [ReportKind.NEW]
    return first_order(events)


def first_order(events: list[Event]) -> Order:
    """The order of the first event: the one a command was about."""
    first = events[0]
    assert isinstance(first, Report) and first.order is not None
    return first.order


def trades(events: list[Event]) -> list[tuple[int, int, int, int]]:
    """One (buy order id, sell order id, price, qty) per match, in match order."""
    by_match: dict[int, dict[Side, Report]] = {}
    for e in events:
        if isinstance(e, Report) and e.kind is ReportKind.TRADE:
            assert e.order is not None
            by_match.setdefault(e.match_id, {})[e.order.side] = e
    out = []
    for pair in by_match.values():
        b, s = pair[BUY], pair[SELL]
        assert (b.last_px, b.last_qty) == (s.last_px, s.last_qty)
        assert b.order is not None and s.order is not None
        out.append((b.order.order_id, s.order.order_id, b.last_px, b.last_qty))
    return out


def uncross(eng: MatchingEngine, phase: Phase = Phase.CONTINUOUS) -> list[Event]:
    """Leave the auction, and check what must hold after any uncross."""
    events = eng.set_phase(phase)
    book = eng.books["AG"]
    assert not book.is_crossed()
    assert book.phase is phase
    return events


# Example A: one price clearly maximises volume.
#
#   orders (arrival order)      price | demand | supply | volume | imbalance
#   B1 buy  10 @ 102              99  |   45   |   12   |   12   |    33
#   B2 buy  15 @ 101             100  |   45   |   22   |   22   |    23
#   B3 buy  20 @ 100             101  |   25   |   47   |   25   |    22   <- max volume
#   S1 sell 12 @  99             102  |   10   |   47   |   10   |    37
#   S2 sell 10 @ 100
#   S3 sell 20 @ 101            matches at 101, best price first, then time:
#   S4 sell  5 @ 101              B1-S1 10, B2-S1 2, B2-S2 10, B2-S3 3 (= 25)
#
# The previous close (100) does not matter: volume alone decides.


def example_a(eng: MatchingEngine) -> dict[str, Order]:
    return {
        "B1": order(eng, BUY, 10, 102),
        "B2": order(eng, BUY, 15, 101),
        "B3": order(eng, BUY, 20, 100),
        "S1": order(eng, SELL, 12, 99),
        "S2": order(eng, SELL, 10, 100),
        "S3": order(eng, SELL, 20, 101),
        "S4": order(eng, SELL, 5, 101),
    }


def test_uncross_at_the_price_of_maximum_volume() -> None:
    eng = engine(prev_close=100)
    o = example_a(eng)
    assert eng.auction_price("AG") == (101, 25, 22)
    assert eng.books["AG"].is_crossed()  # orders collect without trading

    events = uncross(eng)

    ids = {name: x.order_id for name, x in o.items()}
    assert trades(events) == [
        (ids["B1"], ids["S1"], 101, 10),
        (ids["B2"], ids["S1"], 101, 2),
        (ids["B2"], ids["S2"], 101, 10),
        (ids["B2"], ids["S3"], 101, 3),
    ]
    assert eng.books["AG"].last_uncross == (101, 25)
    assert [(x.cum, x.leaves) for x in o.values()] == [
        (10, 0),
        (15, 0),
        (0, 20),
        (12, 0),
        (10, 0),
        (3, 17),
        (0, 5),
    ]
    book = eng.books["AG"]
    assert book.depth(BUY, 5) == [(100, 20, 1)]
    assert book.depth(SELL, 5) == [(101, 22, 2)]


def test_every_matched_order_fills_at_the_single_uncross_price() -> None:
    eng = engine(prev_close=100)
    o = example_a(eng)

    events = uncross(eng)

    fills = [e for e in events if isinstance(e, Report)]
    assert {e.kind for e in fills} == {ReportKind.TRADE}
    assert {e.last_px for e in fills} == {101}
    assert not any(e.aggressor for e in fills)
    prints = [e for e in events if isinstance(e, TradePrint)]
    assert [(p.price, p.qty, p.aggressor) for p in prints] == [
        (101, 10, None),
        (101, 2, None),
        (101, 10, None),
        (101, 3, None),
    ]
    # B1 would have paid 102 and S1 accepted 99: both get 101
    for name in ("B1", "B2", "S1", "S2", "S3"):
        assert o[name].notional == 101 * o[name].cum


def test_partly_filled_order_at_the_marginal_price_keeps_its_time_priority() -> None:
    eng = engine(prev_close=100)
    o = example_a(eng)
    uncross(eng)
    s3, s4 = o["S3"], o["S4"]
    assert list(eng.books["AG"].asks[101]) == [s3, s4]

    events = eng.submit("late", "AG", BUY, 18, Decimal(101))

    taker = first_order(events)
    assert trades(events) == [
        (taker.order_id, s3.order_id, 101, 17),
        (taker.order_id, s4.order_id, 101, 1),
    ]
    assert (s3.state, s4.leaves) == (OrderState.FILLED, 4)


# Example B: two prices tie on volume; the smaller imbalance wins, before the previous close.
#
#   orders                     price | demand | supply | volume | imbalance
#   B1 buy  20 @ 101            100  |   35   |   20   |   20   |    15
#   B2 buy  15 @ 100            101  |   20   |   30   |   20   |    10   <- smaller imbalance
#   S1 sell 20 @ 100
#   S2 sell 10 @ 101           the previous close is 100, which imbalance overrides.


def test_volume_tie_goes_to_the_smallest_imbalance() -> None:
    eng = engine(prev_close=100)
    b1 = order(eng, BUY, 20, 101)
    b2 = order(eng, BUY, 15, 100)
    s1 = order(eng, SELL, 20, 100)
    s2 = order(eng, SELL, 10, 101)
    assert eng.auction_price("AG") == (101, 20, 10)

    events = uncross(eng)

    assert trades(events) == [(b1.order_id, s1.order_id, 101, 20)]
    assert (b2.cum, s2.cum) == (0, 0)
    book = eng.books["AG"]
    assert (book.best_bid(), book.best_ask()) == (100, 101)


# Example C: volume and imbalance tie everywhere between the two limits; the previous close
# decides, even where no order has its limit (101 and 102 below).
#
#   orders                     price | demand | supply | volume | imbalance
#   B1 buy  10 @ 103            100  |   10   |   10   |   10   |     0
#   S1 sell 10 @ 100            101  |   10   |   10   |   10   |     0
#                               102  |   10   |   10   |   10   |     0
#                               103  |   10   |   10   |   10   |     0
#
#   previous close   95 -> 100 (nearest end)   101 -> 101   102 -> 102   110 -> 103


@pytest.mark.parametrize(
    ("prev_close", "price"), [(95, 100), (100, 100), (101, 101), (102, 102), (103, 103), (110, 103)]
)
def test_full_tie_goes_to_the_price_nearest_the_previous_close(prev_close: int, price: int) -> None:
    eng = engine(prev_close)
    b1 = order(eng, BUY, 10, 103)
    s1 = order(eng, SELL, 10, 100)
    assert eng.auction_price("AG") == (price, 10, 0)

    events = uncross(eng)

    assert trades(events) == [(b1.order_id, s1.order_id, price, 10)]
    assert (b1.notional, s1.notional) == (10 * price, 10 * price)
    assert list(eng.books["AG"].orders()) == []


# Example C2: a richer book where the previous close falls strictly between two limits.
#
#   orders                     price | demand | supply | volume | imbalance
#   B1 buy  10 @ 106            101  |   15   |   10   |   10   |     5
#   B2 buy   5 @ 102            102  |   15   |   10   |   10   |     5
#   S1 sell 10 @ 101            103  |   10   |   15   |   10   |     5
#   S2 sell  5 @ 103            104  |   10   |   15   |   10   |     5   <- previous close
#                               105  |   10   |   15   |   10   |     5
#                               106  |   10   |   15   |   10   |     5
#   (below 101 and above 106 nothing trades.) B1 and S1 match 10 at 104; B2 and S2 stay.


def test_previous_close_between_two_limit_prices_sets_the_price() -> None:
    eng = engine(prev_close=104)
    b1 = order(eng, BUY, 10, 106)
    b2 = order(eng, BUY, 5, 102)
    s1 = order(eng, SELL, 10, 101)
    s2 = order(eng, SELL, 5, 103)
    assert eng.auction_price("AG") == (104, 10, 5)

    events = uncross(eng)

    assert trades(events) == [(b1.order_id, s1.order_id, 104, 10)]
    book = eng.books["AG"]
    assert (book.best_bid(), book.best_ask()) == (102, 103)
    assert (b2.leaves, s2.leaves) == (5, 5)


# The final tie-break. With a previous close on the tick grid (the Instrument model insists on
# it), two tied prices are never equidistant from it: the prices that tie on volume and
# imbalance form one unbroken run of ticks (volume rises then falls with price, and the signed
# imbalance demand - supply only falls), so the close is either inside the run, where it wins
# alone, or beyond one end, which is then nearest. The lower-price rule therefore decides
# when there is no previous close at all: every price is then "equally near".
#
#   Example C's book, no previous close: 100, 101, 102 and 103 all tie -> 100, the lowest.


def test_without_a_previous_close_the_tie_goes_to_the_lower_price() -> None:
    eng = engine(prev_close=None)
    b1 = order(eng, BUY, 10, 103)
    s1 = order(eng, SELL, 10, 100)
    assert eng.auction_price("AG") == (100, 10, 0)

    events = uncross(eng)

    assert trades(events) == [(b1.order_id, s1.order_id, 100, 10)]


# Example C3: two limit prices, nothing between them, tied on volume and imbalance.
#
#   orders                     price | demand | supply | volume | imbalance
#   B1 buy  10 @ 101            100  |   20   |   10   |   10   |    10
#   B2 buy  10 @ 100            101  |   10   |   20   |   10   |    10
#   S1 sell 10 @ 100
#   S2 sell 10 @ 101           no previous close -> 100, the lower; B1-S1 10 at 100.


def test_without_a_previous_close_a_tie_between_two_limits_goes_to_the_lower() -> None:
    eng = engine(prev_close=None)
    b1 = order(eng, BUY, 10, 101)
    order(eng, BUY, 10, 100)
    s1 = order(eng, SELL, 10, 100)
    order(eng, SELL, 10, 101)
    assert eng.auction_price("AG") == (100, 10, 10)

    events = uncross(eng)

    assert trades(events) == [(b1.order_id, s1.order_id, 100, 10)]
    book = eng.books["AG"]
    assert (book.best_bid(), book.best_ask()) == (100, 101)


# No cross: the best bid is below the best ask, so volume is 0 at every price.
#
#   B1 buy 10 @ 99             price | demand | supply | volume
#   S1 sell 10 @ 100             99  |   10   |    0   |    0
#                               100  |    0   |   10   |    0


def test_no_cross_means_no_trades() -> None:
    eng = engine(prev_close=100)
    b1 = order(eng, BUY, 10, 99)
    s1 = order(eng, SELL, 10, 100)
    assert eng.auction_price("AG") is None

    assert uncross(eng) == []

    assert eng.books["AG"].last_uncross is None
    assert (b1.leaves, s1.leaves) == (10, 10)
    assert (b1.state, s1.state) == (OrderState.WORKING, OrderState.WORKING)


def test_empty_or_one_sided_book_has_no_auction_price() -> None:
    eng = engine(prev_close=100)
    assert eng.auction_price("AG") is None
    order(eng, BUY, 10, 120)
    assert eng.auction_price("AG") is None
    assert uncross(eng) == []


def test_opening_auction_hands_over_to_the_continuous_market() -> None:
    eng = engine(prev_close=100)
    o = example_a(eng)
    uncross(eng, Phase.CONTINUOUS)

    # the next order trades on arrival, at the resting price
    events = eng.submit("late", "AG", SELL, 5, Decimal(99))

    taker = first_order(events)
    assert trades(events) == [(o["B3"].order_id, taker.order_id, 100, 5)]


# Closing auction, then the close.
#
#   continuous: G1 buy GTC 5 @ 98, D0 sell DAY 10 @ 103, G2 sell GTC 3 @ 104
#   closing auction: B1 buy 10 @ 101, S1 sell 6 @ 100, S2 sell 8 @ 101 (all DAY)
#
#   price | demand | supply | volume | imbalance
#     98  |   15   |    0   |    0   |
#    100  |   10   |    6   |    6   |     4
#    101  |   10   |   14   |   10   |     4   <- max volume
#    103  |    0   |   24   |    0   |
#
#   B1-S1 6, B1-S2 4 at 101; then the close expires the DAY orders still working: S2 (4 left,
#   4 filled) and D0. The GTC orders G1 and G2 stay for the next session.


def test_closing_auction_uncrosses_then_the_close_expires_day_orders() -> None:
    eng = engine(prev_close=100, phase=Phase.CONTINUOUS)
    g1 = order(eng, BUY, 5, 98, GTC)
    d0 = order(eng, SELL, 10, 103)
    g2 = order(eng, SELL, 3, 104, GTC)
    assert eng.set_phase(Phase.CLOSING_AUCTION) == []
    b1 = order(eng, BUY, 10, 101)
    s1 = order(eng, SELL, 6, 100)
    s2 = order(eng, SELL, 8, 101)
    assert eng.auction_price("AG") == (101, 10, 4)

    events = uncross(eng, Phase.CLOSED)

    assert trades(events) == [
        (b1.order_id, s1.order_id, 101, 6),
        (b1.order_id, s2.order_id, 101, 4),
    ]
    expired = [e for e in events if isinstance(e, Report) and e.kind is ReportKind.EXPIRED]
    assert [(e.order, e.reason, e.cum, e.leaves) for e in expired] == [
        (s2, Reason.DAY_END, 4, 0),
        (d0, Reason.DAY_END, 0, 0),
    ]
    # every trade comes before the first expiry
    kinds = [e.kind for e in events if isinstance(e, Report)]
    assert kinds == [ReportKind.TRADE] * 4 + [ReportKind.EXPIRED] * 2
    assert (b1.state, s1.state, s2.state, d0.state) == (
        OrderState.FILLED,
        OrderState.FILLED,
        OrderState.EXPIRED,
        OrderState.EXPIRED,
    )
    assert list(eng.books["AG"].orders()) == [g1, g2]
    assert eng.books["AG"].last_uncross == (101, 10)
