"""The pre-trade risk engine, one control at a time.

Every control has its test: an order (or intent, or event) that breaks it is refused by that
control, with its own reason and the figures it compared; the same order within the limit
passes. The clock is an argument, so throttles, windows and staleness are stepped by hand.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from oms.commands import SendOrder
from oms.enums import OrderType, Side, TimeInForce
from oms.instruments import Instrument
from oms.receipts import Receipt
from oms.risk import (
    GLOBAL,
    Alert,
    IntentFacts,
    LegFacts,
    OrderContext,
    Origin,
    RiskConfig,
    RiskEngine,
    Scope,
    StateChange,
    TradingState,
    Verdict,
)
from oms.risk.throttle import RecentEvents, TokenBucket
from sessions.config_loader import ConfigError, validate_mapping

D = Decimal
T0 = 1_700_000_000_000_000_000
MS = 1_000_000
S = 1_000_000_000

AU = Instrument(
    venue="SHFE",
    symbol="AU",
    currency="CNY",
    tick=D("0.02"),
    contract_size=D(1000),
    contract_unit="g",
)
CU = Instrument(
    venue="SHFE",
    symbol="CU",
    currency="CNY",
    tick=D(10),
    lot=5,
    contract_size=D(5),
    contract_unit="t",
)
GC = Instrument(
    venue="COMEX",
    symbol="GC",
    currency="USD",
    tick=D("0.1"),
    contract_size=D(100),
    contract_unit="troy_oz",
)
INSTRUMENTS = {(i.venue, i.symbol): i for i in (AU, CU, GC)}

ENTRY = OrderContext(Origin.ENTRY, "GOLD")
TOP_UP = OrderContext(Origin.TOP_UP, "GOLD")
UNWIND = OrderContext(Origin.UNWIND, "GOLD")
CLIENT = OrderContext(Origin.CLIENT)

# One AU lot at the mid (560.02 CNY/g x 1000 g x 0.14 USD/CNY) is worth 78,402.80 USD.
_ids = itertools.count(1)


def make(**config: Any) -> RiskEngine:
    """An engine with both sessions up and every book quoted at T0."""
    config.setdefault("fx", {"CNY": "0.14"})
    engine = RiskEngine(RiskConfig.model_validate(config), INSTRUMENTS)
    engine.on_session("SHFE", True)
    engine.on_session("COMEX", True)
    quote(engine)
    return engine


def quote(engine: RiskEngine, au: tuple[str, str] = ("560.00", "560.04"), now: int = T0) -> None:
    engine.on_market("SHFE", "AU", D(au[0]), D(au[1]), None, now)
    engine.on_market("SHFE", "CU", D(70000), D(70010), None, now)
    engine.on_market("COMEX", "GC", D("2400.0"), D("2400.2"), None, now)


def order(
    side: str = "buy",
    qty: int = 1,
    price: str | None = "560.00",
    *,
    venue: str = "SHFE",
    symbol: str = "AU",
    account: str | None = None,
    clordid: str | None = None,
) -> SendOrder:
    return SendOrder(
        venue=venue,
        clordid=clordid or f"C{next(_ids)}",
        symbol=symbol,
        side=Side.BUY if side == "buy" else Side.SELL,
        qty=qty,
        ord_type=OrderType.LIMIT if price is not None else OrderType.MARKET,
        price=D(price) if price is not None else None,
        tif=TimeInForce.IOC,
        account=account,
        created_ns=T0,
    )


def send(engine: RiskEngine, o: SendOrder, ctx: OrderContext = ENTRY, now: int = T0) -> SendOrder:
    verdict = engine.check_order(o, ctx, now)
    assert verdict.passed, verdict
    engine.on_order_sent(o, ctx, now)
    return o


def refused(verdict: Verdict, check: str) -> Verdict:
    assert not verdict.passed, verdict
    assert verdict.check == check, verdict
    assert verdict.reason
    return verdict


def passed(verdict: Verdict) -> Verdict:
    assert verdict.passed, verdict
    assert verdict.check == "passed"
    return verdict


def intent(
    inner_qty: int = 28,
    outer_qty: int = 9,
    *,
    inner_side: Side = Side.BUY,
    inner_limit: str = "560.04",
    outer_limit: str = "2400.0",
    pay_up: int = 0,
    retries: int = 0,
) -> IntentFacts:
    return IntentFacts(
        strategy="GOLD",
        inner=LegFacts("SHFE", "AU", inner_side, inner_qty, D(inner_limit)),
        outer=LegFacts("COMEX", "GC", inner_side.opposite, outer_qty, D(outer_limit)),
        max_pay_up_ticks=pay_up,
        max_top_up_retries=retries,
    )


# -- order checks ------------------------------------------------------------------------------


def test_unknown_instrument_is_refused() -> None:
    engine = make()
    refused(engine.check_order(order(symbol="AG"), CLIENT, T0), "unknown_instrument")
    passed(engine.check_order(order(), CLIENT, T0))


def test_disabled_instrument_is_refused() -> None:
    engine = make(instruments={"SHFE": {"CU": {"enabled": False}}})
    v = refused(
        engine.check_order(order(symbol="CU", qty=5, price="70000"), CLIENT, T0),
        "instrument_disabled",
    )
    assert v.figures == {"venue": "SHFE", "symbol": "CU"}
    passed(engine.check_order(order(), CLIENT, T0))


def test_closed_session_refuses_orders_until_a_line_is_up() -> None:
    engine = make()
    engine.on_session("SHFE", False)
    v = refused(engine.check_order(order(), CLIENT, T0), "session_closed")
    assert v.figures == {"venue": "SHFE"}
    engine.on_session("SHFE", True)
    passed(engine.check_order(order(), CLIENT, T0))


def test_price_off_the_tick_is_refused() -> None:
    engine = make()
    v = refused(engine.check_order(order(price="560.01"), CLIENT, T0), "tick")
    assert v.figures == {"price": D("560.01"), "tick": D("0.02")}
    refused(engine.check_order(order(price="0"), CLIENT, T0), "tick")
    passed(engine.check_order(order(price="560.02"), CLIENT, T0))


def test_price_finer_than_the_tick_precision_is_refused() -> None:
    engine = make()
    v = refused(engine.check_order(order(price="560.021"), CLIENT, T0), "precision")
    assert v.figures == {"price": D("560.021"), "tick": D("0.02")}
    refused(engine.check_order(order(symbol="CU", qty=5, price="70000.5"), CLIENT, T0), "precision")
    refused(engine.check_order(order(symbol="CU", qty=5, price="70005"), CLIENT, T0), "tick")
    passed(engine.check_order(order(symbol="CU", qty=5, price="70000"), CLIENT, T0))


def test_quantity_off_the_lot_is_refused() -> None:
    engine = make()
    v = refused(engine.check_order(order(symbol="CU", qty=7, price="70000"), CLIENT, T0), "lot")
    assert v.figures == {"qty": 7, "lot": 5}
    passed(engine.check_order(order(symbol="CU", qty=10, price="70000"), CLIENT, T0))


def test_min_and_max_quantity() -> None:
    engine = make(defaults={"min_qty": 2, "max_qty": 5})
    v = refused(engine.check_order(order(qty=1), CLIENT, T0), "min_qty")
    assert v.figures == {"qty": 1, "limit": 2}
    v = refused(engine.check_order(order(qty=6), CLIENT, T0), "max_qty")
    assert v.figures == {"qty": 6, "limit": 5, "scope": "instrument"}
    passed(engine.check_order(order(qty=5), CLIENT, T0))


def test_max_notional_per_order() -> None:
    engine = make(defaults={"max_notional": "100000"})
    v = refused(engine.check_order(order(qty=2, price="560.04"), CLIENT, T0), "max_notional")
    assert v.figures["notional"] == D("156811.20")  # 2 x 560.04 x 1000 g x 0.14
    assert v.figures["limit"] == D("100000")
    assert "156811.20 USD" in v.reason
    ok = passed(engine.check_order(order(qty=1, price="560.04"), CLIENT, T0))
    assert ok.figures["notional"] == D("78405.60")


def test_price_collar_in_ticks_around_the_mid() -> None:
    engine = make(defaults={"collar_ticks": 10})  # mid 560.02 +/- 0.20
    v = refused(engine.check_order(order(price="560.24"), CLIENT, T0), "price_collar")
    assert v.figures == {
        "price": D("560.24"),
        "reference": D("560.02"),
        "low": D("559.82"),
        "high": D("560.22"),
    }
    refused(engine.check_order(order("sell", price="559.80"), CLIENT, T0), "price_collar")
    passed(engine.check_order(order(price="560.22"), CLIENT, T0))
    passed(engine.check_order(order("sell", price="559.82"), CLIENT, T0))


def test_price_collar_in_percent_and_the_tighter_of_both() -> None:
    engine = make(defaults={"collar_pct": "0.01"})  # 560.02 x 0.0001 = 0.056002
    refused(engine.check_order(order(price="560.08"), CLIENT, T0), "price_collar")
    passed(engine.check_order(order(price="560.06"), CLIENT, T0))
    both = make(defaults={"collar_pct": "0.01", "collar_ticks": 1})  # 0.02 is tighter
    refused(both.check_order(order(price="560.06"), CLIENT, T0), "price_collar")
    passed(both.check_order(order(price="560.04"), CLIENT, T0))


def test_price_collar_against_the_last_trade() -> None:
    engine = make(instruments={"SHFE": {"AU": {"reference": "last", "collar_ticks": 5}}})
    engine.on_market("SHFE", "AU", D("560.00"), D("560.04"), D("561.00"), T0)
    v = refused(engine.check_order(order(price="560.02"), CLIENT, T0), "price_collar")
    assert v.figures["reference"] == D("561.00")
    passed(engine.check_order(order(price="560.90"), CLIENT, T0))


def test_collar_without_a_reference_price_is_refused() -> None:
    engine = RiskEngine(
        RiskConfig.model_validate({"fx": {"CNY": "0.14"}, "defaults": {"collar_ticks": 5}}),
        INSTRUMENTS,
    )
    engine.on_session("SHFE", True)
    refused(engine.check_order(order(), CLIENT, T0), "no_reference_price")
    quote(engine)
    passed(engine.check_order(order(), CLIENT, T0))


def test_market_order_is_valued_at_the_edge_of_the_collar() -> None:
    engine = make(defaults={"collar_ticks": 10, "max_notional": "78430"})
    # worst price 560.02 + 0.20 = 560.22: 78,430.80 USD, just above the limit
    v = refused(engine.check_order(order(price=None), CLIENT, T0), "max_notional")
    assert v.figures["notional"] == D("78430.80")
    passed(engine.check_order(order("sell", price=None), CLIENT, T0))


def test_duplicate_clordid_is_refused() -> None:
    engine = make()
    send(engine, order(clordid="X1"), CLIENT)
    v = refused(engine.check_order(order(clordid="X1"), CLIENT, T0), "duplicate_clordid")
    assert v.figures == {"clordid": "X1"}
    passed(engine.check_order(order(clordid="X2"), CLIENT, T0))


def test_max_open_orders_per_venue_global_and_account() -> None:
    engine = make(defaults={"max_open_orders": 2})
    first = send(engine, order(), CLIENT)
    send(engine, order(), CLIENT)
    v = refused(engine.check_order(order(), CLIENT, T0), "max_open_orders")
    assert v.figures == {"scope": "venue:SHFE", "open": 2, "adding": 1, "limit": 2}
    passed(engine.check_order(order(venue="COMEX", symbol="GC", price="2400.0"), CLIENT, T0))
    engine.on_order_done(first.clordid)
    passed(engine.check_order(order(), CLIENT, T0))

    glob = make(max_open_orders=1)
    send(glob, order(), CLIENT)
    v = refused(
        glob.check_order(order(venue="COMEX", symbol="GC", price="2400.0"), CLIENT, T0),
        "max_open_orders",
    )
    assert v.figures["scope"] == "global"

    acct = make(accounts={"ACME": {"max_open_orders": 1}})
    send(acct, order(account="ACME"), CLIENT)
    v = refused(acct.check_order(order(account="ACME"), CLIENT, T0), "max_open_orders")
    assert v.figures["scope"] == "account:ACME"
    passed(acct.check_order(order(account="OTHER"), CLIENT, T0))


# -- account checks ------------------------------------------------------------------------------


def test_net_position_limit_counts_working_orders() -> None:
    engine = make(defaults={"max_net_position": 3})
    send(engine, order(qty=2), CLIENT)
    v = refused(engine.check_order(order(qty=2), CLIENT, T0), "max_net_position")
    assert v.figures == {
        "scope": "instrument",
        "position": 0,
        "working_buy": 2,
        "working_sell": 0,
        "qty": 2,
        "net_after": 4,
        "limit": 3,
    }
    ok = passed(engine.check_order(order(qty=1), CLIENT, T0))
    assert ok.figures["net_after"] == 3
    # the short side counts the working sells only: a long that may not fill protects nothing
    refused(engine.check_order(order("sell", qty=4), CLIENT, T0), "max_net_position")
    passed(engine.check_order(order("sell", qty=3), CLIENT, T0))


def test_net_position_limit_after_fills_and_reducing_orders() -> None:
    engine = make(defaults={"max_net_position": 3})
    o = send(engine, order(qty=3), CLIENT)
    engine.on_fill(o.clordid, "SHFE", "AU", Side.BUY, 3, D("560.00"), T0)
    engine.on_order_done(o.clordid)
    assert engine.exposure("SHFE", "AU") == (3, 0, 0)
    refused(engine.check_order(order(qty=1), CLIENT, T0), "max_net_position")
    sell = passed(engine.check_order(order("sell", qty=3), CLIENT, T0))
    assert sell.reducing
    # selling 6 from long 3 crosses zero: not reducing, and 3 short is within the limit
    crossing = passed(engine.check_order(order("sell", qty=6), CLIENT, T0))
    assert not crossing.reducing
    refused(engine.check_order(order("sell", qty=7), CLIENT, T0), "max_net_position")


def test_gross_position_limit_counts_both_sides() -> None:
    engine = make(defaults={"max_gross_position": 4})
    send(engine, order(qty=3), CLIENT)
    v = refused(engine.check_order(order("sell", qty=2), CLIENT, T0), "max_gross_position")
    assert v.figures["gross_after"] == 5
    assert v.figures["limit"] == 4
    passed(engine.check_order(order("sell", qty=1), CLIENT, T0))


def test_account_position_and_order_limits() -> None:
    engine = make(
        accounts={
            "ACME": {"max_net_position": 2, "max_qty": 2, "max_notional": "200000"},
            "SHUT": {"enabled": False},
        }
    )
    send(engine, order(qty=2, account="ACME"), CLIENT)
    v = refused(engine.check_order(order(account="ACME"), CLIENT, T0), "max_net_position")
    assert v.figures["scope"] == "account:ACME"
    assert v.figures["net_after"] == 3
    passed(engine.check_order(order(account="OTHER", qty=5), CLIENT, T0))
    v = refused(engine.check_order(order("sell", qty=3, account="ACME"), CLIENT, T0), "max_qty")
    assert v.figures == {"qty": 3, "limit": 2, "scope": "account:ACME"}
    v = refused(
        engine.check_order(
            order(venue="COMEX", symbol="GC", price="2400.0", account="ACME"), CLIENT, T0
        ),
        "max_notional",
    )
    assert v.figures["scope"] == "account:ACME"
    refused(engine.check_order(order(account="SHUT"), CLIENT, T0), "account_disabled")


def test_position_notional_limit_at_the_mark() -> None:
    engine = make(defaults={"max_position_notional": "200000"})
    send(engine, order(qty=2), CLIENT)
    v = refused(engine.check_order(order(qty=1), CLIENT, T0), "max_position_notional")
    assert v.figures == {
        "net_after": 3,
        "value_px": D("560.02"),
        "notional": D("235208.40"),
        "limit": D("200000"),
    }
    passed(engine.check_order(order("sell", qty=2), CLIENT, T0))


def test_gross_notional_limit_across_contracts() -> None:
    engine = make(max_gross_notional="300000")
    send(engine, order(qty=2), CLIENT)  # 156,805.60 USD at the mid
    gc = order(venue="COMEX", symbol="GC", price="2400.0")  # 240,010 USD at the mid
    v = refused(engine.check_order(gc, CLIENT, T0), "max_gross_notional")
    assert v.figures == {"gross_notional": D("396815.60"), "limit": D("300000")}
    engine.on_order_done(send(engine, order("sell", qty=1), CLIENT).clordid)
    passed(engine.check_order(order(qty=1), CLIENT, T0))


def test_margin_against_what_the_venue_allows_in_its_currency() -> None:
    engine = make(venues={"SHFE": {"margin_rate": "0.1", "margin_available": "100000"}})
    send(engine, order(qty=1), CLIENT)  # 560.02 x 1000 x 0.1 = 56,002 CNY
    v = refused(engine.check_order(order(qty=1), CLIENT, T0), "margin")
    assert v.figures == {
        "margin": D("112004.0"),
        "available": D("100000"),
        "currency": "CNY",
    }
    passed(engine.check_order(order("sell", qty=1), CLIENT, T0))  # net worst stays 1
    engine.set_margin_available("SHFE", D("200000"))
    passed(engine.check_order(order(qty=1), CLIENT, T0))


def test_daily_loss_limit_on_realised_and_marked_pnl() -> None:
    engine = make(daily_loss_limit="10000")
    o = send(engine, order(qty=1), CLIENT)
    assert engine.on_fill(o.clordid, "SHFE", "AU", Side.BUY, 1, D("560.00"), T0) == ()
    engine.on_order_done(o.clordid)
    assert engine.pnl() == D("2.80")  # marked at the mid, 560.02
    notices = engine.on_market("SHFE", "AU", D("480.00"), D("480.04"), None, T0 + S)
    assert engine.pnl() == D("-11197.20")
    assert len(notices) == 1
    change = notices[0]
    assert isinstance(change, StateChange)
    assert (change.scope, change.state, change.rule) == (
        GLOBAL,
        TradingState.REDUCING,
        "daily_loss",
    )
    assert change.figures == {"pnl": D("-11197.20"), "limit": D("10000")}
    quote(engine, ("480.00", "480.04"), T0 + S)
    refused(engine.check_order(order(price="480.00"), CLIENT, T0 + S), "reducing_only")
    passed(engine.check_order(order("sell", price="480.00"), CLIENT, T0 + S))
    # an operator reopens, but the loss limit itself still refuses anything that adds risk
    engine.set_state(GLOBAL, TradingState.ACTIVE, "ops", "reviewed", T0 + S)
    v = refused(engine.check_order(order(price="480.00"), CLIENT, T0 + S), "daily_loss")
    assert v.figures == {"pnl": D("-11197.20"), "limit": D("10000")}
    passed(engine.check_order(order("sell", price="480.00"), CLIENT, T0 + S))


def test_realised_pnl_against_the_average_cost() -> None:
    engine = make()
    engine.on_fill(None, "SHFE", "AU", Side.BUY, 2, D("560.00"), T0)
    engine.on_fill(None, "SHFE", "AU", Side.BUY, 2, D("562.00"), T0)
    engine.on_fill(None, "SHFE", "AU", Side.SELL, 3, D("563.00"), T0)
    # average cost 561.00; 3 closed at +2.00 x 1000 g x 0.14 USD
    assert engine.ledger.realized == D("840.00")
    assert engine.exposure("SHFE", "AU") == (1, 0, 0)
    engine.on_fill(None, "SHFE", "AU", Side.SELL, 2, D("560.00"), T0)  # closes 1, opens 1 short
    assert engine.ledger.realized == D("840.00") + D("-140.00")
    assert engine.contracts[("SHFE", "AU")].avg_px == D("560.00")


def test_a_new_day_counts_the_loss_limit_from_zero() -> None:
    engine = make(daily_loss_limit="10000")
    engine.on_fill(None, "SHFE", "AU", Side.BUY, 1, D("560.00"), T0)
    (change,) = engine.on_market("SHFE", "AU", D("480.00"), D("480.04"), None, T0 + S)
    assert isinstance(change, StateChange)
    engine.start_day()
    assert engine.pnl() == 0
    assert engine.states()["global"] == "reducing"  # an operator reopens, not the calendar
    engine.set_state(GLOBAL, TradingState.ACTIVE, "ops", "new day", T0 + 2 * S)
    quote(engine, ("480.00", "480.04"), T0 + 2 * S)
    passed(engine.check_order(order(price="480.00"), CLIENT, T0 + 2 * S))
    assert engine.states() == {
        "global": "active",
        "venue:COMEX": "active",
        "venue:SHFE": "active",
    }


# -- throttles ---------------------------------------------------------------------------------


def test_token_bucket_with_a_stepped_clock() -> None:
    bucket = TokenBucket(D(2), burst=2)
    assert bucket.take(T0) and bucket.take(T0)
    assert not bucket.take(T0)
    assert bucket.wait_ns(T0) == 500 * MS
    assert not bucket.take(T0 + 499 * MS)
    assert bucket.take(T0 + 500 * MS)
    assert bucket.available(T0 + 10 * S) == 2  # never more than the burst
    with pytest.raises(ValueError):
        TokenBucket(D(0), burst=1)


def test_recent_events_window() -> None:
    window = RecentEvents(3, 10 * S)
    assert window.add(T0) == 1
    assert window.add(T0 + 6 * S) == 2
    assert window.add(T0 + 12 * S) == 2  # T0 has left the window
    assert window.within(T0 + 30 * S) == 0


def test_orders_per_second_throttle() -> None:
    engine = make(defaults={"orders_per_s": 2, "burst": 2})
    passed(engine.check_order(order(), CLIENT, T0))
    passed(engine.check_order(order(), CLIENT, T0))
    v = refused(engine.check_order(order(), CLIENT, T0), "orders_per_s")
    assert v.figures == {"venue": "SHFE", "rate_per_s": D(2), "burst": 2, "wait_ns": 500 * MS}
    # a refusal by another check takes no token
    refused(engine.check_order(order(price="560.01"), CLIENT, T0 + 500 * MS), "tick")
    passed(engine.check_order(order(), CLIENT, T0 + 500 * MS))
    refused(engine.check_order(order(), CLIENT, T0 + 500 * MS), "orders_per_s")
    passed(engine.check_order(order(venue="COMEX", symbol="GC", price="2400.0"), CLIENT, T0))


def test_cancels_per_second_throttle_but_never_for_the_kill_switch() -> None:
    engine = make(defaults={"cancels_per_s": 1})
    passed(engine.check_cancel("SHFE", T0))
    v = refused(engine.check_cancel("SHFE", T0), "cancels_per_s")
    assert v.figures["rate_per_s"] == D(1)
    passed(engine.check_cancel("SHFE", T0, kill=True))
    passed(engine.check_cancel("SHFE", T0 + S))
    refused(engine.check_cancel("LME", T0), "unknown_venue")


def test_replaces_per_second_throttle() -> None:
    engine = make(defaults={"replaces_per_s": 1})
    o = send(engine, order(qty=3), CLIENT)
    passed(engine.check_replace(o.clordid, "R1", 2, D("560.00"), CLIENT, T0))
    engine.on_replace_sent(o.clordid, "R1", 2, D("560.00"))
    v = refused(engine.check_replace(o.clordid, "R2", 1, D("560.00"), CLIENT, T0), "replaces_per_s")
    assert v.figures["venue"] == "SHFE"
    passed(engine.check_replace(o.clordid, "R2", 1, D("560.00"), CLIENT, T0 + S))


def test_replace_checks_only_what_it_adds() -> None:
    engine = make(defaults={"max_net_position": 3})
    o = send(engine, order(qty=3), CLIENT)
    engine.on_fill(o.clordid, "SHFE", "AU", Side.BUY, 1, D("560.00"), T0)
    # new total 4 with 1 filled leaves 3, up from 2: worst long 1 + 3 = 4
    v = refused(
        engine.check_replace(o.clordid, "R1", 4, D("560.00"), CLIENT, T0), "max_net_position"
    )
    assert v.figures["net_after"] == 4
    passed(engine.check_replace(o.clordid, "R1", 3, D("560.02"), CLIENT, T0))
    refused(
        engine.check_replace(o.clordid, o.clordid, 2, D("560.00"), CLIENT, T0), "duplicate_clordid"
    )
    refused(engine.check_replace("NOPE", "R9", 2, D("560.00"), CLIENT, T0), "unknown_order")
    refused(engine.check_replace(o.clordid, "R1", 3, D("560.01"), CLIENT, T0), "tick")
    # while the replace is out the larger quantity counts; the venue's answer settles it
    engine.on_replace_sent(o.clordid, "R1", 3, D("560.02"))
    assert engine.exposure("SHFE", "AU") == (1, 2, 0)
    engine.on_order_amended(o.clordid, 1, D("560.02"))
    assert engine.exposure("SHFE", "AU") == (1, 1, 0)


def test_reject_rate_breaker_moves_a_venue_to_reducing() -> None:
    engine = make(defaults={"reject_breaker": {"count": 3, "window_s": 10, "action": "reducing"}})
    assert engine.on_reject("SHFE", None, T0) == ()
    assert engine.on_reject("SHFE", None, T0 + 6 * S) == ()
    assert engine.on_reject("SHFE", None, T0 + 12 * S) == ()  # the first is out of the window
    (change,) = engine.on_reject("SHFE", None, T0 + 13 * S)
    assert isinstance(change, StateChange)
    assert change.scope == Scope.venue("SHFE")
    assert (change.previous, change.state) == (TradingState.ACTIVE, TradingState.REDUCING)
    assert change.rule == "reject_rate"
    assert change.figures == {"rejects": 3, "limit": 3, "window_ns": 10 * S}
    refused(engine.check_order(order(), CLIENT, T0 + 13 * S), "reducing_only")
    passed(engine.check_order(order(venue="COMEX", symbol="GC", price="2400.0"), CLIENT, T0))


def test_reject_rate_breaker_halts_a_strategy() -> None:
    engine = make(strategies={"GOLD": {"reject_breaker": {"count": 2, "window_s": 5}}})
    assert engine.on_reject("SHFE", "GOLD", T0) == ()
    (change,) = engine.on_reject("COMEX", "GOLD", T0 + S)
    assert isinstance(change, StateChange)
    assert change.scope == Scope.strategy("GOLD")
    assert change.state is TradingState.HALTED
    refused(engine.check_order(order(), ENTRY, T0 + S), "halted")
    passed(engine.check_order(order(), CLIENT, T0 + S))


def test_repeated_execution_throttle_halts_the_strategy() -> None:
    engine = make(strategies={"GOLD": {"repeated_execution": {"max": 2, "window_s": 60}}})
    passed(engine.check_intent(intent(), T0))
    passed(engine.check_intent(intent(), T0 + S))
    v = refused(engine.check_intent(intent(), T0 + 2 * S), "repeated_execution")
    assert v.figures == {"trades": 2, "limit": 2, "window_ns": 60 * S}
    (change,) = v.notices
    assert isinstance(change, StateChange)
    assert (change.scope, change.state, change.rule) == (
        Scope.strategy("GOLD"),
        TradingState.HALTED,
        "repeated_execution",
    )
    # halted until an operator looks, even once the window has passed
    refused(engine.check_intent(intent(), T0 + 120 * S), "halted")
    engine.set_state(Scope.strategy("GOLD"), TradingState.ACTIVE, "ops", "checked", T0 + 120 * S)
    passed(engine.check_intent(intent(), T0 + 120 * S))


# -- health ------------------------------------------------------------------------------------


def test_stale_market_data_blocks_entries_only() -> None:
    engine = make(defaults={"stale_after_ms": 500})
    later = T0 + 600 * MS
    v = refused(engine.check_order(order(), ENTRY, later), "stale_market_data")
    assert v.figures == {"age_ns": 600 * MS, "limit_ns": 500 * MS}
    refused(engine.check_order(order(), CLIENT, later), "stale_market_data")
    passed(engine.check_order(order(), TOP_UP, later))
    passed(engine.check_order(order(), UNWIND, later))
    passed(engine.check_order(order(), ENTRY, T0 + 500 * MS))
    # either leg stale blocks a spread entry
    engine.on_market("SHFE", "AU", D("560.00"), D("560.04"), None, later)
    v = refused(engine.check_intent(intent(), later), "stale_market_data")
    assert v.figures["leg"] == "outer"
    quote(engine, now=later)
    passed(engine.check_intent(intent(), later))


def test_slow_acks_alert_then_halt_the_venue() -> None:
    engine = make(defaults={"ack_latency": {"alert_ms": 50, "halt_after": 2}})
    assert engine.on_ack("SHFE", 10 * MS, T0) == ()
    (alert,) = engine.on_ack("SHFE", 60 * MS, T0)
    assert isinstance(alert, Alert)
    assert alert.check == "ack_latency"
    assert alert.figures["latency_ns"] == 60 * MS
    passed(engine.check_order(order(), CLIENT, T0))
    assert engine.on_ack("SHFE", 10 * MS, T0) == ()  # a fast one resets the run
    engine.on_ack("SHFE", 70 * MS, T0)
    alert, change = engine.on_ack("SHFE", 80 * MS, T0)
    assert isinstance(change, StateChange)
    assert (change.scope, change.state, change.rule) == (
        Scope.venue("SHFE"),
        TradingState.HALTED,
        "ack_latency",
    )
    refused(engine.check_order(order(), CLIENT, T0), "halted")
    passed(engine.check_cancel("SHFE", T0))


def test_clock_offset_beyond_tolerance_alerts_once() -> None:
    engine = make(venues={"COMEX": {"clock_offset_ms": 100}})
    assert engine.on_clock_offset("COMEX", 50 * MS, T0) == ()
    (alert,) = engine.on_clock_offset("COMEX", -150 * MS, T0)
    assert isinstance(alert, Alert)
    assert alert.check == "clock_offset"
    assert alert.figures == {"offset_ns": -150 * MS, "tolerance_ns": 100 * MS}
    assert engine.on_clock_offset("COMEX", -160 * MS, T0) == ()
    (back,) = engine.on_clock_offset("COMEX", 20 * MS, T0)
    assert isinstance(back, Alert)
    assert "back within" in back.message
    assert engine.on_clock_offset("SHFE", 10 * S, T0) == ()  # no tolerance set there


# -- pair checks -------------------------------------------------------------------------------


def test_intent_passes_and_then_both_legs_pass() -> None:
    engine = make(defaults={"orders_per_s": 1, "collar_ticks": 10, "max_net_position": 60})
    v = passed(engine.check_intent(intent(pay_up=3), T0))
    assert v.figures["inner_net_after"] == 28
    assert v.figures["outer_net_after"] == 9
    assert v.figures["pay_up_ticks"] == 3
    inner = order(qty=28, price="560.04")
    outer = order("sell", qty=9, price="2400.0", venue="COMEX", symbol="GC")
    send(engine, inner)
    send(engine, outer)
    # the tokens are spent, so the next intent waits for the throttle
    refused(engine.check_intent(intent(), T0), "orders_per_s")


def test_intent_worst_case_position_counts_working_orders() -> None:
    engine = make(
        instruments={
            "SHFE": {"AU": {"max_net_position": 28}},
            "COMEX": {"GC": {"max_net_position": 9}},
        }
    )
    passed(engine.check_intent(intent(), T0))
    send(engine, order(qty=1), CLIENT)
    v = refused(engine.check_intent(intent(), T0), "max_net_position")
    assert v.figures["leg"] == "inner"
    assert v.figures["net_after"] == 29
    assert v.reason.startswith("inner leg (SHFE:AU)")


def test_intent_worst_case_notional_includes_the_pay_up() -> None:
    # 28 x 560.04 x 1000 x 0.14 = 2,195,356.80; paying up 3 ticks: 560.10 -> 2,195,592.00
    engine = make(defaults={"max_notional": "2195400"})
    passed(engine.check_order(order(qty=28, price="560.04"), ENTRY, T0))
    v = refused(engine.check_intent(intent(pay_up=3), T0), "max_notional")
    assert v.figures["notional"] == D("2195592.00")
    assert v.figures["leg"] == "inner"
    passed(engine.check_intent(intent(pay_up=0), T0))


def test_intent_counts_both_legs_against_gross_notional() -> None:
    # at the mids: 28 AU = 2,195,278.40 USD; 9 GC = 2,160,090 USD
    engine = make(max_gross_notional="4000000")
    v = refused(engine.check_intent(intent(), T0), "max_gross_notional")
    assert v.figures["leg"] == "outer"
    assert v.figures["gross_notional"] == D("4355368.40")
    passed(engine.check_intent(intent(inner_qty=14, outer_qty=4), T0))


def test_max_pay_up() -> None:
    engine = make(strategy_defaults={"max_pay_up_ticks": 3})
    v = refused(engine.check_intent(intent(pay_up=5), T0), "max_pay_up")
    assert v.figures == {"pay_up_ticks": 5, "limit": 3}
    passed(engine.check_intent(intent(pay_up=3), T0))


def test_max_top_up_retries() -> None:
    engine = make(strategies={"GOLD": {"max_top_up_retries": 2}})
    v = refused(engine.check_intent(intent(retries=3), T0), "max_top_up_retries")
    assert v.figures == {"retries": 3, "limit": 2}
    passed(engine.check_intent(intent(retries=2), T0))


def test_max_slippage_past_the_touch() -> None:
    engine = make(strategy_defaults={"max_slippage_ticks": 4})
    # buying AU at 560.04 (the ask) paying up 5 ticks: 560.14, 5 ticks past the touch
    v = refused(engine.check_intent(intent(pay_up=5), T0), "max_slippage")
    assert v.figures == {
        "price": D("560.14"),
        "touch": D("560.04"),
        "ticks": D(5),
        "limit": 4,
        "leg": "inner",
    }
    passed(engine.check_intent(intent(pay_up=4), T0))


def test_intent_with_both_legs_on_one_contract_is_invalid() -> None:
    engine = make()
    bad = IntentFacts(
        "GOLD",
        LegFacts("SHFE", "AU", Side.BUY, 1, D("560.00")),
        LegFacts("SHFE", "AU", Side.SELL, 1, D("560.00")),
    )
    refused(engine.check_intent(bad, T0), "invalid_intent")


def test_disabled_strategy_is_refused() -> None:
    engine = make(strategies={"GOLD": {"enabled": False}})
    v = refused(engine.check_intent(intent(), T0), "strategy_disabled")
    assert v.figures == {"strategy": "GOLD"}
    refused(engine.check_order(order(), ENTRY, T0), "strategy_disabled")
    passed(engine.check_order(order(), CLIENT, T0))


# -- trading states ----------------------------------------------------------------------------


def test_states_per_scope_each_change_reported() -> None:
    engine = make()
    change = engine.set_state(Scope.venue("SHFE"), TradingState.HALTED, "ops", "maintenance", T0)
    assert change == StateChange(
        Scope.venue("SHFE"), TradingState.ACTIVE, TradingState.HALTED, "ops", "maintenance", T0
    )
    assert change.data == {
        "scope": "venue:SHFE",
        "previous": "active",
        "state": "halted",
        "who": "ops",
        "rule": None,
    }
    assert engine.set_state(Scope.venue("SHFE"), TradingState.HALTED, "ops", "again", T0) is None
    v = refused(engine.check_order(order(), CLIENT, T0), "halted")
    assert v.figures == {"scope": "venue:SHFE", "state": "halted"}
    passed(engine.check_cancel("SHFE", T0))
    passed(engine.check_order(order(venue="COMEX", symbol="GC", price="2400.0"), CLIENT, T0))

    engine.set_state(Scope.strategy("GOLD"), TradingState.REDUCING, "ops", "review", T0)
    gc = order(venue="COMEX", symbol="GC", price="2400.0")
    refused(engine.check_order(gc, ENTRY, T0), "reducing_only")
    passed(engine.check_order(gc, CLIENT, T0))

    engine.set_state(GLOBAL, TradingState.HALTED, "ops", "stop all", T0)
    v = refused(engine.check_order(gc, CLIENT, T0), "halted")
    assert v.figures["scope"] == "global"
    assert engine.state_of(GLOBAL) is TradingState.HALTED
    with pytest.raises(ValueError, match="who"):
        engine.set_state(GLOBAL, TradingState.ACTIVE, "", "", T0)
    with pytest.raises(ValueError, match="unknown venue"):
        engine.set_state(Scope.venue("LME"), TradingState.ACTIVE, "ops", "x", T0)


def test_reducing_lets_only_orders_toward_zero_through() -> None:
    engine = make()
    engine.on_fill(None, "SHFE", "AU", Side.BUY, 3, D("560.00"), T0)
    engine.set_state(GLOBAL, TradingState.REDUCING, "ops", "wind down", T0)
    refused(engine.check_order(order(qty=1), CLIENT, T0), "reducing_only")
    refused(engine.check_order(order("sell", qty=4), CLIENT, T0), "reducing_only")  # crosses
    first = send(engine, order("sell", qty=2), CLIENT)
    # two of the three are already being sold: only one more reduces
    refused(engine.check_order(order("sell", qty=2), CLIENT, T0), "reducing_only")
    passed(engine.check_order(order("sell", qty=1), CLIENT, T0))
    # a replace that only shrinks the order passes; one that grows it past the position not
    passed(engine.check_replace(first.clordid, "R1", 1, D("560.00"), CLIENT, T0))
    refused(engine.check_replace(first.clordid, "R1", 4, D("560.00"), CLIENT, T0), "reducing_only")


def test_halted_lets_only_cancels_through() -> None:
    engine = make()
    engine.on_fill(None, "SHFE", "AU", Side.BUY, 3, D("560.00"), T0)
    o = send(engine, order("sell", qty=1), CLIENT)
    engine.set_state(GLOBAL, TradingState.HALTED, "ops", "stop", T0)
    refused(engine.check_order(order("sell", qty=1), CLIENT, T0), "halted")
    refused(engine.check_replace(o.clordid, "R1", 1, D("560.02"), CLIENT, T0), "halted")
    passed(engine.check_cancel("SHFE", T0))


def test_scope_parsing_for_operators() -> None:
    assert Scope.parse("global") is GLOBAL
    assert Scope.parse("venue:SHFE") == Scope.venue("SHFE")
    assert Scope.parse("strategy:GOLD") == Scope.strategy("GOLD")
    assert TradingState.parse("Reducing") is TradingState.REDUCING
    for bad in ("desk:X", "venue", "global:X"):
        with pytest.raises(ValueError):
            Scope.parse(bad)
    with pytest.raises(ValueError, match="active, reducing or halted"):
        TradingState.parse("paused")


# -- kill switch -------------------------------------------------------------------------------


def test_kill_switch_on_one_venue() -> None:
    engine = make(defaults={"cancels_per_s": 1, "burst": 1})
    kill = engine.kill("SHFE", "alice", "runaway orders", T0)
    assert (kill.venue, kill.who, kill.why, kill.at_ns) == ("SHFE", "alice", "runaway orders", T0)
    assert kill.covers("SHFE") and not kill.covers("COMEX")
    assert kill.change is not None
    assert (kill.change.scope, kill.change.state, kill.change.rule) == (
        Scope.venue("SHFE"),
        TradingState.HALTED,
        "kill",
    )
    refused(engine.check_order(order(), CLIENT, T0), "halted")
    passed(engine.check_order(order(venue="COMEX", symbol="GC", price="2400.0"), CLIENT, T0))
    # every cancel the kill needs goes out, whatever the cancel throttle says
    passed(engine.check_cancel("SHFE", T0))
    for _ in range(5):
        passed(engine.check_cancel("SHFE", T0, kill=True))
    refused(engine.check_cancel("SHFE", T0), "cancels_per_s")
    engine.set_state(Scope.venue("SHFE"), TradingState.ACTIVE, "alice", "fixed", T0 + S)
    passed(engine.check_order(order(), CLIENT, T0 + S))


def test_kill_switch_everywhere() -> None:
    engine = make()
    kill = engine.kill(None, "bob", "exchange incident", T0)
    assert kill.scope is GLOBAL
    assert kill.covers("SHFE") and kill.covers("COMEX")
    refused(
        engine.check_order(order(venue="COMEX", symbol="GC", price="2400.0"), CLIENT, T0), "halted"
    )
    refused(engine.check_intent(intent(), T0), "halted")
    assert engine.kill(None, "bob", "again", T0).change is None  # already halted
    with pytest.raises(ValueError, match="who"):
        engine.kill(None, "", "no one", T0)


# -- receipts and configuration ----------------------------------------------------------------


def test_verdicts_and_notices_go_into_receipts() -> None:
    engine = make(defaults={"max_notional": "100000"})
    v = engine.check_order(order(qty=2), CLIENT, T0)
    receipt = Receipt.of(
        v.kind,
        ts_ns=T0,
        verdict=v.verdict,
        reason=v.reason,
        data={"check": v.check, **v.figures},
    )
    assert receipt.data["notional"] == "156800.0000"  # 2 x 560.00 x 1000 x 0.14, exact
    assert receipt.verdict == "refused"
    change = engine.kill("SHFE", "alice", "test", T0).change
    assert change is not None
    receipt = Receipt.of(change.kind, ts_ns=T0, reason=change.why, data=change.data)
    assert receipt.data["state"] == "halted"


def test_config_refuses_unknown_keys_by_name() -> None:
    with pytest.raises(ConfigError) as err:
        validate_mapping({"colour": "red"}, RiskConfig, Path("risk.toml"))
    assert "colour: unknown key; valid keys here are: account_defaults" in str(err.value)
    with pytest.raises(ValidationError, match="max_qtty"):
        RiskConfig.model_validate({"venues": {"SHFE": {"max_qtty": 3}}})
    with pytest.raises(ValidationError, match="window"):
        RiskConfig.model_validate({"defaults": {"reject_breaker": {"count": 3}}})


def test_config_values_are_checked_with_a_fix() -> None:
    with pytest.raises(ValidationError, match="min_qty 5 is above max_qty 2"):
        RiskConfig.model_validate({"defaults": {"min_qty": 5, "max_qty": 2}})
    with pytest.raises(ValidationError, match="base currency: its rate is 1"):
        RiskConfig.model_validate({"fx": {"USD": "2"}})
    with pytest.raises(ValidationError, match="three capitals"):
        RiskConfig.model_validate({"fx": {"yuan": "0.14"}})
    with pytest.raises(ValidationError, match="greater than 0"):
        RiskConfig.model_validate({"defaults": {"max_notional": "-1"}})


def test_engine_refuses_names_that_match_nothing() -> None:
    with pytest.raises(ValueError, match=r"risk\.fx has no rate for CNY"):
        RiskEngine(RiskConfig(), INSTRUMENTS)
    with pytest.raises(ValueError, match=r"risk\.venues\.LME: no such venue"):
        RiskEngine(
            RiskConfig.model_validate({"fx": {"CNY": 1}, "venues": {"LME": {}}}), INSTRUMENTS
        )
    with pytest.raises(ValueError, match=r"risk\.instruments\.SHFE\.AG: no such instrument"):
        RiskEngine(
            RiskConfig.model_validate(
                {"fx": {"CNY": 1}, "instruments": {"SHFE": {"AG": {"max_qty": 1}}}}
            ),
            INSTRUMENTS,
        )
    mixed = {
        **INSTRUMENTS,
        ("SHFE", "SC"): Instrument(venue="SHFE", symbol="SC", currency="USD", tick=D("0.1")),
    }
    with pytest.raises(ValueError, match="margin needs one currency per venue"):
        RiskEngine(
            RiskConfig.model_validate(
                {"fx": {"CNY": 1}, "venues": {"SHFE": {"margin_available": "1000"}}}
            ),
            mixed,
        )


def test_limits_layer_instrument_over_venue_over_defaults() -> None:
    engine = make(
        defaults={"max_qty": 10, "collar_ticks": 50},
        venues={"SHFE": {"max_qty": 5}},
        instruments={"SHFE": {"CU": {"max_qty": 20}}},
    )
    au = engine.contracts[("SHFE", "AU")]
    cu = engine.contracts[("SHFE", "CU")]
    gc = engine.contracts[("COMEX", "GC")]
    assert (au.max_qty, cu.max_qty, gc.max_qty) == (5, 20, 10)
    assert au.collar_width == D("1.00")
    assert cu.collar_width == D(500)


def test_the_documented_example_configures_the_demo() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Risk limits", 1)[1]
    match = re.search(r"```toml\n(.*?)```", section, re.S)
    assert match is not None
    config = RiskConfig.model_validate(tomllib.loads(match.group(1))["risk"])
    demo = {
        ("SHFE-SIM", "AU"): AU.model_copy(update={"venue": "SHFE-SIM"}),
        ("COMEX-SIM", "GC"): GC.model_copy(update={"venue": "COMEX-SIM"}),
    }
    engine = RiskEngine(config, demo)
    for venue in ("SHFE-SIM", "COMEX-SIM"):
        engine.on_session(venue, True)
    engine.on_market("SHFE-SIM", "AU", D("556.98"), D("557.02"), None, T0)
    engine.on_market("COMEX-SIM", "GC", D("2395.0"), D("2395.2"), None, T0)
    facts = IntentFacts(
        "GOLD",
        LegFacts("SHFE-SIM", "AU", Side.BUY, 28, D("557.04")),
        LegFacts("COMEX-SIM", "GC", Side.SELL, 9, D("2395.0")),
        max_pay_up_ticks=3,
        max_top_up_retries=2,
    )
    passed(engine.check_intent(facts, T0))
