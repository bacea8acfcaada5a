"""The kill switch and the risk gate over real FIX: two simulated venues, orders resting on both.

Every order leaves through risk. Pulling the switch must cancel every order the gateway has
working on every venue (or on the one named), refuse anything new with the reason, and leave
receipts that say who pulled it and why. What the venues' own books hold is the proof.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from oms.core import Oms
from oms.enums import Side, TimeInForce
from oms.events import OrdStatus
from oms.legs import Leg
from oms.orders import Order
from oms.pair_engine import NewLeg
from oms.pairs import Direction
from oms.receipts import ReceiptStore
from sessions.demo import gateway_config
from sessions.gateway import Gateway
from sessions.simulator.client import FixClient
from sessions.simulator.venue import Venue
from tests.conftest import wait_until
from tests.test_gateway import rest

pytestmark = pytest.mark.fix


@pytest.fixture
def gateway(
    venues: tuple[Venue, Venue], make_client: Callable[..., FixClient], tmp_path: Path
) -> Iterator[Gateway]:
    inner, outer = venues
    # A two-sided book on each venue gives risk its reference price; the spread between them
    # is inside the entry threshold, so the strategy itself trades nothing.
    maker_in, maker_out = make_client(inner, "T1"), make_client(outer, "T1")
    rest(maker_in, "AU", Side.SELL, 30, "560.40")
    rest(maker_in, "AU", Side.BUY, 30, "559.60")
    rest(maker_out, "GC", Side.BUY, 10, "2402.0")
    rest(maker_out, "GC", Side.SELL, 10, "2403.0")
    data = gateway_config(list(venues), tmp_path).model_dump(mode="json")
    data["risk"]["defaults"]["stale_after_ms"] = 600_000  # these books never move
    gw = Gateway(type(gateway_config(list(venues), tmp_path)).model_validate(data))
    gw.start()
    assert gw.wait_ready(20), "the gateway did not log on to both venues"
    yield gw
    gw.stop()


def rest_away(gw: Gateway, legs: list[tuple[Leg, Side, int, str]], trade_id: str) -> list[str]:
    """Orders priced away from the touch (they rest), sent the way every order goes: through
    the OMS's desk and risk. Their keys."""

    def place(oms: Oms) -> list[str]:
        spec = oms.pairs["GOLD"].spec
        orders = oms.place(
            spec,
            [
                NewLeg(leg, side, qty, Decimal(px), TimeInForce.DAY, "leg")
                for leg, side, qty, px in legs
            ],
            trade_id=trade_id,
            cause_ns=None,
        )
        return [o.key for o in orders]

    return gw.oms.call(place)


def statuses(gw: Gateway, keys: list[str]) -> dict[str, OrdStatus]:
    def read(oms: Oms) -> dict[str, OrdStatus]:
        found = (oms.orders.by_key(k) for k in keys)
        return {o.key: o.status for o in found if isinstance(o, Order)}

    return gw.oms.call(read)


def resting(venue: Venue, symbol: str) -> dict[str, int]:
    """Lots resting on the venue's book per side."""
    book = venue.book(symbol, depth=20)
    return {side: sum(level[1] for level in levels) for side, levels in book.items()}


def test_kill_cancels_every_working_order_on_both_venues_and_refuses_new_ones(
    venues: tuple[Venue, Venue], gateway: Gateway, tmp_path: Path
) -> None:
    inner, outer = venues
    before_in, before_out = resting(inner, "AU"), resting(outer, "GC")
    keys = rest_away(
        gateway,
        [
            (Leg.INNER, Side.BUY, 3, "558.00"),
            (Leg.INNER, Side.SELL, 2, "562.00"),
            (Leg.OUTER, Side.BUY, 4, "2399.0"),
            (Leg.OUTER, Side.SELL, 1, "2406.0"),
        ],
        "OPS-1",
    )
    assert wait_until(lambda: set(statuses(gateway, keys).values()) == {OrdStatus.NEW}, 10), (
        statuses(gateway, keys)
    )
    assert resting(inner, "AU") == {"bids": before_in["bids"] + 3, "asks": before_in["asks"] + 2}
    assert resting(outer, "GC") == {"bids": before_out["bids"] + 4, "asks": before_out["asks"] + 1}

    report = gateway.oms.call(lambda oms: oms.kill(None, who="ops-desk", why="venue outage drill"))
    assert report.scope == "global"
    assert sorted(report.cancels) == sorted(keys) and report.not_cancelled == ()
    assert report.state_change == "active -> halted"

    assert wait_until(lambda: set(statuses(gateway, keys).values()) == {OrdStatus.CANCELED}, 10), (
        statuses(gateway, keys)
    )
    # The venues' own books: only the makers' orders are left.
    assert resting(inner, "AU") == before_in and resting(outer, "GC") == before_out

    # New orders are refused before they reach a venue, entries and single orders alike.
    refused = rest_away(gateway, [(Leg.INNER, Side.BUY, 1, "558.00")], "OPS-2")
    after = gateway.oms.call(lambda oms: oms.orders.by_key(refused[0]))
    assert after is not None and after.status is OrdStatus.REJECTED
    outcome = gateway.oms.call(
        lambda oms: oms.engine.trade_now("GOLD", Direction.BUY_INNER, 1, oms.now())
    )
    assert isinstance(outcome, str) and "halted" in outcome
    assert resting(inner, "AU") == before_in

    gateway.stop()
    with ReceiptStore(f"sqlite:///{tmp_path / 'receipts.sqlite'}") as store:
        receipts = store.all()
    kills = [r for r in receipts if r.kind == "risk.kill"]
    assert len(kills) == 1 and kills[0].reason == "venue outage drill"
    assert kills[0].data["who"] == "ops-desk"
    changes = [r for r in receipts if r.kind == "risk.state"]
    assert [(r.data["scope"], r.data["previous"], r.data["state"]) for r in changes] == [
        ("global", "active", "halted")
    ]
    cancels = [r for r in receipts if r.kind == "command.cancel_order"]
    assert len(cancels) == 4 and all(r.verdict == "sent" for r in cancels)
    assert all(r.reason == "kill switch: venue outage drill" for r in cancels)
    refusals = [r for r in receipts if r.kind == "decision.risk" and r.verdict == "refused"]
    assert {r.data["check"] for r in refusals} == {"halted"}
    assert any(r.clordid == refused[0] for r in refusals)
    passes = [r for r in receipts if r.kind == "decision.risk" and r.verdict == "passed"]
    assert {r.clordid for r in passes} == set(keys)  # each order sent had its verdict first


def test_a_venue_kill_leaves_the_other_venue_trading_until_resumed(
    venues: tuple[Venue, Venue], gateway: Gateway
) -> None:
    inner, _ = venues
    keys = rest_away(
        gateway,
        [(Leg.INNER, Side.BUY, 2, "558.00"), (Leg.OUTER, Side.SELL, 2, "2406.0")],
        "OPS-3",
    )
    inner_key, outer_key = keys
    assert wait_until(lambda: set(statuses(gateway, keys).values()) == {OrdStatus.NEW}, 10)

    report = gateway.oms.call(
        lambda oms: oms.kill(inner.id, who="ops-desk", why="inner venue misbehaving")
    )
    assert report.scope == f"venue:{inner.id}" and report.cancels == (inner_key,)
    assert wait_until(lambda: statuses(gateway, keys)[inner_key] is OrdStatus.CANCELED, 10)
    assert statuses(gateway, keys)[outer_key] is OrdStatus.NEW

    # The other venue still takes orders; the killed one does not.
    more = rest_away(
        gateway,
        [(Leg.OUTER, Side.SELL, 1, "2407.0"), (Leg.INNER, Side.BUY, 1, "557.00")],
        "OPS-4",
    )
    assert wait_until(lambda: statuses(gateway, more)[more[0]] is OrdStatus.NEW, 10)
    assert statuses(gateway, more)[more[1]] is OrdStatus.REJECTED

    states: dict[str, Any] = gateway.oms.call(lambda oms: oms.risk.states())
    assert states["global"] == "active" and states[f"venue:{inner.id}"] == "halted"
    assert gateway.oms.call(lambda oms: oms.resume(inner.id, who="ops-desk", why="fixed"))
    again = rest_away(gateway, [(Leg.INNER, Side.BUY, 1, "557.00")], "OPS-5")
    assert wait_until(lambda: statuses(gateway, again)[again[0]] is OrdStatus.NEW, 10)
