"""The OMS thread's decisions, fed typed events directly (no FIX, no threads).

The sessions are replaced by what they hand the OMS (events) and what the OMS hands them
(commands, collected in a list), so each test states exactly the order in which things
arrive, which is what the races below are about.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from oms.commands import Command, SendOrder
from oms.core import Oms
from oms.enums import Side
from oms.events import (
    ExecType,
    ExecutionReceived,
    LineRole,
    LineState,
    LineStateChanged,
    MarketDataReceived,
    MdAction,
    MdEntry,
    MdEntryType,
    OrdStatus,
)
from oms.instruments import Instrument
from oms.pairs import PairConfig, PairSpec
from oms.receipts import Receipt

AU = Instrument(
    venue="INNER",
    symbol="AU",
    currency="CNY",
    tick=Decimal("0.02"),
    contract_size=Decimal(1000),
    contract_unit="g",
)
GC = Instrument(
    venue="OUTER",
    symbol="GC",
    currency="USD",
    tick=Decimal("0.1"),
    contract_size=Decimal(100),
    contract_unit="troy_oz",
)


class Harness:
    def __init__(self, max_position: int = 5) -> None:
        config = PairConfig.model_validate(
            {
                "id": "GOLD",
                "inner": {"venue": "INNER", "symbol": "AU"},
                "outer": {"venue": "OUTER", "symbol": "GC"},
                "fx_rate": "7.25",
                "entry_spread": "2.0",
                "exit_spread": "-1000",
                "max_position": max_position,
            }
        )
        self.sent: list[Command] = []
        self.receipts: list[Receipt] = []
        self.clock = itertools.count(1_000_000, 1_000)
        self.oms = Oms(
            pairs=[PairSpec.build(config, AU, GC)],
            send=self._send,
            record=self.receipts.append,
            clock=self.clock.__next__,
        )
        self._exec_ids = itertools.count(1)
        for venue in ("INNER", "OUTER"):
            self.oms.handle(
                LineStateChanged(
                    venue, LineRole.PRIMARY, LineState.LOGGED_ON, LineRole.PRIMARY, next(self.clock)
                )
            )

    def _send(self, command: Command) -> bool:
        self.sent.append(command)
        return True

    def book(
        self, venue: str, symbol: str, bids: list[tuple[str, int]], asks: list[tuple[str, int]]
    ) -> None:
        entries = tuple(
            MdEntry(MdAction.NEW, kind, symbol, Decimal(px), qty)
            for kind, levels in ((MdEntryType.BID, bids), (MdEntryType.OFFER, asks))
            for px, qty in levels
        )
        self.oms.handle(
            MarketDataReceived(
                venue,
                LineRole.PRIMARY,
                "md",
                True,
                entries,
                None,
                next(self.clock),
                snapshot_symbol=symbol,
            )
        )

    def fill_in_full(self, command: SendOrder, price: str) -> None:
        """The venue's New and then one fill of the whole order."""
        for exec_type, status, last, cum in (
            (ExecType.NEW, OrdStatus.NEW, 0, 0),
            (ExecType.TRADE, OrdStatus.FILLED, command.qty, command.qty),
        ):
            self.oms.handle(
                ExecutionReceived(
                    venue=command.venue,
                    line=LineRole.PRIMARY,
                    clordid=command.clordid,
                    orig_clordid=None,
                    venue_order_id=f"V-{command.clordid}",
                    exec_id=f"E{next(self._exec_ids)}",
                    exec_type=exec_type,
                    ord_status=status,
                    symbol=command.symbol,
                    side=command.side,
                    order_qty=command.qty,
                    last_qty=last,
                    last_px=Decimal(price) if last else None,
                    cum_qty=cum,
                    leaves_qty=command.qty - cum,
                    avg_px=Decimal(price) if cum else Decimal(0),
                    transact_ns=None,
                    sending_ns=None,
                    recv_ns=next(self.clock),
                )
            )


def orders(h: Harness) -> list[SendOrder]:
    return [c for c in h.sent if isinstance(c, SendOrder)]


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
    assert kinds[at + 1 : at + 3] == ["command.send_order", "command.send_order"]
    intent, send_a, send_b = h.receipts[at : at + 3]
    assert intent.ts_ns < send_a.ts_ns < send_b.ts_ns
    assert intent.cause_ns == send_a.cause_ns == send_b.cause_ns == h.receipts[at - 1].cause_ns
