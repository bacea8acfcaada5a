"""The two ways a spread trade's legs go out, over real FIX against two simulated venues.

Quote and hedge: the gateway rests a limit on the less liquid leg and hedges each of its
fills on the other leg, in ratio (28 AU lots : 9 GC lots, so 10 AU lots call for 3 GC lots,
and 14 for 5: the nearest whole lot, a half up). Simultaneous with limit legs: both legs
rest as day limits and are cancelled at their time-out; only the venue's confirmation of the
cancel settles what they filled. Either way the pair must end aligned on whole units, and the
venues' own records must agree with the OMS.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from oms.clock import now_ns
from oms.core import Oms
from oms.enums import Side
from oms.market import Book
from oms.pair_engine import hedge_lots, passive_price
from oms.pairs import Direction, SpreadPair, TradeOutcome
from oms.receipts import ReceiptStore
from sessions.demo import gateway_config
from sessions.gateway import Gateway
from sessions.simulator.client import FixClient
from sessions.simulator.venue import Venue
from sessions.soak import SoakPlan, soak_gateway_config, venue_settings
from tests.conftest import wait_until
from tests.test_gateway import rest

pytestmark = pytest.mark.fix


def quoting_gateway(
    venues: tuple[Venue, Venue], tmp_path: Path, gateways: list[Gateway], **execution: Any
) -> Gateway:
    data = gateway_config(list(venues), tmp_path).model_dump(mode="json")
    data["pairs"][0]["execution"] = {"mode": "quote_and_hedge", **execution}
    gateway = Gateway(type(gateway_config(list(venues), tmp_path)).model_validate(data))
    gateways.append(gateway)
    return gateway


def makers(venues: tuple[Venue, Venue], make_client: Callable[..., FixClient]) -> list[FixClient]:
    """Each venue's other side (T1): the inner bid 559.80 under an ask of 560.00 and the outer
    bid 2406.0: buying AU at 560.00 and selling GC at 2406.0 is 3.5 USD/oz past the 2.0 entry."""
    inner, outer = venues
    maker_in, maker_out = make_client(inner, "T1"), make_client(outer, "T1")
    rest(maker_in, "AU", Side.SELL, 50, "560.00")
    rest(maker_in, "AU", Side.BUY, 30, "559.80")
    rest(maker_out, "GC", Side.BUY, 20, "2406.0")
    rest(maker_out, "GC", Side.SELL, 20, "2410.0")
    return [maker_in, maker_out]


def working_trade(gateway: Gateway) -> SpreadPair:
    found: list[SpreadPair] = []

    def look() -> bool:
        trade = gateway.oms.call(lambda oms: oms.pairs["GOLD"].working)
        if trade is not None and trade.quote_key is not None:
            found.append(trade)
        return bool(found)

    assert wait_until(look, 10), "the gateway did not rest a quote"
    return found[0]


def venue_fills(venue: Venue, client: str, trade: SpreadPair) -> int:
    """Lots the venue's own books filled for the trade's orders (each counted once, under
    its first ClOrdID: the venue lists an order again under its cancel request's)."""
    filled = venue.filled_by_clordid(client)
    return sum(filled[key][0] for key in trade.orders if key in filled)


def test_each_quote_fill_is_hedged_in_ratio_and_the_pair_ends_aligned(
    venues: tuple[Venue, Venue],
    make_client: Callable[..., FixClient],
    tmp_path: Path,
    gateways: list[Gateway],
) -> None:
    inner, outer = venues
    maker_in, _ = makers(venues, make_client)
    gateway = quoting_gateway(venues, tmp_path, gateways, quote_improve_ticks=1)
    gateway.start()
    assert gateway.wait_ready(20)
    trade = working_trade(gateway)
    quote = gateway.oms.call(lambda oms: oms.orders.by_key(trade.quote_key or ""))
    assert quote is not None
    # Passive: one tick above the best bid, nowhere near the ask; on the inner leg only.
    assert (quote.venue, quote.side, quote.qty, quote.price) == (
        "INNER",
        Side.BUY,
        28,
        Decimal("559.82"),
    )
    assert trade.outer_filled == 0 and trade.hedge_sent == 0

    maker_in.new_order("AU", Side.SELL, 10, Decimal("559.82"))  # takes 10 of the quote
    assert wait_until(lambda: trade.outer_filled == 3, 10), (trade.inner_filled, trade.hedge_sent)
    assert trade.inner_filled == 10 and trade.outcome is None  # 18 still rest

    maker_in.new_order("AU", Side.SELL, 18, Decimal("559.82"))
    assert wait_until(lambda: trade.outcome is not None, 10), "the trade did not end"
    assert trade.outcome is TradeOutcome.FILLED
    assert (trade.inner_filled, trade.outer_filled, trade.top_ups) == (28, 9, 0)
    pair = gateway.oms.call(lambda oms: oms.pairs["GOLD"])
    assert (pair.units, pair.imbalance) == (1, 0)
    # The venues' own books: 28 AU bought at the quote, 9 GC sold by the hedges.
    assert venue_fills(inner, "GW-PRI", trade) == 28
    assert venue_fills(outer, "GW-PRI", trade) == 9

    gateway.stop()
    with ReceiptStore(gateway.config.receipts_url) as store:
        hedges = [r for r in store.all() if r.kind == "decision.hedge"]
    assert [r.reason for r in hedges] == [
        "the quote has filled 10 lot(s): 3 outer lot(s) are due, 3 more now",
        "the quote has filled 28 lot(s): 9 outer lot(s) are due, 6 more now",
    ]


def test_a_quote_cut_short_by_its_time_out_is_hedged_and_completed_by_a_top_up(
    venues: tuple[Venue, Venue],
    make_client: Callable[..., FixClient],
    tmp_path: Path,
    gateways: list[Gateway],
) -> None:
    inner, outer = venues
    maker_in, _ = makers(venues, make_client)
    gateway = quoting_gateway(
        venues, tmp_path, gateways, quote_improve_ticks=1, quote_timeout_ms=4_000
    )
    gateway.start()
    assert gateway.wait_ready(20)
    trade = working_trade(gateway)
    maker_in.new_order("AU", Side.SELL, 14, Decimal("559.82"))
    assert wait_until(lambda: trade.outer_filled == 5, 10)  # 14 x 9/28 = 4.5: a half up

    assert wait_until(lambda: trade.outcome is not None, 10), "the trade did not end"
    # The quote was cancelled with 14 unfilled; the top-up bought those at the ask and sold
    # the 4 GC the hedge still lacked.
    assert trade.outcome is TradeOutcome.TOPPED_UP
    assert (trade.inner_filled, trade.outer_filled, trade.top_ups) == (28, 9, 1)
    quote = gateway.oms.call(lambda oms: oms.orders.by_key(trade.quote_key or ""))
    assert quote is not None and (quote.fill_qty, quote.status.name) == (14, "CANCELED")
    assert venue_fills(inner, "GW-PRI", trade) == 28
    assert venue_fills(outer, "GW-PRI", trade) == 9
    assert gateway.oms.call(lambda oms: oms.pairs["GOLD"].imbalance) == 0


def test_limit_legs_are_cancelled_at_their_time_out_and_the_rest_topped_up(
    make_venue: Callable[..., Venue], tmp_path: Path, gateways: list[Gateway]
) -> None:
    inner_settings, outer_settings = venue_settings(
        SoakPlan(reject_rate=0, partial_fill_rate=0, ack_delay_ms=0)
    )
    inner, outer = make_venue(**inner_settings), make_venue(**outer_settings)
    data = soak_gateway_config([inner, outer], tmp_path, SoakPlan()).model_dump(mode="json")
    data["pairs"][0]["execution"] = {"leg_order": "limit", "leg_timeout_ms": 300}
    gateway = Gateway(
        type(soak_gateway_config([inner, outer], tmp_path, SoakPlan())).model_validate(data)
    )
    gateways.append(gateway)
    gateway.start()
    assert gateway.wait_ready(20)
    inner.script_faults(["fill:10"])  # the inner limit fills 10 lots and the rest rests

    def send(oms: Oms) -> SpreadPair | str:
        return oms.engine.trade_now(data["pairs"][0]["id"], Direction.BUY_INNER, 1, now_ns())

    trade = gateway.oms.call(send)
    assert isinstance(trade, SpreadPair), trade
    assert wait_until(lambda: trade.outcome is not None, 10), "the trade did not end"
    assert trade.outcome is TradeOutcome.TOPPED_UP
    leg = gateway.oms.call(lambda oms: oms.orders.by_key(trade.inner_key))
    assert leg is not None and leg.tif.name == "DAY"
    assert (leg.fill_qty, leg.status.name) == (10, "CANCELED")  # cancelled at its time-out
    top_up = gateway.oms.call(lambda oms: oms.orders.by_key(trade.orders[2]))
    assert top_up is not None and (top_up.leg, top_up.qty, top_up.fill_qty) == ("inner", 18, 18)
    assert gateway.oms.call(lambda oms: (oms.pairs["GOLD"].units, oms.pairs["GOLD"].imbalance)) == (
        1,
        0,
    )
    client = data["venues"][0]["lines"][0]["sender_comp_id"]
    assert venue_fills(inner, client, trade) == 28


def test_hedge_lots_round_to_the_nearest_lot_a_half_up_or_down_when_asked() -> None:
    per = Fraction(9, 28)
    assert [hedge_lots(q * per, "nearest") for q in (1, 2, 10, 14, 28)] == [0, 1, 3, 5, 9]
    assert [hedge_lots(q * per, "down") for q in (1, 2, 10, 14, 28)] == [0, 0, 3, 4, 9]


def test_a_quote_joins_or_improves_its_side_but_never_crosses() -> None:
    tick = Decimal("0.02")
    book = Book("INNER", "AU")
    book.bids[Decimal("559.80")] = 30
    book.asks[Decimal("559.86")] = 50
    assert passive_price(book, Side.BUY, 0, tick) == Decimal("559.80")
    assert passive_price(book, Side.BUY, 1, tick) == Decimal("559.82")
    assert passive_price(book, Side.BUY, 9, tick) == Decimal("559.84")  # a tick under the ask
    assert passive_price(book, Side.SELL, 9, tick) == Decimal("559.82")  # a tick over the bid
    assert passive_price(Book("INNER", "AU"), Side.BUY, 0, tick) is None
