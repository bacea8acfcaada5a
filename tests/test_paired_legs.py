"""Paired legs: both legs out at once, and whatever the venues do, the legs end aligned.

The arithmetic of alignment is stated exactly first; then real FIX against two simulated
venues with market makers, where a scripted fault (a reject, a partial fill) hits exactly
the order a scenario needs; then the bounded soak with random faults and a dropped
connection, reconciled against the venues' own records.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from oms.clock import now_ns
from oms.core import Oms
from oms.enums import Side
from oms.events import ExecType, ExecutionReceived, LineRole, OrdStatus
from oms.legs import Position, repair_span, whole_units_done
from oms.pairs import Direction, SpreadPair, TradeOutcome
from oms.receipts import ReceiptStore
from sessions.gateway import Gateway
from sessions.simulator.venue import Venue
from sessions.soak import PAIR, SoakPlan, run_soak, soak_gateway_config, venue_settings
from tests.conftest import wait_until
from tests.oms_harness import Harness, orders

M, N = 28, 9  # the gold pair: 28 inner lots of 1,000 g against 9 outer lots of 100 oz


# -- the arithmetic ------------------------------------------------------------------------


def test_legs_are_aligned_only_on_whole_units() -> None:
    assert Position(0, 0).aligned_units(M, N) == 0
    assert Position(28, -9).aligned_units(M, N) == 1
    assert Position(-56, 18).aligned_units(M, N) == -2
    assert Position(28, -8).aligned_units(M, N) is None
    assert Position(14, -9).aligned_units(M, N) is None
    assert Position(28, 9).aligned_units(M, N) is None  # both bought: not a spread


def test_imbalance_is_counted_in_inner_lots_exactly() -> None:
    assert Position(28, -9).imbalance_lots(M, N) == 0
    assert Position(28, 0).imbalance_lots(M, N) == 28
    assert Position(0, -9).imbalance_lots(M, N) == -28
    # 5 outer lots match 5 * 28 / 9 = 15.5555... inner lots, exactly as a fraction
    assert Position(28, -5).imbalance_lots(M, N) == Decimal(28) - Decimal(140) / 9


def test_deltas_bring_each_leg_to_the_target() -> None:
    assert Position(10, -9).deltas_to(1, M, N) == (18, 0)
    assert Position(28, -4).deltas_to(1, M, N) == (0, -5)
    assert Position(28, -4).deltas_to(0, M, N) == (-28, 4)


def test_an_unwind_goes_back_to_the_whole_units_both_legs_hold() -> None:
    # A two-unit buy: inner 56 filled, outer 10 of 18: one whole unit on both legs.
    assert whole_units_done(Position(56, -10), 0, 2, M, N) == 1
    # Nothing whole on the outer leg: back to the start.
    assert whole_units_done(Position(28, -5), 0, 1, M, N) == 0
    # Selling from +1 to 0: the inner sold 28, the outer bought back 4 of 9.
    assert whole_units_done(Position(0, -5), 1, 0, M, N) == 0
    # Never beyond the trade, never below its start.
    assert whole_units_done(Position(84, -27), 0, 2, M, N) == 2
    assert whole_units_done(Position(-28, 9), 0, 1, M, N) == 0


def test_a_bust_is_repaired_towards_the_position_held_before_it() -> None:
    # At +1 the inner fill is busted: restore +1 by a top-up, or go back to 0.
    assert repair_span(Position(0, -9), 1, M, N) == (0, 1)
    # At +2 a correction adds 5 inner lots: restore +2, or come down from 3.
    assert repair_span(Position(61, -18), 2, M, N) == (3, 2)


# -- real FIX: one fault at a time ---------------------------------------------------------


@pytest.fixture
def market(make_venue: Callable[..., Venue]) -> tuple[Venue, Venue]:
    inner, outer = venue_settings(SoakPlan(reject_rate=0, partial_fill_rate=0, ack_delay_ms=0))
    return make_venue(**inner), make_venue(**outer)


def start_gateway(venues: tuple[Venue, Venue], tmp_path: Path, **execution: Any) -> Gateway:
    config = soak_gateway_config(list(venues), tmp_path, SoakPlan())
    data = config.model_dump(mode="json")
    data["pairs"][0]["execution"] = execution
    gateway = Gateway(type(config).model_validate(data))
    gateway.start()
    assert gateway.wait_ready(20), "the gateway did not log on to both venues"
    return gateway


def trade(gateway: Gateway, direction: Direction = Direction.BUY_INNER) -> SpreadPair:
    """One spread trade, sent now, followed until it ends."""

    def send(oms: Oms) -> SpreadPair | str:
        return oms.engine.trade_now(PAIR, direction, 1, now_ns())

    sent = gateway.oms.call(send)
    assert isinstance(sent, SpreadPair), sent
    assert wait_until(lambda: sent.outcome is not None, 10), "the trade did not end"
    return sent


def kinds(gateway: Gateway, trade_id: str) -> list[str]:
    """The kinds of a trade's receipts, in order, once the gateway has stopped."""
    gateway.stop()
    with ReceiptStore(gateway.config.receipts_url) as store:
        return [r.kind for r in store.all() if r.pair_id == trade_id]


def test_a_rejected_leg_is_topped_up_and_the_trade_completes(
    market: tuple[Venue, Venue], tmp_path: Path, gateways: list[Gateway]
) -> None:
    _, outer = market
    gateway = start_gateway(market, tmp_path)
    gateways.append(gateway)
    outer.script_faults(["reject"])

    done = trade(gateway)

    assert done.outcome is TradeOutcome.TOPPED_UP
    assert (done.top_ups, done.unwinds) == (1, 0)
    assert (done.inner_filled, done.outer_filled) == (28, 9)
    assert gateway.oms.call(lambda o: (o.pairs[PAIR].units, o.pairs[PAIR].imbalance)) == (1, 0)
    assert done.held_imbalance == 28  # the inner leg alone, until the top-up filled
    steps = kinds(gateway, done.intent.intent_id)
    assert steps.index("decision.top_up") < steps.index("decision.pair_done")
    assert steps.count("command.send_order") == 3


def test_a_part_filled_leg_is_topped_up_for_what_it_lacks(
    market: tuple[Venue, Venue], tmp_path: Path, gateways: list[Gateway]
) -> None:
    inner, _ = market
    gateway = start_gateway(market, tmp_path)
    gateways.append(gateway)
    inner.script_faults(["fill:10"])

    done = trade(gateway, Direction.SELL_INNER)

    assert done.outcome is TradeOutcome.TOPPED_UP
    top_up = gateway.oms.call(lambda o: o.orders.by_key(done.orders[2]))
    assert top_up is not None
    assert (top_up.leg, top_up.side.name, top_up.qty, top_up.fill_qty) == ("inner", "SELL", 18, 18)
    assert gateway.oms.call(lambda o: o.pairs[PAIR].units) == -1


def test_a_leg_that_keeps_failing_is_unwound_after_the_last_top_up(
    market: tuple[Venue, Venue], tmp_path: Path, gateways: list[Gateway]
) -> None:
    _, outer = market
    gateway = start_gateway(market, tmp_path, max_top_ups=2)
    gateways.append(gateway)
    outer.script_faults(["reject", "reject", "reject"])  # the leg and both top-ups

    done = trade(gateway)

    assert done.outcome is TradeOutcome.UNWOUND
    assert (done.top_ups, done.unwinds) == (2, 1)
    assert (done.inner_filled, done.outer_filled) == (0, 0)  # bought 28, sold 28 back
    assert gateway.oms.call(lambda o: (o.pairs[PAIR].units, o.pairs[PAIR].imbalance)) == (0, 0)
    unwind = gateway.oms.call(lambda o: o.orders.by_key(done.orders[-1]))
    assert unwind is not None and (unwind.side.name, unwind.fill_qty) == ("SELL", 28)
    steps = kinds(gateway, done.intent.intent_id)
    assert steps.count("decision.top_up") == 2 and steps.count("decision.unwind") == 1


def test_without_top_ups_a_partial_fill_is_unwound_to_whole_units(
    market: tuple[Venue, Venue], tmp_path: Path, gateways: list[Gateway]
) -> None:
    _, outer = market
    gateway = start_gateway(market, tmp_path, max_top_ups=0)
    gateways.append(gateway)
    outer.script_faults(["fill:5"])

    done = trade(gateway)

    # 28 inner bought and 5 outer sold: no whole unit on the outer leg, so both go back.
    assert done.outcome is TradeOutcome.UNWOUND
    unwinds = gateway.oms.call(lambda o: [o.orders.by_key(k) for k in done.orders[2:]])
    assert sorted((u.leg, u.side.name, u.fill_qty) for u in unwinds if u) == [
        ("inner", "SELL", 28),
        ("outer", "BUY", 5),
    ]
    assert gateway.oms.call(lambda o: o.pairs[PAIR].legs) == Position(0, 0)


def test_a_pair_that_is_unbalanced_takes_no_new_trade_and_assumes_nothing(
    market: tuple[Venue, Venue], tmp_path: Path, gateways: list[Gateway]
) -> None:
    _, outer = market
    gateway = start_gateway(market, tmp_path)
    gateways.append(gateway)
    outer.set_faults(ack_delay_ms=400, fill_delay_ms=400)  # the outer leg answers late

    def send(oms: Oms) -> SpreadPair | str:
        return oms.engine.trade_now(PAIR, Direction.BUY_INNER, 1, now_ns())

    first = gateway.oms.call(send)
    assert isinstance(first, SpreadPair)
    assert wait_until(lambda: first.inner_filled == 28, 10)
    assert gateway.oms.call(send) == "pair GOLD has a trade in flight"
    # Nothing is topped up or unwound while the outer leg's answer is outstanding.
    assert first.outcome is None and first.top_ups == 0 and first.unwinds == 0
    assert wait_until(lambda: first.outcome is not None, 10)
    assert first.outcome is TradeOutcome.FILLED and first.peak_imbalance == 28


# -- the soak ------------------------------------------------------------------------------


def test_two_thousand_spread_attempts_under_faults_end_with_nothing_unhedged(
    tmp_path: Path,
) -> None:
    result = run_soak(SoakPlan(attempts=2_000), tmp_path)
    print(
        f"\nsoak: {result.attempts} attempts, outcomes {dict(result.outcomes)}, "
        f"top-up rounds {result.top_up_rounds}, unwind rounds {result.unwind_rounds}, "
        f"connections dropped {result.drops}, {result.orders} orders, "
        f"{result.duration_s:.1f} s"
    )
    assert result.attempts == 2_000 and sum(result.outcomes.values()) == 2_000
    assert result.residual_imbalance == 0
    assert result.working_orders == 0 and result.venue_working == 0
    assert result.stuck == 0
    assert result.mismatches == []
    assert result.drops >= 1
    assert result.top_up_rounds > 0  # the faults happened and were answered
    assert "open" not in result.outcomes


# -- busts ---------------------------------------------------------------------------------


def test_a_bust_after_the_trade_reopens_the_imbalance_and_it_is_repaired() -> None:
    """The venue busts the inner fill of a finished trade (ExecType H): the pair holds 9
    outer lots unhedged, so the engine tops the inner leg up again."""
    h = Harness()
    h.book("INNER", "AU", [("559.90", 60)], [("560.00", 60)])  # deep enough for two fills
    h.book("OUTER", "GC", [("2406.0", 20)], [("2410.0", 20)])
    inner, outer = orders(h)
    h.fill_in_full(inner, "560.00")
    h.fill_in_full(outer, "2406.0")
    pair = h.oms.pairs["GOLD"]
    assert pair.working is None and pair.units == 1
    fill = h.oms.orders.by_key(inner.clordid).fills[-1]  # type: ignore[union-attr]

    h.oms.handle(
        ExecutionReceived(
            venue="INNER",
            line=LineRole.PRIMARY,
            clordid=inner.clordid,
            orig_clordid=None,
            venue_order_id=f"V-{inner.clordid}",
            exec_id="BUST-1",
            exec_type=ExecType.TRADE_CANCEL,
            ord_status=OrdStatus.CANCELED,
            symbol="AU",
            side=Side.BUY,
            order_qty=28,
            last_qty=0,
            last_px=None,
            cum_qty=0,
            leaves_qty=0,
            avg_px=Decimal(0),
            transact_ns=None,
            sending_ns=None,
            recv_ns=next(h.clock),
            exec_ref_id=fill.exec_id,
        )
    )

    assert pair.imbalance == -28 and pair.working is not None
    busted = h.oms.orders.by_key(inner.clordid)
    assert busted is not None and busted.status is OrdStatus.CANCELED  # an IOC trades no more
    assert busted not in h.oms.orders.working()
    # risk's view: the bust took the 28 lots back out; the top-up's 28 are working
    assert h.oms.risk.exposure("INNER", "AU") == (0, 28, 0)
    top_up = orders(h)[-1]
    assert (top_up.venue, top_up.side, top_up.qty) == ("INNER", Side.BUY, 28)
    assert [r.kind for r in h.receipts][-4:] == [
        "decision.repair",
        "decision.top_up",
        "decision.risk",
        "command.send_order",
    ]
    assert h.receipts[-2].verdict == "passed" and h.receipts[-2].clordid == top_up.clordid
    h.fill_in_full(top_up, "560.00")
    assert pair.working is None and pair.units == 1 and pair.imbalance == 0
    assert pair.done[-1].outcome is TradeOutcome.TOPPED_UP
