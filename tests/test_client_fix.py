"""Institutional clients and drop-copy consumers over real FIX, through the gateway to two
simulated venues and back.

The venues' other side (T1) rests a book on each whose spread is inside the pair's entry
threshold, so the house strategy trades nothing by itself: every order here is a client's.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from oms.clock import now_ns
from oms.enums import Side
from oms.receipts import ReceiptStore
from sessions.demo import gateway_config
from sessions.fixwire import utc_timestamp
from sessions.gateway import Gateway
from sessions.ports import free_port
from sessions.simulator.client import FixClient, Received
from sessions.simulator.venue import Venue
from tests.conftest import wait_until
from tests.test_gateway import rest

pytestmark = pytest.mark.fix

_numbers = itertools.count(1)
PASSWORD_ENV = "CMC_TEST_CLIENT_PASSWORD"


@dataclass(frozen=True)
class Ids:
    """CompIDs unique in the test process (a retired acceptor keeps its sessions)."""

    gateway: str
    c1: str
    c2: str
    copy: str

    @classmethod
    def fresh(cls) -> Ids:
        n = next(_numbers)
        return cls(f"CMC-{n}", f"FUND-A-{n}", f"FUND-B-{n}", f"REG-{n}")


@pytest.fixture
def quoted(venues: tuple[Venue, Venue], make_client: Callable[..., Any]) -> tuple[Venue, Venue]:
    """The gold venues with T1's books: a spread inside the entry threshold."""
    inner, outer = venues
    maker_in, maker_out = make_client(inner, "T1"), make_client(outer, "T1")
    rest(maker_in, "AU", Side.SELL, 60, "560.40")
    rest(maker_in, "AU", Side.BUY, 30, "559.60")
    rest(maker_out, "GC", Side.BUY, 20, "2402.0")
    rest(maker_out, "GC", Side.SELL, 10, "2403.0")
    return inner, outer


@pytest.fixture
def clients() -> Iterator[list[FixClient]]:
    started: list[FixClient] = []
    yield started
    for client in started:
        client.stop()


def start_gateway(
    venues: tuple[Venue, Venue], tmp_path: Path, gateways: list[Gateway], ids: Ids
) -> tuple[Gateway, int]:
    port = free_port()
    data = gateway_config(list(venues), tmp_path).model_dump(mode="json")
    data["risk"]["defaults"]["stale_after_ms"] = 600_000  # these books never move
    data["client_acceptor"] = {
        "comp_id": ids.gateway,
        "port": port,
        "clients": [
            {"comp_id": ids.c1, "username": "fund-a", "password_env": PASSWORD_ENV},
            {"comp_id": ids.c2},
        ],
        "drop_copies": [{"comp_id": ids.copy}],
    }
    gateway = Gateway(type(gateway_config(list(venues), tmp_path)).model_validate(data))
    gateways.append(gateway)
    gateway.start()
    assert gateway.wait_ready(20), "the gateway did not log on to both venues"
    return gateway, port


def connect(
    clients: list[FixClient],
    port: int,
    sender: str,
    target: str,
    *,
    wait_s: float | None = 10.0,
    **kw: Any,
) -> FixClient:
    client = FixClient(port=port, sender=sender, target=target, **kw)
    clients.append(client)
    client.start(wait_logon_s=wait_s)
    return client


def order(
    client: FixClient,
    venue: str,
    symbol: str,
    side: Side,
    qty: int,
    price: str,
    tif: str = "0",
    *,
    clordid: str | None = None,
    poss_resend: bool = False,
) -> str:
    clordid = clordid or client.next_id()
    fields: list[tuple[int, object]] = [
        (11, clordid),
        (100, venue),
        (55, symbol),
        (54, side.value),
        (60, utc_timestamp(now_ns())),
        (38, qty),
        (40, "2"),
        (44, price),
        (59, tif),
    ]
    if poss_resend:
        fields.insert(0, (97, "Y"))
    assert client.send("D", fields)
    return clordid


def test_a_client_trades_replaces_and_cancels_only_its_own_orders(
    quoted: tuple[Venue, Venue],
    tmp_path: Path,
    gateways: list[Gateway],
    clients: list[FixClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret-a")
    ids = Ids.fresh()
    gateway, port = start_gateway(quoted, tmp_path, gateways, ids)
    a = connect(clients, port, ids.c1, ids.gateway, username="fund-a", password="s3cret-a")
    b = connect(clients, port, ids.c2, ids.gateway)

    # order -> fill -> report, in the client's own ClOrdID, booked to its account
    ioc = order(a, "INNER", "AU", Side.BUY, 5, "560.40", "3")
    fill = a.wait_report(ioc, "F")
    assert (fill[14], fill[151], fill[31], fill[39]) == ("5", "0", "560.4", "2")
    assert fill[1] == ids.c1 and fill[207] == "INNER" and fill[17].startswith("INNER:")
    assert quoted[0].book("AU")["asks"][0][1] == 55  # the venue's book: 5 of 60 taken

    # a resting order, replaced, looked at by its owner and by another client, cancelled
    resting = order(a, "INNER", "AU", Side.BUY, 3, "558.00")
    new = a.wait_report(resting, "0")
    bigger = a.next_id()
    a.send(
        "G",
        [
            (37, new[37]),
            (41, resting),
            (11, bigger),
            (55, "AU"),
            (54, "1"),
            (60, utc_timestamp(now_ns())),
            (38, 4),
            (40, "2"),
            (44, "558.50"),
        ],
    )
    replaced = a.wait_report(bigger, "5")
    assert (replaced[41], replaced[38], replaced[44], replaced[37]) == (
        resting,
        "4",
        "558.5",
        new[37],
    )
    # Client B names A's order: as far as B can tell, there is no such order.
    theirs = b.next_id()
    b.send("F", [(41, bigger), (11, theirs), (55, "AU"), (54, "1"), (60, utc_timestamp(now_ns()))])
    refused = b.wait_msg("9", t11=theirs)
    assert (refused[102], refused[434], refused[37]) == ("1", "1", "NONE")
    asked = b.status(bigger, "AU", Side.BUY)
    unknown = b.wait_for(lambda m: m.get(790) == asked)
    assert (unknown[150], unknown[39]) == ("I", "8")
    # ... while A's order still works, and A can see it
    mine = a.status(bigger, "AU", Side.BUY)
    status = a.wait_for(lambda m: m.get(790) == mine)
    assert (status[150], status[39], status[38], status[11]) == ("I", "0", "4", bigger)
    gone = a.cancel(bigger, "AU", Side.BUY)
    cancelled = a.wait_report(gone, "4")
    assert (cancelled[41], cancelled[39], cancelled[151]) == (bigger, "4", "0")
    assert quoted[0].book("AU")["bids"][0][0] == Decimal("559.60")  # nothing of A's rests

    # an application-level resend of a ClOrdID already seen is never executed twice
    once = order(a, "INNER", "AU", Side.BUY, 1, "557.00")
    a.wait_report(once, "0")
    order(a, "INNER", "AU", Side.BUY, 1, "557.00", clordid=once, poss_resend=True)
    again = a.wait_report(once, "I")
    assert again[39] == "0"
    order(a, "INNER", "AU", Side.BUY, 1, "557.00", clordid=once)  # and without PossResend
    duplicate = a.wait_report(once, "8")
    assert duplicate[103] == "6" and duplicate[37] == "NONE"
    working = gateway.oms.call(
        lambda oms: [o for o in oms.orders.working() if o.price == Decimal("557.00")]
    )
    assert len(working) == 1
    levels = {px: qty for px, qty, _ in quoted[0].book("AU", depth=10)["bids"]}
    assert levels[Decimal("557.00")] == 1

    # an order refused by risk is rejected with the check named and never reaches a venue
    big = order(a, "INNER", "AU", Side.BUY, 101, "557.00")  # max_qty is 100
    rejected = a.wait_report(big, "8")
    assert "max_qty" in rejected[58]

    gateway.stop()
    with ReceiptStore(gateway.config.receipts_url) as store:
        requests = store.query(kind="event.client_request")
    assert {r.data["client"] for r in requests} == {ids.c1, ids.c2}


def test_unknown_comp_ids_and_wrong_passwords_are_refused_at_logon(
    quoted: tuple[Venue, Venue],
    tmp_path: Path,
    gateways: list[Gateway],
    clients: list[FixClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "s3cret-a")
    ids = Ids.fresh()
    gateway, port = start_gateway(quoted, tmp_path, gateways, ids)
    with pytest.raises(TimeoutError):
        connect(clients, port, f"STRANGER-{next(_numbers)}", ids.gateway, wait_s=3)
    with pytest.raises(TimeoutError):
        connect(clients, port, ids.c1, ids.gateway, wait_s=3, username="fund-a", password="guess")
    assert gateway.clients is not None and gateway.clients.logged_on() == []
    b = connect(clients, port, ids.c2, ids.gateway)  # a client without a password logs on
    assert b.is_logged_on


def test_a_spread_order_trades_both_legs_with_leg_and_spread_reports(
    quoted: tuple[Venue, Venue],
    tmp_path: Path,
    gateways: list[Gateway],
    clients: list[FixClient],
) -> None:
    ids = Ids.fresh()
    gateway, port = start_gateway(quoted, tmp_path, gateways, ids)
    b = connect(clients, port, ids.c2, ids.gateway)
    spread = b.next_id()
    b.send(
        "AB",
        [
            (11, spread),
            (55, "GOLD"),
            (54, "1"),
            (555, 2),
            (600, "AU"),
            (616, "INNER"),
            (623, 28),
            (624, "1"),
            (600, "GC"),
            (616, "OUTER"),
            (623, 9),
            (624, "2"),
            (60, utc_timestamp(now_ns())),
            (38, 1),
            (40, "1"),
        ],
    )
    done = b.wait_for(
        lambda m: m.get(11) == spread and m.get(442) == "3" and m.get(150) in ("F", "4"), 10
    )
    assert (done[150], done[39], done[14], done[55]) == ("F", "2", "1", "GOLD")
    reports = b.reports(spread)
    assert reports[0][442] == "3" and reports[0][150] == "0"  # the spread accepted first
    legs = [m for m in reports if m.get(442) == "2"]
    lots = {symbol: sum(int(m[32]) for m in legs if m[55] == symbol) for symbol in ("AU", "GC")}
    assert lots == {"AU": 28, "GC": 9}
    assert {m[207] for m in legs} == {"INNER", "OUTER"}
    pair = gateway.oms.call(lambda oms: oms.pairs["GOLD"])
    assert (pair.units, pair.imbalance) == (1, 0)

    # an unknown leg is refused at once, and nothing is sent
    wrong = b.next_id()
    b.send(
        "AB",
        [
            (11, wrong),
            (55, "GOLD"),
            (54, "1"),
            (555, 2),
            (600, "CU"),
            (616, "INNER"),
            (624, "1"),
            (600, "GC"),
            (616, "OUTER"),
            (624, "2"),
            (60, utc_timestamp(now_ns())),
            (38, 1),
            (40, "1"),
        ],
    )
    refused = b.wait_report(wrong, "8")
    assert refused[442] == "3" and "not a configured pair" in refused[58]


def copies(consumer: FixClient) -> list[Received]:
    return [m for m in consumer.received if m.msg_type == "8" and not m.admin]


def test_a_drop_copy_consumer_away_for_a_while_gets_every_fill_exactly_once(
    quoted: tuple[Venue, Venue],
    tmp_path: Path,
    gateways: list[Gateway],
    clients: list[FixClient],
) -> None:
    ids = Ids.fresh()
    gateway, port = start_gateway(quoted, tmp_path, gateways, ids)
    b = connect(clients, port, ids.c2, ids.gateway)
    consumer = connect(clients, port, ids.copy, ids.gateway, store_dir=tmp_path / "consumer")

    first = order(b, "INNER", "AU", Side.BUY, 2, "560.40", "3")
    b.wait_report(first, "F")
    assert wait_until(lambda: any(m.get(150) == "F" for m in copies(consumer)), 5)

    consumer.log_out()  # away: what happens now is stored for it
    away = [
        order(b, venue, symbol, side, 1, px, "3")
        for venue, symbol, side, px in (
            ("INNER", "AU", Side.BUY, "560.40"),
            ("OUTER", "GC", Side.SELL, "2402.0"),
            ("OUTER", "GC", Side.SELL, "2402.0"),
        )
    ]
    for clordid in away:
        b.wait_report(clordid, "F")
    seen_before = len(copies(consumer))
    consumer.log_on()  # back: the session's resend brings what it missed

    gateway_stopped = gateway
    assert wait_until(lambda: len(copies(consumer)) >= seen_before + 6, 10)
    gateway_stopped.stop()
    got = copies(consumer)
    exec_ids = [m[17] for m in got]
    assert len(exec_ids) == len(set(exec_ids)), "a drop copy arrived twice"
    assert all(m[797] == "Y" for m in got)
    fills = [m for m in got if m[150] == "F"]
    assert sum(int(m[32]) for m in fills) == 5

    # One to one with the receipt store: every execution the gateway received, and no other.
    with ReceiptStore(gateway.config.receipts_url) as store:
        received = store.query(kind="event.execution")
    assert sorted(exec_ids) == sorted(f"{r.venue}:{r.exec_id}" for r in received)
