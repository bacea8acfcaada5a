"""The venue simulator over real FIX 4.4: quickfix on both ends, loopback, a real Venue.

Every test drives the venue through ``FixClient`` (the same wire a gateway would use) and
checks concrete field values. Fault injection lives in ``test_venue_faults.py``.

Stopping a quickfix engine costs about a second (its timers tick once a second), so the plain
order and market-data tests share one venue (``market``), each on a gold book of its own
(``sym``); tests that need a venue configured their own way start one with ``make_venue``.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from oms.clock import now_ns
from oms.enums import Side, TimeInForce
from sessions.fixwire import utc_timestamp
from sessions.simulator.client import FixClient, Received
from sessions.simulator.matching import Phase
from sessions.simulator.venue import Venue

from .conftest import GOLD_INNER, venue_config

pytestmark = pytest.mark.fix

D = Decimal
BUY, SELL = Side.BUY, Side.SELL
TS_MICROS = re.compile(r"^\d{8}-\d{2}:\d{2}:\d{2}\.\d{6}$")
AVG_PLACES = D("0.00000001")
ROOT = Path(__file__).resolve().parent.parent
SHARED_BOOKS = 20


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def market() -> Iterator[tuple[Venue, FixClient, FixClient]]:
    """One venue for the module, with clients T1 and T2 logged on.

    Its CompID, like every test venue's, is unique in the process: quickfix keeps one
    process-wide table of sessions, so two live sessions with the same CompIDs would collide.
    """
    books = [{**GOLD_INNER, "symbol": f"AU{i:02d}"} for i in range(SHARED_BOOKS)]
    lots_of_5 = {**GOLD_INNER, "symbol": "AU5", "lot": 5}
    venue = Venue(venue_config(id="MKT", comp_id="MKT", instruments=[*books, lots_of_5]))
    venue.start()
    clients: list[FixClient] = []
    try:
        for sender in ("T1", "T2"):
            client = FixClient(port=venue.config.port, sender=sender, target=venue.config.comp_id)
            clients.append(client)
            client.start()
        yield venue, clients[0], clients[1]
    finally:
        for client in clients:
            client.stop()
        venue.retire()


_book_numbers = itertools.count()


@pytest.fixture
def sym(market: tuple[Venue, FixClient, FixClient]) -> str:
    """A gold book nobody else uses: tick 0.02, close 560.00, band 6 % (526.40-593.60), max 500."""
    n = next(_book_numbers)
    assert n < SHARED_BOOKS, "raise SHARED_BOOKS"
    return f"AU{n:02d}"


@pytest.fixture
def venue(market: tuple[Venue, FixClient, FixClient]) -> Venue:
    return market[0]


@pytest.fixture
def t1(market: tuple[Venue, FixClient, FixClient]) -> FixClient:
    return market[1]


@pytest.fixture
def t2(market: tuple[Venue, FixClient, FixClient]) -> FixClient:
    return market[2]


# -- helpers -------------------------------------------------------------------------------


def wait_n(
    client: FixClient, pred: Callable[[Received], bool], n: int, timeout: float = 5.0
) -> list[Received]:
    """The first ``n`` received messages satisfying ``pred``, in arrival order."""
    out: list[Received] = []
    start = 0
    deadline = time.monotonic() + timeout
    for _ in range(n):
        msg = client.wait_for(pred, max(0.01, deadline - time.monotonic()), start=start)
        start = next(i for i, m in enumerate(client.received) if m is msg) + 1
        out.append(msg)
    return out


def ers(client: FixClient, clordid: str, n: int, timeout: float = 5.0) -> list[Received]:
    """The first ``n`` execution reports whose ClOrdID is ``clordid``."""
    return wait_n(client, lambda m: m.msg_type == "8" and m.get(11) == clordid, n, timeout)


def settle(venue: Venue, client: FixClient) -> None:
    """Everything the venue has sent ``client`` so far has arrived.

    The venue thread flushes market data; a TestRequest answered after that flush arrives
    after everything sent before it on the same session.
    """
    venue.call(lambda v: v.md.flush())
    test_id = client.next_id()
    client.send("1", [(112, test_id)])
    client.wait_msg("0", t112=test_id)


def check(msg: Received, **expected: object) -> None:
    """Assert tags by number: ``check(m, t150="F", t31=D("560"))``; Decimals compare as numbers."""
    for key, want in expected.items():
        tag = int(key.lstrip("t"))
        got = msg.get(tag)
        if isinstance(want, Decimal):
            assert got is not None and D(got) == want, f"tag {tag}: {got!r} != {want}"
        else:
            assert got == (None if want is None else str(want)), f"tag {tag}: {got!r} != {want!r}"


def avg(fills: list[tuple[Decimal, int]]) -> Decimal:
    qty = sum(q for _, q in fills)
    return (sum(p * q for p, q in fills) / qty).quantize(AVG_PLACES)


def rest(client: FixClient, symbol: str, side: Side, qty: int, price: str) -> str:
    """Place a limit order and wait for its acknowledgement."""
    clordid = client.new_order(symbol, side, qty, D(price))
    client.wait_report(clordid, "0")
    return clordid


def book(venue: Venue, symbol: str) -> dict[str, list[tuple[Decimal, int, int]]]:
    return venue.book(symbol)


def all_exec_ids(*clients: FixClient) -> list[str]:
    return [m[17] for c in clients for m in list(c.received) if m.msg_type == "8"]


# -- 1. orders that rest, cross, walk the book; every field of every report ------------------


def test_a_buy_walking_three_levels_gets_one_fill_per_level_at_the_resting_prices(
    venue, t1, t2, sym
):
    s1 = rest(t2, sym, SELL, 3, "560.00")
    s2 = rest(t2, sym, SELL, 4, "560.10")
    s3 = rest(t2, sym, SELL, 10, "560.20")
    assert book(venue, sym)["asks"] == [
        (D("560.00"), 3, 1),
        (D("560.10"), 4, 1),
        (D("560.20"), 10, 1),
    ]

    buy = t1.new_order(sym, BUY, 12, D("560.20"))
    ack, f1, f2, f3 = ers(t1, buy, 4)
    common = dict(t11=buy, t55=sym, t54="1", t38="12", t40="2", t44=D("560.20"), t59="0", t30="MKT")
    check(ack, t150="0", t39="0", t14="0", t151="12", t6=D(0), **common)
    assert ack.get(31) is None and ack.get(32) is None
    check(
        f1,
        t150="F",
        t39="1",
        t31=D("560.00"),
        t32="3",
        t14="3",
        t151="9",
        t6=avg([(D("560.00"), 3)]),
        **common,
    )
    check(
        f2,
        t150="F",
        t39="1",
        t31=D("560.10"),
        t32="4",
        t14="7",
        t151="5",
        t6=avg([(D("560.00"), 3), (D("560.10"), 4)]),
        **common,
    )
    check(
        f3,
        t150="F",
        t39="2",
        t31=D("560.20"),
        t32="5",
        t14="12",
        t151="0",
        t6=avg([(D("560.00"), 3), (D("560.10"), 4), (D("560.20"), 5)]),
        **common,
    )
    assert D(f2[6]) == D("560.05714286") and D(f3[6]) == D("560.11666667")
    assert len({m[37] for m in (ack, f1, f2, f3)}) == 1
    for m in (ack, f1, f2, f3):
        assert TS_MICROS.match(m[60]), m[60]

    # The maker side: each resting sell gets its own fill at its own price.
    (a1, m1), (a2, m2), (a3, m3) = ers(t2, s1, 2), ers(t2, s2, 2), ers(t2, s3, 2)
    check(
        m1,
        t150="F",
        t39="2",
        t54="2",
        t55=sym,
        t31=D("560.00"),
        t32="3",
        t14="3",
        t151="0",
        t6=D("560.00"),
        t30="MKT",
        t37=a1[37],
    )
    check(
        m2,
        t150="F",
        t39="2",
        t54="2",
        t31=D("560.10"),
        t32="4",
        t14="4",
        t151="0",
        t6=D("560.10"),
        t30="MKT",
        t37=a2[37],
    )
    check(
        m3,
        t150="F",
        t39="1",
        t54="2",
        t31=D("560.20"),
        t32="5",
        t14="5",
        t151="5",
        t6=D("560.20"),
        t30="MKT",
        t37=a3[37],
    )
    assert len({a1[37], a2[37], a3[37], ack[37]}) == 4
    for m in (m1, m2, m3):
        assert TS_MICROS.match(m[60]), m[60]
    assert book(venue, sym) == {"bids": [], "asks": [(D("560.20"), 5, 1)]}

    # Replace the partly filled maker down (5/1), then cancel what is left (4/4).
    rep = t2.replace(s3, sym, SELL, 8, D("560.20"))
    r = t2.wait_report(rep, "5")
    check(r, t39="1", t41=s3, t37=a3[37], t38="8", t14="5", t151="3", t6=D("560.20"), t30="MKT")
    cxl = t2.cancel(rep, sym, SELL)
    c = t2.wait_report(cxl, "4")
    check(c, t39="4", t41=rep, t37=a3[37], t14="5", t151="0", t6=D("560.20"), t30="MKT")
    assert TS_MICROS.match(r[60]) and TS_MICROS.match(c[60])

    # An unfilled order: replace (5/0) then cancel (4/4).
    bid = rest(t1, sym, BUY, 2, "550.00")
    rep1 = t1.replace(bid, sym, BUY, 4, D("550.02"))
    r1 = t1.wait_report(rep1, "5")
    check(r1, t39="0", t41=bid, t38="4", t44=D("550.02"), t14="0", t151="4", t6=D(0))
    cxl1 = t1.cancel(rep1, sym, BUY)
    check(t1.wait_report(cxl1, "4"), t39="4", t41=rep1, t37=r1[37], t14="0", t151="0")
    assert book(venue, sym) == {"bids": [], "asks": []}

    mine = [m for c in (t1, t2) for m in c.reports() if m.get(55) == sym]
    assert len(mine) == 4 + 6 + 2 + 3
    exec_ids = all_exec_ids(t1, t2)  # everything this venue has sent in the module so far
    assert len(exec_ids) == len(set(exec_ids))
    assert venue.application.callback_errors == 0


# -- 2. rejects ----------------------------------------------------------------------------


def test_orders_breaking_venue_rules_are_rejected_with_the_fix_reason(venue, t1, sym):
    def rejected(clordid: str, reason: str, text: str) -> Received:
        m = t1.wait_report(clordid, "8")
        check(m, t39="8", t103=reason, t14="0", t151="0", t30="MKT")
        assert text in m[58], m[58]
        return m

    rejected(t1.new_order(sym, BUY, 1, D("560.01")), "99", "tick")
    rejected(t1.new_order(sym, BUY, 1, D("593.62")), "99", "band")  # band is 526.40-593.60
    rejected(t1.new_order(sym, SELL, 1, D("526.38")), "99", "band")
    rejected(t1.new_order("AU5", BUY, 7, D("560.00")), "13", "lot")  # lot of 5
    rejected(t1.new_order(sym, BUY, 501, D("560.00")), "13", "maximum order size")
    m = rejected(t1.new_order("ZZ", BUY, 1, D("560.00")), "1", "unknown symbol")
    check(m, t55="ZZ", t54="1")

    dup = rest(t1, sym, BUY, 1, "559.00")
    t1.new_order(sym, BUY, 2, D("558.00"), clordid=dup)
    m = t1.wait_report(dup, "8")
    check(m, t39="8", t103="6", t38="2")
    assert book(venue, sym)["bids"] == [(D("559.00"), 1, 1)]  # the first one still rests alone

    stop_order = t1.next_id()
    t1.send(
        "D",
        [
            (11, stop_order),
            (55, sym),
            (54, "1"),
            (60, utc_timestamp(now_ns())),
            (38, 1),
            (40, "3"),
            (99, "561.00"),
        ],
    )
    m = t1.wait_report(stop_order, "8")
    check(m, t39="8", t103="11", t37="NONE", t55=sym, t54="1")
    assert "OrdType(40)=3" in m[58]
    gtd = t1.next_id()
    t1.send(
        "D",
        [
            (11, gtd),
            (55, sym),
            (54, "1"),
            (60, utc_timestamp(now_ns())),
            (38, 1),
            (40, "2"),
            (44, "559.00"),
            (59, "6"),
        ],
    )
    check(t1.wait_report(gtd, "8"), t39="8", t103="11")
    assert book(venue, sym)["bids"] == [(D("559.00"), 1, 1)]
    assert book(venue, "AU5") == {"bids": [], "asks": []}
    assert venue.application.callback_errors == 0


# -- 3. cancel / replace ---------------------------------------------------------------------


def test_replace_reducing_qty_keeps_time_priority(venue, t1, t2, sym):
    first = rest(t2, sym, SELL, 5, "561.00")
    second = rest(t2, sym, SELL, 5, "561.00")
    smaller = t2.replace(first, sym, SELL, 3, D("561.00"))
    check(t2.wait_report(smaller, "5"), t38="3", t151="3", t39="0")
    assert book(venue, sym)["asks"] == [(D("561.00"), 8, 2)]

    buy = t1.new_order(sym, BUY, 3, D("561.00"))
    check(t1.wait_report(buy, "F"), t39="2", t32="3")
    check(t2.wait_report(smaller, "F"), t39="2", t32="3", t14="3")  # the reduced order went first
    settle(venue, t2)
    assert not [m for m in t2.reports(second) if m.get(150) == "F"]
    assert book(venue, sym)["asks"] == [(D("561.00"), 5, 1)]


def test_replace_changing_price_loses_time_priority(venue, t1, t2, sym):
    early = rest(t1, sym, BUY, 5, "550.00")
    late = rest(t1, sym, BUY, 5, "550.02")
    moved = t1.replace(early, sym, BUY, 5, D("550.02"))  # joins 550.02 behind `late`
    check(t1.wait_report(moved, "5"), t44=D("550.02"), t39="0")
    assert book(venue, sym)["bids"] == [(D("550.02"), 10, 2)]

    sell = t2.new_order(sym, SELL, 5, D("550.02"))
    check(t2.wait_report(sell, "F"), t39="2", t31=D("550.02"))
    check(t1.wait_report(late, "F"), t39="2", t32="5")
    settle(venue, t1)
    assert not [m for m in t1.reports(moved) if m.get(150) == "F"]
    assert book(venue, sym)["bids"] == [(D("550.02"), 5, 1)]


def test_cancel_and_replace_of_unknown_or_finished_orders_get_cancel_rejects(venue, t1, t2, sym):
    cxl = t1.cancel("no-such-order", sym, BUY)
    check(t1.wait_msg("9", t11=cxl), t41="no-such-order", t102="1", t434="1", t37="NONE")
    rep = t1.replace("no-such-order-2", sym, BUY, 1, D("559.00"))
    check(t1.wait_msg("9", t11=rep), t41="no-such-order-2", t102="1", t434="2", t37="NONE")

    done = rest(t2, sym, SELL, 2, "560.00")
    done_id = t2.wait_report(done, "0")[37]
    buy = t1.new_order(sym, BUY, 2, D("560.00"))
    t1.wait_report(buy, "F")
    t2.wait_report(done, "F")
    late = t2.cancel(done, sym, SELL)
    check(t2.wait_msg("9", t11=late), t41=done, t37=done_id, t102="0", t434="1", t39="2")
    late_rep = t2.replace(done, sym, SELL, 3, D("560.00"))
    check(t2.wait_msg("9", t11=late_rep), t37=done_id, t102="0", t434="2", t39="2")
    assert venue.application.callback_errors == 0


def test_a_client_cannot_cancel_or_replace_another_clients_order(venue, t1, t2, sym):
    mine = rest(t1, sym, BUY, 3, "555.00")
    order_id = t1.wait_report(mine, "0")[37]

    by_clordid = t2.cancel(mine, sym, BUY)
    check(t2.wait_msg("9", t11=by_clordid), t102="1", t434="1", t37="NONE")
    by_order_id = t2.cancel(mine, sym, BUY, order_id=order_id)
    check(t2.wait_msg("9", t11=by_order_id), t102="1", t434="1", t37="NONE")
    replace = t2.replace(mine, sym, BUY, 1, D("555.00"))
    check(t2.wait_msg("9", t11=replace), t102="1", t434="2", t37="NONE")

    assert book(venue, sym)["bids"] == [(D("555.00"), 3, 1)]
    req = t1.status(mine, sym, BUY)
    check(t1.wait_msg("8", t790=req), t150="I", t39="0", t151="3", t37=order_id)
    settle(venue, t1)
    assert len(t1.reports(mine)) == 2  # its ack and the status answer: nothing from T2's tries
    # ... and its owner can still cancel it.
    mine_cxl = t1.cancel(mine, sym, BUY, order_id=order_id)
    check(t1.wait_report(mine_cxl, "4"), t39="4", t41=mine)


# -- 4. order status -------------------------------------------------------------------------


def test_order_status_request_reports_the_orders_current_state(venue, t1, t2, sym):
    bid = rest(t1, sym, BUY, 10, "559.00")
    order_id = t1.wait_report(bid, "0")[37]
    req = t1.status(bid, sym, BUY)
    check(t1.wait_msg("8", t790=req), t150="I", t39="0", t11=bid, t14="0", t151="10", t37=order_id)

    t2.new_order(sym, SELL, 4, D("559.00"))
    t1.wait_report(bid, "F")
    req = t1.status(bid, sym, BUY)
    check(t1.wait_msg("8", t790=req), t150="I", t39="1", t14="4", t151="6", t6=D("559.00"))

    t2.new_order(sym, SELL, 6, D("558.00"))  # trades at the resting bid's price
    t1.wait_for(lambda m: m.get(11) == bid and m.get(150) == "F" and m.get(39) == "2")
    req = t1.status(bid, sym, BUY)
    check(t1.wait_msg("8", t790=req), t150="I", t39="2", t14="10", t151="0", t6=D("559.00"))

    req = t1.status("never-sent", sym, BUY)
    check(t1.wait_msg("8", t790=req), t150="I", t39="8", t11="never-sent")


# -- 5. market data ------------------------------------------------------------------------


def md_entries(msg: Received, first_tag: int) -> list[dict[int, str]]:
    """The repeating-group entries of a W (first tag 269) or X (first tag 279)."""
    out: list[dict[int, str]] = []
    for tag, value in msg.fields:
        if tag == first_tag:
            out.append({})
        if out and tag in (279, 269, 270, 271, 55):
            out[-1][tag] = value
    return out


def book_levels(venue: Venue, symbol: str) -> dict[str, dict[Decimal, int]]:
    top = venue.book(symbol)
    return {"0": {p: q for p, q, _ in top["bids"]}, "1": {p: q for p, q, _ in top["asks"]}}


class MDView:
    """A subscriber's book rebuilt from a snapshot and the incremental updates after it."""

    def __init__(self, snapshot: Received, symbol: str) -> None:
        self.symbol = symbol
        self.levels: dict[str, dict[Decimal, int]] = {"0": {}, "1": {}}
        self.trades: list[tuple[Decimal, int]] = []
        for e in md_entries(snapshot, 269):
            self.levels[e[269]][D(e[270])] = int(e[271])

    def apply(self, msg: Received) -> None:
        for e in md_entries(msg, 279):
            assert e[55] == self.symbol
            side, px, action = e[269], D(e[270]), e[279]
            if side == "2":
                assert action == "0"
                self.trades.append((px, int(e[271])))
            elif action == "0":
                assert px not in self.levels[side], f"new level {px} already there"
                self.levels[side][px] = int(e[271])
            elif action == "1":
                assert px in self.levels[side], f"change of unknown level {px}"
                self.levels[side][px] = int(e[271])
            else:
                assert action == "2" and self.levels[side].pop(px, None) is not None, e


def test_market_data_snapshot_plus_updates_rebuild_the_venues_top_five(venue, t1, t2, sym):
    rest(t2, sym, BUY, 5, "559.00")
    rest(t2, sym, BUY, 3, "558.98")
    for i, px in enumerate(["560.50", "560.52", "560.54"]):
        rest(t2, sym, SELL, 2 + i, px)

    req = t1.subscribe([sym], depth=5)
    snap = t1.wait_msg("W", t262=req)
    check(snap, t55=sym, t268="5")
    view = MDView(snap, sym)
    assert view.levels == book_levels(venue, sym)
    assert view.levels["1"] == {D("560.50"): 2, D("560.52"): 3, D("560.54"): 4}

    # Adds: more ask levels than the subscription's depth, a worse bid, and a same-level add.
    new_asks = ["560.56", "560.58", "560.60", "560.62", "560.64", "560.66"]
    asks = [rest(t2, sym, SELL, 1, px) for px in new_asks]
    rest(t2, sym, BUY, 7, "558.00")
    rest(t2, sym, BUY, 1, "559.00")
    # Trades: a buy that walks two ask levels and part of the third.
    walk = t1.new_order(sym, BUY, 7, D("560.54"))
    fills = ers(t1, walk, 4)[1:]
    assert [(D(m[31]), int(m[32])) for m in fills] == [
        (D("560.50"), 2),
        (D("560.52"), 3),
        (D("560.54"), 2),
    ]
    # Cancels: one outside the top five (no update), one inside it (560.64 moves in); then
    # a replace that changes a level's size.
    t2.wait_report(t2.cancel(asks[5], sym, SELL), "4")
    t2.wait_report(t2.cancel(asks[1], sym, SELL), "4")
    t2.wait_report(t2.replace(asks[0], sym, SELL, 6, D("560.56")), "5")
    # A sell that takes out the whole best bid level (two orders).
    hit = t1.new_order(sym, SELL, 6, D("559.00"))
    ers(t1, hit, 3)

    settle(venue, t1)
    updates = [m for m in t1.received if m.msg_type == "X" and m.get(262) == req]
    assert updates
    for m in updates:
        view.apply(m)
    expected = book_levels(venue, sym)
    assert view.levels == expected
    assert expected == {
        "0": {D("558.98"): 3, D("558.00"): 7},
        "1": {D("560.54"): 2, D("560.56"): 6, D("560.60"): 1, D("560.62"): 1, D("560.64"): 1},
    }
    assert view.trades == [
        (D("560.50"), 2),
        (D("560.52"), 3),
        (D("560.54"), 2),
        (D("559.00"), 5),
        (D("559.00"), 1),
    ]
    t1.subscribe([sym], subscription="2", md_req_id=req)


def test_bad_market_data_requests_get_rejects_and_unsubscribe_stops_updates(venue, t1, t2, sym):
    unknown = t1.subscribe(["ZZ"])
    check(t1.wait_msg("Y", t262=unknown), t281="0")
    too_deep = t1.subscribe([sym], depth=11)  # market_data_max_depth defaults to 10
    check(t1.wait_msg("Y", t262=too_deep), t281="5")
    opening_price = t1.subscribe([sym], entry_types=("0", "4"))
    check(t1.wait_msg("Y", t262=opening_price), t281="8")
    req = t1.subscribe([sym])
    t1.wait_msg("W", t262=req)
    dup = t1.subscribe([sym], md_req_id=req)
    check(t1.wait_msg("Y", t262=dup), t281="1")
    settle(venue, t1)
    assert [m.get(262) for m in t1.received if m.msg_type == "W" and m.get(55) == sym] == [req]

    rest(t2, sym, BUY, 1, "559.00")
    x = t1.wait_msg("X", t262=req)
    assert md_entries(x, 279) == [{279: "0", 269: "0", 55: sym, 270: "559", 271: "1"}]

    t1.subscribe([sym], subscription="2", md_req_id=req)
    settle(venue, t1)
    count = sum(1 for m in t1.received if m.msg_type == "X" and m.get(262) == req)
    rest(t2, sym, BUY, 2, "559.02")
    rest(t2, sym, SELL, 1, "559.02")
    settle(venue, t1)
    assert sum(1 for m in t1.received if m.msg_type == "X" and m.get(262) == req) == count == 1
    # Unsubscribing again: there is nothing left to unsubscribe.
    seen = len(t1.received)
    t1.subscribe([sym], subscription="2", md_req_id=req)
    check(t1.wait_for(lambda m: m.msg_type == "Y" and m.get(262) == req, start=seen), t281="0")
    assert venue.application.callback_errors == 0


# -- 6. call auction -------------------------------------------------------------------------


def test_call_auction_collects_orders_then_uncrosses_at_one_price(make_venue, make_client):
    venue = make_venue(initial_phase="opening_auction")
    t1, t2 = make_client(venue, "T1"), make_client(venue, "T2")
    big_bid = rest(t1, "AU", BUY, 5, "561.00")
    low_bid = rest(t1, "AU", BUY, 3, "560.50")
    cheap_ask = rest(t2, "AU", SELL, 4, "559.00")
    ask = rest(t2, "AU", SELL, 6, "560.80")
    assert venue.book("AU") == {
        "bids": [(D("561.00"), 5, 1), (D("560.50"), 3, 1)],
        "asks": [(D("559.00"), 4, 1), (D("560.80"), 6, 1)],
    }  # crossed, and nothing traded

    market = t1.new_order("AU", BUY, 1)
    check(t1.wait_report(market, "8"), t103="11", t40="1")
    ioc = t1.new_order("AU", BUY, 1, D("561.00"), TimeInForce.IOC)
    m = t1.wait_report(ioc, "8")
    check(m, t103="11", t59="3")
    assert "auction" in m[58]

    # Volume is 5 at 560.80 and at 561.00 (same imbalance); 560.80 is nearer the close.
    venue.set_phase(Phase.CONTINUOUS)
    px = D("560.80")
    b1, b2 = ers(t1, big_bid, 3)[1:]
    check(b1, t150="F", t39="1", t31=px, t32="4", t14="4", t151="1", t6=px)
    check(b2, t150="F", t39="2", t31=px, t32="1", t14="5", t151="0", t6=px)
    check(ers(t2, cheap_ask, 2)[1], t150="F", t39="2", t31=px, t32="4", t14="4", t6=px)
    check(ers(t2, ask, 2)[1], t150="F", t39="1", t31=px, t32="1", t14="1", t151="5", t6=px)
    settle(venue, t1)
    assert len(t1.reports(low_bid)) == 1  # only its ack: 560.50 is below the auction price
    assert venue.book("AU") == {"bids": [(D("560.50"), 3, 1)], "asks": [(D("560.80"), 5, 1)]}
    assert venue.call(lambda v: v.engine.books["AU"].last_uncross) == (28040, 5)


# -- 7. session level ----------------------------------------------------------------------


def test_session_level_unknown_comp_id_refused_bad_messages_rejected_session_stays_up(
    make_venue, make_client
):
    venue = make_venue()
    stranger = make_client(venue, "T9", wait_logon_s=None)  # not in the venue's clients
    t1 = make_client(venue, "T1")

    t1.send("R", [(131, "quote-req-1"), (146, 1), (55, "AU")])  # QuoteRequest: not a venue service
    check(t1.wait_msg("j"), t372="R", t380="3")
    assert t1.is_logged_on
    cl = t1.new_order("AU", BUY, 1, D("559.00"))
    t1.wait_report(cl, "0")

    t1.send(
        "D",
        [
            (11, "no-side"),
            (55, "AU"),
            (60, utc_timestamp(now_ns())),
            (38, 1),
            (40, "2"),
            (44, "559"),
        ],
    )
    check(t1.wait_msg("3", t372="D"), t371="54", t373="1")  # required tag missing
    t1.send(
        "D",
        [
            (11, "bad-side"),
            (55, "AU"),
            (54, "Q"),
            (60, utc_timestamp(now_ns())),
            (38, 1),
            (40, "2"),
            (44, "559"),
        ],
    )
    check(t1.wait_for(lambda m: m.msg_type == "3" and m.get(373) == "5"), t372="D", t371="54")
    assert t1.is_logged_on
    cl2 = t1.new_order("AU", BUY, 2, D("559.00"))
    check(t1.wait_report(cl2, "0"), t39="0")
    assert venue.book("AU")["bids"] == [(D("559.00"), 3, 2)]
    assert not t1.reports("no-side") and not t1.reports("bad-side")

    # Meanwhile the stranger has been trying to log on since before T1 did.
    with pytest.raises(TimeoutError):
        stranger.start(wait_logon_s=1.0)
    assert not stranger.is_logged_on
    assert not [m for m in stranger.received if m.msg_type == "A"]
    me = venue.config.comp_id
    assert f"{me}->T9" not in venue.logged_on and f"{me}->T1" in venue.logged_on
    assert venue.application.callback_errors == 0
    assert t1.app.callback_errors == 0 and stranger.app.callback_errors == 0


# -- 9. the liquidity provider ---------------------------------------------------------------


def test_liquidity_provider_quotes_both_sides_in_band_moves_and_is_tradeable(
    make_venue, make_client
):
    venue = make_venue(liquidity={"enabled": True, "interval_ms": 10})
    t1 = make_client(venue, "T1")
    req = t1.subscribe(["AU"])
    snap = t1.wait_msg("W", t262=req)
    assert md_entries(snap, 269)  # it was already quoting when the client subscribed
    # The quotes move: an update that adds or removes a price level.
    t1.wait_for(
        lambda m: (
            m.msg_type == "X"
            and any(e[279] in ("0", "2") and e[269] != "2" for e in md_entries(m, 279))
        )
    )
    top = venue.book("AU")
    for side in ("bids", "asks"):
        assert len(top[side]) == 5
        assert all(D("526.40") <= p <= D("593.60") and q == 10 and n == 1 for p, q, n in top[side])
    best_bid, best_ask = top["bids"][0][0], top["asks"][0][0]
    assert best_bid < best_ask
    assert abs((best_bid + best_ask) / 2 - D("560.00")) < D("5.00")

    limit = best_ask + D("0.40")
    buy = t1.new_order("AU", BUY, 5, limit, TimeInForce.IOC)
    done = t1.wait_for(lambda m: m.msg_type == "8" and m.get(11) == buy and m.get(39) in ("2", "4"))
    check(done, t150="F", t39="2", t14="5", t151="0")
    fills = [m for m in t1.reports(buy) if m.get(150) == "F"]
    assert sum(int(m[32]) for m in fills) == 5
    assert all(D("526.40") <= D(m[31]) <= limit for m in fills)
    assert venue.application.callback_errors == 0


# -- 10. start / stop ------------------------------------------------------------------------

CYCLES = """
import sys
from decimal import Decimal
from oms.enums import Side
from sessions.fixengine import exit_process
from sessions.simulator.client import FixClient
from sessions.simulator.venue import Venue
from tests.conftest import venue_config

venue_first = sys.argv[1] == "venue-first"
for i in range(int(sys.argv[2])):
    venue = Venue(venue_config())
    venue.start()
    target = venue.config.comp_id
    client = FixClient(port=venue.config.port, sender="T1", target=target).start(wait_logon_s=10)
    clordid = client.new_order("AU", Side.BUY, 1, Decimal("559.00"))
    client.wait_report(clordid, "0")
    if venue_first:
        venue.stop()
        client.stop()
    else:  # the shutdown the project uses: clients stop, venues retire, the process exits
        client.stop()
        venue.retire()
    assert not client.is_logged_on and not venue.logged_on
    assert venue.application.callback_errors == 0 and client.app.callback_errors == 0
    print("cycle", i, venue.config.port, flush=True)
print("done", flush=True)
exit_process(0)
"""


def run_cycles(order: str, count: int) -> subprocess.CompletedProcess[str]:
    # In a child process: a crash at shutdown (the known quickfix hazard) shows up as an exit
    # code instead of taking the test run down, and leaving the interpreter is tested too.
    return subprocess.run(
        [sys.executable, "-c", CYCLES, order, str(count)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=45,
    )


def test_five_start_and_shutdown_cycles_on_fresh_ports_neither_hang_nor_crash():
    """Clients stop, venues retire (see FixEngine.retire), then the process exits."""
    proc = run_cycles("client-first", 5)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr[-3000:])
    ports = [line.split()[2] for line in proc.stdout.splitlines() if line.startswith("cycle")]
    assert len(ports) == len(set(ports)) == 5
    assert proc.stdout.splitlines()[-1] == "done"


@pytest.mark.xfail(
    strict=False,
    reason=(
        "quickfix 1.16 Acceptor::stop() runs onStop() (closes the socket server) before joining "
        "the acceptor thread, which closes and deletes the same server (upstream PR #740): "
        "stopping a venue under a logged-on client segfaults in about one stop in four"
    ),
)
def test_a_venue_stopped_under_a_logged_on_client_does_not_crash():
    proc = run_cycles("venue-first", 3)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr[-3000:])
    assert proc.stdout.splitlines()[-1] == "done"
