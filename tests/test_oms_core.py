"""The OMS thread's decisions, fed typed events directly (no FIX, no threads).

The sessions are replaced by what they hand the OMS (events) and what the OMS hands them
(commands, collected in a list), so each test states exactly the order in which things
arrive, which is what the races below are about.
"""

from __future__ import annotations

from decimal import Decimal

from oms.enums import Side
from tests.oms_harness import Harness, orders


def test_a_spread_past_the_threshold_sends_both_legs_in_ratio() -> None:
    h = Harness()
    h.book("INNER", "AU", [("559.90", 50)], [("560.00", 50)])  # 560.00 = 2402.475 USD/oz
    h.book("OUTER", "GC", [("2406.0", 20)], [("2410.0", 20)])
    sent = orders(h)
    assert [(o.venue, o.side, o.qty, o.price) for o in sent] == [
        ("INNER", Side.BUY, 28, Decimal("560.00")),
        ("OUTER", Side.SELL, 9, Decimal("2406.0")),
    ]
    assert h.oms.pairs["GOLD"].working is not None


def test_no_second_trade_on_a_book_that_still_shows_the_liquidity_just_taken() -> None:
    """The fills arrive before the venues' book updates: the stale books still show the
    outer bid just sold into, so trading again on them would sell into it twice."""
    h = Harness()
    h.book("INNER", "AU", [("559.90", 50)], [("560.00", 50)])
    h.book("OUTER", "GC", [("2406.0", 9)], [("2410.0", 20)])
    inner, outer = orders(h)
    h.fill_in_full(inner, "560.00")
    h.fill_in_full(outer, "2406.0")
    assert h.oms.pairs["GOLD"].working is None and h.oms.pairs["GOLD"].position == 1
    assert h.oms.market.books[("OUTER", "GC")].bids == {}  # our fill took the whole bid

    # Market data that came before our fills' effects: a change on the inner venue, the
    # outer book not yet updated by its venue. Nothing may be sent.
    h.book("INNER", "AU", [("559.90", 60)], [("560.00", 40)])  # deep enough for 28
    assert len(orders(h)) == 2


def test_no_second_trade_when_the_book_update_comes_before_the_fill_report() -> None:
    """The other order of arrival: the venue's update already removed what we took, and
    our fill is then taken out again: the view under-counts, which is the safe side."""
    h = Harness()
    h.book("INNER", "AU", [("559.90", 50)], [("560.00", 50)])
    h.book("OUTER", "GC", [("2406.0", 12)], [("2410.0", 20)])
    inner, outer = orders(h)
    h.book("OUTER", "GC", [("2406.0", 3)], [("2410.0", 20)])  # the venue's update first
    h.fill_in_full(inner, "560.00")
    h.fill_in_full(outer, "2406.0")
    assert h.oms.market.books[("OUTER", "GC")].bids == {}
    h.book("INNER", "AU", [("559.90", 60)], [("560.00", 40)])
    assert len(orders(h)) == 2


def test_a_second_trade_goes_only_on_the_liquidity_our_fills_left() -> None:
    h = Harness()
    h.book("INNER", "AU", [("559.90", 50)], [("560.00", 60)])
    h.book("OUTER", "GC", [("2406.0", 30)], [("2410.0", 20)])
    inner, outer = orders(h)
    h.fill_in_full(inner, "560.00")
    h.fill_in_full(outer, "2406.0")
    book_in, book_out = h.oms.market.books[("INNER", "AU")], h.oms.market.books[("OUTER", "GC")]
    assert book_in.asks == {Decimal("560.00"): 32} and book_out.bids == {Decimal("2406.0"): 21}
    # 32 and 21 lots are still there and the spread is still 3.5 USD/oz: the next market
    # data message may trade them (position 1 of 5).
    h.book("INNER", "AU", [("559.92", 50)], [("560.00", 32)])
    assert [(o.venue, o.qty) for o in orders(h)[2:]] == [("INNER", 28), ("OUTER", 9)]


def test_receipts_of_a_spread_trade_come_in_the_order_things_happened() -> None:
    h = Harness()
    h.book("INNER", "AU", [("559.90", 50)], [("560.00", 50)])
    h.book("OUTER", "GC", [("2406.0", 20)], [("2410.0", 20)])
    kinds = [r.kind for r in h.receipts]
    at = kinds.index("decision.spread_intent")
    assert kinds[at : at + 6] == [
        "decision.spread_intent",
        "decision.risk",  # the whole trade at its worst, then each leg before it was sent
        "decision.risk",
        "decision.risk",
        "command.send_order",
        "command.send_order",
    ]
    assert {h.receipts[at + i].verdict for i in (1, 2, 3)} == {"passed"}
    intent, send_a, send_b = (h.receipts[at + i] for i in (0, 4, 5))
    assert intent.ts_ns < send_a.ts_ns < send_b.ts_ns
    assert intent.cause_ns == send_a.cause_ns == send_b.cause_ns == h.receipts[at - 1].cause_ns
