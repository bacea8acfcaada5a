"""Market data through real FIX: per-instrument subscriptions, lost messages and line switches.

Two simulated venues and the real gateway on loopback, as in ``tests/test_gateway.py``, with
the liquidity entered straight into the venues' books (``house_order``). The venue loses
market data on purpose (``MarketDataLoss``: the message uses its sequence number and never
arrives, and a resend gets a gap fill, as venues do with market data); the gateway must see
the gap, distrust the book, subscribe again and trade only on the fresh snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import quickfix as fix

from oms.core import Oms
from oms.enums import Side
from oms.events import LineRole, MarketDataReceived, MdAction, MdEntry, MdEntryType
from oms.receipts import Receipt, ReceiptStore
from sessions.codec import decode
from sessions.demo import GW_PRIMARY, gateway_config
from sessions.fixwire import encode
from sessions.gateway import Gateway
from sessions.simulator.client import BookView, FixClient
from sessions.simulator.venue import Venue
from sessions.venue_link import RptSeqWatch
from tests.conftest import GOLD_INNER, wait_until

GOLD_OUTER: dict[str, Any] = {
    "symbol": "GC",
    "currency": "USD",
    "tick": "0.1",
    "contract_size": "100",
    "contract_unit": "troy_oz",
    "prev_close": "2402.5",
}
SILVER_OUTER: dict[str, Any] = {
    "symbol": "SI",
    "currency": "USD",
    "tick": "0.005",
    "contract_size": "5000",
    "contract_unit": "troy_oz",
    "prev_close": "30.000",
}
CLIENTS = ["T1", "GW-PRI", "GW-BAK"]
D = Decimal


@pytest.fixture
def venues(make_venue: Callable[..., Venue], tmp_path: Path) -> tuple[Venue, Venue]:
    # FileStores, as in production (quickfix's MemoryStore gap-fills over the message after
    # a skipped number: see tests/test_venue_faults.py).
    inner = make_venue(
        id="INNER",
        comp_id="INNER",
        clients=CLIENTS,
        instruments=[GOLD_INNER],
        store_dir=tmp_path / "inner",
    )
    outer = make_venue(
        id="OUTER",
        comp_id="OUTER",
        clients=CLIENTS,
        instruments=[GOLD_OUTER, SILVER_OUTER],
        store_dir=tmp_path / "outer",
    )
    # Inner ask 560.00 CNY/g is 2402.475 USD/oz at 7.25; the outer bid 2400.0 is below it:
    # nothing to trade until an outer bid of 2404.5 or more shows (entry 2.0).
    inner.house_order("AU", Side.SELL, 30, D("560.00"))
    inner.house_order("AU", Side.BUY, 30, D("559.90"))
    outer.house_order("GC", Side.BUY, 10, D("2400.0"))
    outer.house_order("GC", Side.SELL, 10, D("2410.0"))
    outer.house_order("SI", Side.BUY, 10, D("30.000"))
    return inner, outer


@pytest.fixture
def gateway(venues: tuple[Venue, Venue], tmp_path: Path) -> Iterator[Gateway]:
    gw = Gateway(gateway_config(list(venues), tmp_path))
    gw.start()
    assert gw.wait_ready(20), "the gateway did not log on to both venues"
    lines = [line for link in gw.sessions.links.values() for line in link.lines.values()]
    assert wait_until(lambda: all(line.logged_on for line in lines), 10)
    yield gw
    gw.stop()


def settled(gw: Gateway, trades: int) -> bool:
    def check(oms: Any) -> bool:
        pair = oms.pairs["GOLD"]
        return pair.working is None and len(pair.done) == trades

    return bool(gw.oms.call(check))


def receipts_of(gw: Gateway, tmp_path: Path) -> list[Receipt]:
    gw.stop()  # flushes the receipt writer
    with ReceiptStore(f"sqlite:///{tmp_path / 'receipts.sqlite'}") as store:
        return store.all()


def first(receipts: list[Receipt], start: int, match: Callable[[Receipt], bool]) -> int:
    return next(i for i in range(start, len(receipts)) if match(receipts[i]))


def is_snapshot(venue: str, symbol: str, line: str | None = None) -> Callable[[Receipt], bool]:
    return lambda r: (
        r.kind == "event.market_data"
        and r.venue == venue
        and r.symbol == symbol
        and r.data.get("snapshot") == 1
        and (line is None or r.line == line)
    )


def gateway_book(gw: Gateway, venue: str, symbol: str) -> tuple[list[Any], list[Any]]:
    def read(oms: Oms) -> tuple[list[Any], list[Any]]:
        return oms.market.books[(venue, symbol)].top(5)

    return gw.oms.call(read)


def venue_book(venue: Venue, symbol: str) -> tuple[list[Any], list[Any]]:
    top = venue.book(symbol)
    return [(p, q) for p, q, _ in top["bids"]], [(p, q) for p, q, _ in top["asks"]]


@pytest.mark.fix
def test_each_instrument_is_subscribed_on_its_own(gateway: Gateway) -> None:
    line = gateway.sessions.links["OUTER"].lines[LineRole.PRIMARY]
    assert set(line.md_req_ids) == {"GC", "SI"}
    assert len(set(line.md_req_ids.values())) == 2
    assert gateway.sessions.links["OUTER"].lines[LineRole.BACKUP].md_req_ids == {}
    books = gateway.oms.call(lambda oms: {k: b.stale for k, b in oms.market.books.items()})
    assert books == {("INNER", "AU"): None, ("OUTER", "GC"): None, ("OUTER", "SI"): None}


@pytest.mark.fix
def test_lost_market_data_gets_a_fresh_snapshot_before_the_next_trigger(
    venues: tuple[Venue, Venue], gateway: Gateway, tmp_path: Path
) -> None:
    _, outer = venues
    session = f"{outer.config.comp_id}->{GW_PRIMARY}"
    outer.call(lambda v: v.md.loss.lose(1, session))
    # The update that shows the bid making the trade (2406.0: 3.5 over the inner ask) is
    # lost on the way to the gateway.
    outer.house_order("GC", Side.BUY, 10, D("2406.0"))
    assert wait_until(lambda: outer.call(lambda v: v.md.loss.lost) == 1, 5)
    assert D("2406.0") not in dict(gateway_book(gateway, "OUTER", "GC")[0])
    assert settled(gateway, 0)
    # The next update reveals the gap: the venue fills it, the gateway re-subscribes, and
    # the snapshot shows the bid.
    outer.house_order("GC", Side.SELL, 5, D("2412.0"))
    assert wait_until(lambda: settled(gateway, 1), 10), "no trade after the gap was repaired"
    assert wait_until(lambda: gateway_book(gateway, "OUTER", "GC") == venue_book(outer, "GC"), 5), (
        "the gateway's book is not the venue's"
    )

    receipts = receipts_of(gateway, tmp_path)
    # (The line switches at logon, when a backup line logs on first, leave gaps too.)
    gap = first(
        receipts,
        0,
        lambda r: (
            r.kind == "event.market_data_gap" and (r.reason or "").startswith("sequence reset from")
        ),
    )
    assert receipts[gap].venue == "OUTER" and receipts[gap].symbol == "GC,SI"
    assert receipts[gap].line == "primary"
    snapshot = first(receipts, gap, is_snapshot("OUTER", "GC"))
    # Nothing of GC came between: the update that revealed the gap belonged to the
    # subscription being replaced, and was dropped.
    assert not [
        r for r in receipts[gap:snapshot] if r.kind == "event.market_data" and r.symbol == "GC"
    ]
    intents = [i for i, r in enumerate(receipts) if r.kind == "decision.spread_intent"]
    assert len(intents) == 1 and intents[0] > snapshot
    assert receipts[intents[0]].cause_ns == receipts[snapshot].cause_ns


@pytest.mark.fix
def test_a_line_switch_leaves_the_books_stale_until_the_new_lines_snapshot(
    venues: tuple[Venue, Venue], gateway: Gateway, tmp_path: Path
) -> None:
    _, outer = venues
    primary = gateway.sessions.links["OUTER"].lines[LineRole.PRIMARY]
    fix.Session.lookupSession(primary.session_id).logout("line switch test")
    assert wait_until(lambda: gateway.sessions.active_lines()["OUTER"] is LineRole.BACKUP, 10)
    assert wait_until(
        lambda: gateway.oms.call(lambda oms: oms.market.books[("OUTER", "GC")].stale) is None, 5
    )
    outer.house_order("GC", Side.BUY, 10, D("2406.0"))
    assert wait_until(lambda: settled(gateway, 1), 10), "no trade on the backup line's data"

    receipts = receipts_of(gateway, tmp_path)
    gap = first(
        receipts,
        0,
        lambda r: (
            r.kind == "event.market_data_gap" and r.reason == "market data line primary -> backup"
        ),
    )
    assert receipts[gap].venue == "OUTER" and receipts[gap].line == "primary"
    assert receipts[gap].symbol == "GC,SI"
    snapshot = first(receipts, gap, is_snapshot("OUTER", "GC", line="backup"))
    intent = first(receipts, 0, lambda r: r.kind == "decision.spread_intent")
    assert gap < snapshot < intent


@pytest.mark.fix
def test_the_simulator_loses_market_data_as_a_gap_filled_on_resend(
    make_venue: Callable[..., Venue], make_client: Callable[..., FixClient], tmp_path: Path
) -> None:
    """Without repair, a consumer's book is wrong: the venue's own test of the fault."""
    venue = make_venue(store_dir=tmp_path / "venue")
    client = make_client(venue, "T1")
    client.subscribe(["AU"])
    client.wait_msg("W")
    venue.call(lambda v: v.md.loss.lose(1))
    venue.house_order("AU", Side.BUY, 5, D("559.00"))  # lost
    venue.house_order("AU", Side.SELL, 5, D("561.00"))  # arrives, after the gap
    reset = client.wait_for(lambda m: m.msg_type == "4", 5)
    assert reset.get(123) == "Y" and int(reset[36]) == int(reset[34]) + 1  # one number lost
    client.wait_for(lambda m: m.msg_type == "X" and "270=561" in m.text, 5)
    view = BookView("AU")
    for msg in list(client.received):
        view.apply(msg)
    assert view.top() == {"bids": [], "asks": [(D("561"), 5)]}
    assert venue_book(venue, "AU") == ([(D("559.00"), 5)], [(D("561.00"), 5)])


# -- RptSeq, where a venue's dialect sends it ------------------------------------------------


def update(symbol: str, *entries: tuple[str, str, int]) -> str:
    fields: list[tuple[int, object]] = [(262, "r1"), (268, len(entries))]
    for price, qty, rpt in entries:
        fields += [(279, "1"), (269, "0"), (55, symbol), (270, price), (271, qty), (83, rpt)]
    return encode("X", fields)


def decoded(text: str, recv_ns: int) -> MarketDataReceived:
    event = decode(text, "V", LineRole.PRIMARY, recv_ns)
    assert isinstance(event, MarketDataReceived)
    return event


def test_rpt_seq_is_decoded_per_entry_and_a_jump_is_a_gap() -> None:
    event = decoded(update("AU", ("560.00", "3", 7), ("559.98", "4", 8)), 1)
    assert [e.rpt_seq for e in event.entries] == [7, 8]
    watch = RptSeqWatch()
    assert watch.gaps(event) == []
    assert watch.gaps(decoded(update("AU", ("560.00", "2", 9)), 2)) == []
    assert watch.gaps(decoded(update("AU", ("560.00", "1", 12)), 3)) == [
        "AU RptSeq 12, expected 10"
    ]
    # A snapshot starts the instrument afresh; a replay below the next number is no gap.
    snap = MarketDataReceived(
        "V",
        LineRole.PRIMARY,
        "r2",
        True,
        (MdEntry(MdAction.NEW, MdEntryType.BID, "AU", D("560"), 1),),
        None,
        4,
        snapshot_symbol="AU",
    )
    assert watch.gaps(snap) == []
    assert watch.gaps(decoded(update("AU", ("560.00", "1", 40)), 5)) == []
    assert watch.gaps(decoded(update("AU", ("560.00", "1", 39)), 6)) == []
