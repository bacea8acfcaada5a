"""The gateway end to end over real FIX: two simulated venues, one spread trade.

The venues have no market maker here: a client of each venue (T1) rests the liquidity by
hand, priced so that the converted spread is past the entry threshold in one direction
only. So exactly one spread trade must happen, both legs must fill in full against T1's
orders, and the receipt store must hold every step of it, in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from oms.enums import Side
from oms.receipts import ReceiptStore
from sessions.demo import gateway_config
from sessions.gateway import Gateway
from sessions.simulator.client import FixClient
from sessions.simulator.venue import Venue
from tests.conftest import wait_until

pytestmark = pytest.mark.fix


@pytest.fixture
def gateway(venues: tuple[Venue, Venue], tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(gateway_config(list(venues), tmp_path))
    yield gw
    gw.stop()


def rest(client: FixClient, symbol: str, side: Side, qty: int, price: str) -> str:
    clordid = client.new_order(symbol, side, qty, Decimal(price))
    client.wait_report(clordid, "0")
    return clordid


def test_one_spread_trade_fills_both_legs_and_leaves_a_receipt_for_every_step(
    venues: tuple[Venue, Venue],
    gateway: Gateway,
    make_client: Callable[..., FixClient],
    tmp_path: Path,
) -> None:
    inner, outer = venues
    maker_in, maker_out = make_client(inner, "T1"), make_client(outer, "T1")
    # Inner ask 560.00 CNY/g is 2402.475 USD/oz at 7.25; the outer bid 2406.0 is 3.525 above
    # it, past the 2.0 entry. The other way round (inner bid 559.90 = 2402.046 against the
    # outer ask 2406.5) is 4.45 the wrong way: nothing to close, nothing else to enter.
    ask_in = rest(maker_in, "AU", Side.SELL, 30, "560.00")
    rest(maker_in, "AU", Side.BUY, 30, "559.90")
    bid_out = rest(maker_out, "GC", Side.BUY, 10, "2406.0")
    rest(maker_out, "GC", Side.SELL, 10, "2406.5")

    gateway.start()
    assert gateway.wait_ready(20), "the gateway did not log on to both venues"
    maker_in.wait_for(lambda m: m.get(11) == ask_in and m.get(150) == "F" and m.get(151) == "2", 10)
    maker_out.wait_for(
        lambda m: m.get(11) == bid_out and m.get(150) == "F" and m.get(151) == "1", 10
    )

    def settled(oms: Any) -> Any:
        pair = oms.pairs["GOLD"]
        return pair.working is None and len(pair.done) == 1

    assert wait_until(lambda: gateway.oms.call(settled), 5), "the spread trade did not complete"
    pair = gateway.oms.call(lambda oms: oms.pairs["GOLD"])
    trade = pair.done[0]
    assert (trade.inner_filled, trade.outer_filled) == (28, 9)
    assert pair.imbalance == 0 and pair.position == 1

    # What the venues' own books say the gateway did: T1's resting orders took the other side.
    maker_fills_in = [m for m in maker_in.reports(ask_in) if m.get(150) == "F"]
    maker_fills_out = [m for m in maker_out.reports(bid_out) if m.get(150) == "F"]
    assert sum(int(m[32]) for m in maker_fills_in) == 28
    assert sum(int(m[32]) for m in maker_fills_out) == 9
    assert {m[31] for m in maker_fills_in} == {"560"} and {m[31] for m in maker_fills_out} == {
        "2406"
    }

    gateway.stop()  # flushes the receipt writer
    with ReceiptStore(f"sqlite:///{tmp_path / 'receipts.sqlite'}") as store:
        receipts = store.all()
    kinds = [r.kind for r in receipts]
    assert kinds.count("decision.spread_intent") == 1
    assert kinds.count("command.send_order") == 2
    assert kinds.count("decision.pair_done") == 1
    intent_at = kinds.index("decision.spread_intent")
    sends = [i for i, k in enumerate(kinds) if k == "command.send_order"]
    done_at = kinds.index("decision.pair_done")
    assert intent_at < sends[0] < sends[1] < done_at

    intent = receipts[intent_at]
    assert intent.verdict == "entry" and intent.cause_ns is not None
    assert intent.data["inner_qty"] == 28 and intent.data["outer_qty"] == 9
    orders = {r.clordid: r for r in (receipts[i] for i in sends)}
    assert {r.venue for r in orders.values()} == {"INNER", "OUTER"}
    assert all(r.verdict == "sent" and r.cause_ns == intent.cause_ns for r in orders.values())
    assert all(r.latency_ns is not None and r.latency_ns > 0 for r in orders.values())

    for clordid, send in orders.items():
        executions = [
            (i, r)
            for i, r in enumerate(receipts)
            if r.kind == "event.execution" and r.clordid == clordid
        ]
        types = [r.data["exec_type"] for _, r in executions]
        assert types[0] == "0" and types[-1] == "F", types  # acknowledged, then filled
        assert all(i > kinds.index("command.send_order") for i, _ in executions)
        assert executions[-1][0] < done_at
        assert all(r.raw and "35=8" in r.raw for _, r in executions)
        last = executions[-1][1]
        assert last.data["leaves_qty"] == 0
        assert last.data["cum_qty"] == (28 if send.venue == "INNER" else 9)
    assert receipts[done_at].verdict == "filled"
    # Every receipt is in the order the OMS made it.
    assert [r.ts_ns for r in receipts] == sorted(r.ts_ns for r in receipts)
    assert {"event.line_state", "event.market_data"} <= set(kinds)
