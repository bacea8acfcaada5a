"""Spread triggers: exact conversions, each trigger kind, and when a trigger must not fire.

Every expected price is worked out by hand in the comments, with the unit constants written
out (1 troy oz = 31.1034768 g, 1 lb = 453.59237 g, 1 t = 1,000,000 g). ``Decimal`` keeps 28
significant digits; each leg's price is one fraction divided once (``oms.pricing``), so it
is the exact value rounded once, which the tests also check against ``Fraction``.
"""

from __future__ import annotations

import itertools
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from pydantic import ValidationError

from oms.calibration import ClockCalibration, MinimumFilter
from oms.events import (
    LineRole,
    MarketDataGap,
    MarketDataReceived,
    MdAction,
    MdEntry,
    MdEntryType,
)
from oms.instruments import Instrument
from oms.market import MarketView
from oms.pairs import Direction, PairConfig, PairSpec, SpreadIntent
from oms.pricing import FxRate, LegPricing, convert
from oms.strategy import SpreadStrategy
from oms.triggers import TriggerConfig, TriggerKind
from tests.oms_harness import AU, Harness, gold, orders

D = Decimal
MS = 1_000_000

CU = Instrument(
    venue="INNER", symbol="CU", currency="CNY", tick=D(10), contract_size=D(5), contract_unit="t"
)
HG = Instrument(
    venue="OUTER",
    symbol="HG",
    currency="USD",
    tick=D("0.0005"),
    contract_size=D(25000),
    contract_unit="lb",
)
AU2 = Instrument(  # the same contract on another venue: prices compare with no conversion
    venue="OUTER",
    symbol="AU",
    currency="CNY",
    tick=D("0.02"),
    contract_size=D(1000),
    contract_unit="g",
)


def exact(fraction: Fraction) -> Decimal:
    """The exact rational value rounded once to the context (28 significant digits)."""
    return D(fraction.numerator) / D(fraction.denominator)


def copper(**pair: Any) -> PairSpec:
    config: dict[str, Any] = {
        "id": "COPPER",
        "inner": {"venue": "INNER", "symbol": "CU"},
        "outer": {"venue": "OUTER", "symbol": "HG"},
        "fx_rate": "7.25",
        "entry_spread": "0.005",
        "exit_spread": "-1",
        "ratio_tolerance": "0.001",
    }
    config.update(pair)
    return PairSpec.build(PairConfig.model_validate(config), CU, HG)


def same_metal(**pair: Any) -> PairSpec:
    config: dict[str, Any] = {
        "id": "AUAU",
        "inner": {"venue": "INNER", "symbol": "AU"},
        "outer": {"venue": "OUTER", "symbol": "AU"},
        "fx_rate": "1",
        "entry_spread": "1.0",
        "exit_spread": "-1000",
    }
    config.update(pair)
    return PairSpec.build(PairConfig.model_validate(config), AU, AU2)


Levels = list[tuple[str, int]]


def snapshot(
    market: MarketView,
    venue: str,
    symbol: str,
    bids: Levels,
    asks: Levels,
    recv_ns: int = 1,
    sending_ns: int | None = None,
) -> None:
    market.apply(
        MarketDataReceived(
            venue,
            LineRole.PRIMARY,
            "md",
            True,
            tuple(
                MdEntry(MdAction.NEW, kind, symbol, D(px), qty)
                for kind, levels in ((MdEntryType.BID, bids), (MdEntryType.OFFER, asks))
                for px, qty in levels
            ),
            sending_ns,
            recv_ns,
            snapshot_symbol=symbol,
        )
    )


# -- conversions, exact to the last decimal --------------------------------------------------


def test_gold_cny_per_gram_in_usd_per_troy_ounce() -> None:
    # 560.00 CNY/g x 31.1034768 g/oz = 17417.947008 CNY/oz; / 7.25 CNY/USD
    # = 2402.47544937931034482758620689655... USD/oz, 28 significant digits:
    price = convert(D("560.00"), from_unit="g", to_unit="troy_oz", fx=FxRate(D("7.25")))
    assert price == D("2402.475449379310344827586207")
    assert price == exact(Fraction("560.00") * Fraction("31.1034768") / Fraction("7.25"))
    # and back: 2402.5 USD/oz x 7.25 / 31.1034768 = 17418.125 / 31.1034768 CNY/g
    back = convert(D("2402.5"), from_unit="troy_oz", to_unit="g", fx=FxRate(D("7.25"), True))
    assert back == exact(Fraction("17418.125") / Fraction("31.1034768"))


def test_copper_cny_per_tonne_in_usd_per_pound() -> None:
    # 70,000 CNY/t x 453.59237 g/lb / 1,000,000 g/t = 31.7514659 CNY/lb; / 7.25 CNY/USD
    # = 4.37951253793103448275862068965... USD/lb:
    price = convert(D(70000), from_unit="t", to_unit="lb", fx=FxRate(D("7.25")))
    assert price == D("4.379512537931034482758620690")
    # With the rate quoted the other way (0.1379 USD per CNY) nothing needs rounding:
    # 31.7514659 CNY/lb x 0.1379 USD/CNY = 4.37852714761 USD/lb, exactly.
    inverted = convert(D(70000), from_unit="t", to_unit="lb", fx=FxRate(D("0.1379"), True))
    assert inverted == D("4.37852714761")


def test_a_sweep_net_of_fees_is_divided_once() -> None:
    # Buying 28 lots of AU from asks 560.00 x 20 and 560.02 x 8, paying 0.01 % of notional
    # and 5 CNY a lot: notional 11200.00 + 4480.16 = 15680.16 (CNY/g x lots); x 1.0001 =
    # 15681.728016; x 1000 g = 15681728.016 CNY; + 5 x 28 = 15681868.016 CNY for 28,000 g
    # = 560.06671485714... CNY/g; x 31.1034768 / 7.25 = 2402.7616651050149201970443349...
    au = LegPricing.of(D(1000), "g", "troy_oz", fee_per_lot=D(5), fee_rate=D("0.0001"))
    paid = au.price(D("15680.16"), 28, buy=True, fx=FxRate(D("7.25")))
    assert paid == D("2402.761665105014920197044335")
    assert paid == exact(
        Fraction("15681868.016") * Fraction("31.1034768") / (28_000 * Fraction("7.25"))
    )
    # Selling 9 lots of GC into bids 2406.0 x 5 and 2405.9 x 4, less 0.002 % and 2.5 USD a
    # lot: notional 12030.0 + 9623.6 = 21653.6; x 0.99998 x 100 oz = 2165316.692800;
    # - 22.5 = 2165294.1928 USD for 900 oz = 2405.88243644444... USD/oz.
    gc = LegPricing.of(D(100), "troy_oz", "troy_oz", fee_per_lot=D("2.5"), fee_rate=D("0.00002"))
    got = gc.price(D("21653.6"), 9, buy=False, fx=FxRate.parity())
    assert got == D("2405.882436444444444444444444")


def test_the_strategy_prices_both_legs_at_the_sweep_net_of_fees() -> None:
    spec = gold()
    trigger = TriggerConfig.model_validate(
        {
            "inner_fees": {"per_lot": "5", "rate": "0.0001"},
            "outer_fees": {"per_lot": "2.5", "rate": "0.00002"},
        }
    )
    strategy = SpreadStrategy(spec, trigger)
    market = MarketView()
    snapshot(market, "INNER", "AU", [("559.90", 50)], [("560.00", 20), ("560.02", 30)])
    snapshot(market, "OUTER", "GC", [("2406.0", 5), ("2405.9", 10)], [("2410.0", 20)])
    intent = strategy.evaluate(market, 0, 7)
    assert intent is not None and intent.direction is Direction.BUY_INNER
    # What the sale of 9 GC gets less what 28 AU cost, both per troy ounce in USD:
    # 2405.882436444444444444444444 - 2402.761665105014920197044335
    assert intent.spread == D("3.120771339429524247400109")
    assert (intent.inner_qty, intent.inner_limit) == (28, D("560.02"))
    assert (intent.outer_qty, intent.outer_limit) == (9, D("2405.9"))
    assert intent.threshold == D("2.0") and intent.cause_ns == 7
    sample = strategy.view.last
    assert sample is not None and sample.fired == Direction.BUY_INNER.value
    assert sample.inner_ask == D("2402.761665105014920197044335")
    assert sample.outer_bid == D("2405.882436444444444444444444")


def test_copper_sells_the_inner_leg_at_an_fx_rate_read_from_a_book() -> None:
    # FX book CNYUSD quoted in USD per CNY: 0.1379 bid / 0.1380 ask. Selling CU sells the
    # CNY it earns at the bid: 70,000 CNY/t is 4.37852714761 USD/lb (see above). HG asks
    # 4.3700, so selling 34 CU and buying 15 HG captures 0.00852714761 USD/lb > 0.005.
    trigger = TriggerConfig.model_validate(
        {"fx": {"venue": "FX", "symbol": "CNYUSD", "inverted": True}}
    )
    strategy = SpreadStrategy(copper(), trigger)
    market = MarketView()
    snapshot(market, "INNER", "CU", [("70000", 40)], [("70100", 40)])
    snapshot(market, "OUTER", "HG", [("4.3600", 20)], [("4.3700", 20)])
    assert strategy.evaluate(market, 0, 1) is None  # no FX book yet
    assert strategy.view.last is not None and "FX" in (strategy.view.last.blocked or "")
    snapshot(market, "FX", "CNYUSD", [("0.1379", 100)], [("0.1380", 100)])
    intent = strategy.evaluate(market, 0, 2)
    assert intent is not None and intent.direction is Direction.SELL_INNER
    assert (intent.inner_qty, intent.outer_qty) == (34, 15)
    assert intent.spread == D("0.00852714761")
    # The other way would buy CU's CNY at the ask: 70,100 x 453.59237 = 31796825.137;
    # x 0.1380 / 10^6 = 4.387961868906 USD/lb paid against 4.3600 received.
    assert strategy.last_spreads[Direction.BUY_INNER] == D("-0.027961868906")
    # A stale FX book stops the trigger like a stale leg does.
    market.mark_stale("FX", (), "test", 3)
    assert strategy.evaluate(market, 0, 3) is None


# -- the three kinds -------------------------------------------------------------------------


def same_metal_books() -> MarketView:
    market = MarketView()
    snapshot(market, "INNER", "AU", [("559.98", 10)], [("560.00", 10)])
    snapshot(market, "OUTER", "AU", [("561.12", 10)], [("561.14", 10)])
    return market


def test_cross_spread_and_ratio_edges_by_hand() -> None:
    fees = {"inner_fees": {"per_lot": "10"}}  # 10 CNY a lot of 1,000 g: 0.01 CNY/g
    market = same_metal_books()

    cross = SpreadStrategy(same_metal(), TriggerConfig.model_validate(fees))
    cross.evaluate(market, 0, 1)
    # Buy inner at 560.00 + 0.01 fee, sell outer at 561.12: 1.11. Sell inner at
    # 559.98 - 0.01, buy outer at 561.14: -1.17.
    assert cross.last_spreads == {Direction.BUY_INNER: D("1.11"), Direction.SELL_INNER: D("-1.17")}

    spread = SpreadStrategy(same_metal(), TriggerConfig.model_validate({**fees, "kind": "spread"}))
    spread.evaluate(market, 0, 1)
    # Mids 559.99 and 561.13: A - B = -1.14. Buying inner is worth 1.14 less its 0.01 fee;
    # selling inner is worth -1.14 less its fee.
    assert spread.last_spreads == {
        Direction.BUY_INNER: D("1.13"),
        Direction.SELL_INNER: D("-1.15"),
    }

    ratio = SpreadStrategy(
        same_metal(),
        TriggerConfig(kind=TriggerKind.RATIO, entry=D("0.001"), exit=D("-1")),
    )
    ratio.evaluate(market, 0, 1)
    # Buying inner: 561.12 / 560.00 - 1 = 1.12 / 560 = 0.002. Selling inner:
    # 559.98 / 561.14 - 1 = -1.16 / 561.14.
    assert ratio.last_spreads[Direction.BUY_INNER] == D("0.002")
    assert ratio.last_spreads[Direction.SELL_INNER] == D("559.98") / D("561.14") - 1
    intent = ratio.evaluate(market, 0, 2)
    assert intent is not None and intent.spread == D("0.002") and intent.threshold == D("0.001")


def test_multipliers_and_center_shift_the_spread() -> None:
    # A fair spread of +1.50 (the inner usually trades 1.50 above the outer): buying the
    # inner at 560.00 and selling the outer at 561.12 is 1.12 + 1.50 past fair.
    market = same_metal_books()
    centered = SpreadStrategy(same_metal(), TriggerConfig(center=D("1.50")))
    centered.evaluate(market, 0, 1)
    assert centered.last_spreads[Direction.BUY_INNER] == D("2.62")  # 1.50 - (560.00 - 561.12)
    doubled = SpreadStrategy(same_metal(), TriggerConfig(outer_multiplier=D(2)))
    doubled.evaluate(market, 0, 1)
    assert doubled.last_spreads[Direction.BUY_INNER] == D("562.24")  # 2 x 561.12 - 560.00


def test_a_ratio_trigger_needs_thresholds_of_its_own() -> None:
    with pytest.raises(ValidationError, match="ratio trigger needs its own entry and exit"):
        TriggerConfig(kind=TriggerKind.RATIO)
    with pytest.raises(ValidationError, match=r"exit 1 must be below entry 0\.5"):
        TriggerConfig(entry=D("0.5"), exit=D(1))


# -- when a trigger must not fire ------------------------------------------------------------


def gold_books(market: MarketView, *, inner_asks: int = 50, outer_bids: int = 20) -> None:
    """Buying 28 AU at 560.00 (2402.475 USD/oz) and selling 9 GC at 2406.0: 3.52 > 2.0."""
    snapshot(market, "INNER", "AU", [("559.90", 50)], [("560.00", inner_asks)])
    snapshot(market, "OUTER", "GC", [("2406.0", outer_bids)], [("2410.0", 20)])


def test_no_trigger_on_too_little_size() -> None:
    strategy = SpreadStrategy(gold())
    market = MarketView()
    gold_books(market, inner_asks=27)  # 28 lots needed
    assert strategy.evaluate(market, 0, 1) is None
    gold_books(market, inner_asks=28)
    assert strategy.evaluate(market, 0, 2) is not None


def test_no_trigger_below_the_minimum_size_on_both_books() -> None:
    strategy = SpreadStrategy(gold(), TriggerConfig(min_size=2))  # 56 AU and 18 GC
    market = MarketView()
    gold_books(market, inner_asks=55, outer_bids=20)
    assert strategy.evaluate(market, 0, 1) is None
    gold_books(market, inner_asks=56, outer_bids=17)
    assert strategy.evaluate(market, 0, 2) is None
    gold_books(market, inner_asks=56, outer_bids=18)
    intent = strategy.evaluate(market, 0, 3)
    assert intent is not None and intent.inner_qty == 28  # the size is still one unit


def test_no_trigger_on_a_crossed_book() -> None:
    strategy = SpreadStrategy(gold())
    market = MarketView()
    gold_books(market)
    snapshot(market, "OUTER", "GC", [("2406.0", 20)], [("2405.0", 20)])
    assert strategy.evaluate(market, 0, 1) is None
    assert strategy.view.last is not None and strategy.view.last.blocked == "outer book crossed"


def test_no_trigger_on_a_book_the_venue_stamped_too_long_ago() -> None:
    now = [0]
    market = MarketView(clock=lambda: now[0])
    strategy = SpreadStrategy(gold(), TriggerConfig(max_book_age_ms=D(5)))
    # The venues' clocks run 3 s ahead of ours; messages take 100 us. Uncorrected, every
    # book would look 3 s younger than it is; corrected, its age is measured from the
    # fastest delivery seen (the estimate assumes that one took no time).
    skew, wire = 3_000 * MS, 100_000
    t = 1_000 * MS
    snapshot(market, "INNER", "AU", [("559.90", 50)], [("560.00", 50)], t + wire, t + skew)
    snapshot(market, "OUTER", "GC", [("2406.0", 20)], [("2410.0", 20)], t + wire, t + skew)
    assert market.clock_offset_ns("OUTER") == skew - wire
    now[0] = t + wire + 6 * MS
    assert strategy.evaluate(market, 0, 1) is None
    sample = strategy.view.last
    assert sample is not None and sample.inner_age_ns == 6 * MS
    assert sample.blocked == "inner book 6.000 ms old, over 5.0 ms"
    now[0] = t + wire + 4 * MS
    assert strategy.evaluate(market, 0, 2) is not None


def test_no_entry_inside_the_hysteresis_band() -> None:
    """After an entry, the edge must come back to entry - rearm (2.0 - 0.5) before the next."""
    strategy = SpreadStrategy(gold(), TriggerConfig(rearm=D("0.5")))
    market = MarketView()

    def outer_bid(price: str) -> SpreadIntent | None:
        snapshot(market, "OUTER", "GC", [(price, 20)], [("2410.0", 20)])
        return strategy.evaluate(market, position, 1)

    snapshot(market, "INNER", "AU", [("559.90", 50)], [("560.00", 50)])  # 2402.475 USD/oz
    position = 0
    assert outer_bid("2405.0") is not None  # edge 2.52: fires
    position = 1
    assert outer_bid("2404.3") is None  # 1.82: inside the band
    assert outer_bid("2405.0") is None  # 2.52 again, but not re-armed
    assert outer_bid("2404.0") is None  # 1.52: still inside (re-arms at 1.50 or below)
    assert outer_bid("2405.0") is None
    assert outer_bid("2403.9") is None  # 1.42: re-armed
    assert outer_bid("2405.0") is not None  # 2.52: fires again


def test_no_exit_between_the_exit_and_entry_thresholds() -> None:
    """Long one unit bought at a dislocation: it closes only once selling inner and buying
    outer captures at least -exit_spread (-0.8), not anywhere between."""
    strategy = SpreadStrategy(gold(exit_spread="0.8", max_position=1))
    market = MarketView()
    snapshot(market, "INNER", "AU", [("560.00", 50)], [("560.02", 50)])  # bid 2402.475
    snapshot(market, "OUTER", "GC", [("2400.0", 20)], [("2404.0", 20)])
    # Selling inner at 2402.475 and buying outer at 2404.0 captures -1.52: hold.
    assert strategy.evaluate(market, 1, 1) is None
    snapshot(market, "OUTER", "GC", [("2400.0", 20)], [("2403.2", 20)])  # -0.72: close
    intent = strategy.evaluate(market, 1, 2)
    assert intent is not None and intent.closing and intent.direction is Direction.SELL_INNER
    assert intent.threshold == D("-0.8")


# -- a stale book through the OMS ------------------------------------------------------------


def test_no_trigger_on_a_stale_book_until_a_fresh_snapshot() -> None:
    desk = Harness()
    desk.book("INNER", "AU", [("559.90", 50)], [("560.00", 50)], full=True)
    desk.book("OUTER", "GC", [("2400.0", 20)], [("2410.0", 20)], full=True)
    desk.oms.handle(
        MarketDataGap("OUTER", LineRole.PRIMARY, (), "sequence reset from 7 to 8", next(desk.clock))
    )
    assert desk.oms.market.books[("OUTER", "GC")].stale == "sequence reset from 7 to 8"
    gap = [r for r in desk.receipts if r.kind == "event.market_data_gap"]
    assert len(gap) == 1 and gap[0].symbol == "GC" and gap[0].venue == "OUTER"
    # An update that would trigger (the outer bid 2406.0) lands on the stale book: nothing.
    desk.book("OUTER", "GC", [("2406.0", 20)], [], full=False)
    desk.book("INNER", "AU", [("559.92", 50)], [], full=False)
    assert orders(desk) == []
    # The fresh snapshot makes the book good again, and the trigger fires on it.
    desk.book("OUTER", "GC", [("2406.0", 20)], [("2410.0", 20)], full=True)
    assert [(o.venue, o.qty) for o in orders(desk)] == [("INNER", 28), ("OUTER", 9)]
    assert desk.oms.market.books[("OUTER", "GC")].stale is None


def test_updates_before_any_snapshot_leave_the_book_stale() -> None:
    market = MarketView()
    market.apply(
        MarketDataReceived(
            "OUTER",
            LineRole.PRIMARY,
            "md",
            False,
            (MdEntry(MdAction.NEW, MdEntryType.BID, "GC", D("2406.0"), 20),),
            None,
            5,
        )
    )
    assert market.books[("OUTER", "GC")].stale == "updates before any snapshot"


# -- clock calibration -----------------------------------------------------------------------


def test_round_trips_separate_the_clock_offset_from_the_delay() -> None:
    # The venue's clock is 2 ms ahead; the path takes 150 us each way, plus queueing.
    cal = ClockCalibration(block=4, blocks=5)
    offset, delay = 2 * MS, 150_000
    for i in range(40):
        sent = i * MS
        queued = (i * 37) % 5 * 10_000  # 0..40 us of queueing, never negative
        venue = sent + delay + offset + queued
        cal.observe_round_trip(sent, venue, venue - offset + delay + queued)
    assert (cal.offset_ns, cal.delay_ns) == (offset, delay)


def test_one_way_samples_assume_the_fastest_delivery() -> None:
    cal = ClockCalibration(assumed_delay_ns=50_000, block=4, blocks=5)
    assert cal.offset_ns is None and cal.to_local(123) is None
    for i in range(20):
        cal.observe(i * MS + 2 * MS, i * MS + 150_000 + (i % 3) * 20_000)
    # Fastest recv - stamp is 150 us - 2 ms; with 50 us assumed for it, the offset is
    # 2 ms - 100 us.
    assert cal.offset_ns == 2 * MS - 100_000 and cal.delay_ns == 50_000


def test_the_estimate_ignores_a_block_spoiled_by_a_bad_stamp() -> None:
    f = MinimumFilter(block=4, blocks=5)
    for value in [100, 120, 130, 110] * 3 + [-5_000, 120, 130, 110] + [100, 120, 130, 110]:
        f.add(value)
    assert f.value == 100  # the median of the minima (100, 100, 100, -5000, 100)


# -- the pair's live view --------------------------------------------------------------------


def test_the_live_view_holds_both_books_and_the_spreads_over_time() -> None:
    now = [10 * MS]
    market = MarketView(clock=lambda: now[0], depth=2)
    strategy = SpreadStrategy(gold(), TriggerConfig(history=3))
    snapshot(
        market, "INNER", "AU", [("559.90", 50), ("559.88", 5), ("559.86", 5)], [("560.00", 50)]
    )
    for bid in ("2400.0", "2401.0", "2402.0", "2403.0"):
        snapshot(market, "OUTER", "GC", [(bid, 20)], [("2410.0", 20)], recv_ns=now[0])
        strategy.evaluate(market, 0, now[0])
        now[0] += MS
    view = strategy.view.snapshot(market, depth=5)
    assert view.pair_id == "GOLD" and view.inner is not None and view.outer is not None
    # The inner book was trimmed to two levels a side; the outer shows its last update.
    assert [(level.price, level.qty) for level in view.inner.bids] == [
        (D("559.90"), 50),
        (D("559.88"), 5),
    ]
    assert view.outer.bids[0].price == D("2403.0") and view.outer.age_ns == MS
    assert view.inner.stale is None and not view.outer.crossed
    # The last three evaluations, oldest first: buying inner gained 1.00 USD/oz each time.
    edges = [s.buy_inner for s in view.samples if s.buy_inner is not None]
    assert len(edges) == 3
    assert [b - a for a, b in itertools.pairwise(edges)] == [D("1.0"), D("1.0")]
    assert strategy.view.evaluations == 4 and strategy.view.fired == 0
