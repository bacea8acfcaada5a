"""The OMS's view of every venue's book, rebuilt from market data on the OMS thread."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from oms.events import MarketDataReceived, MdAction, MdEntryType


@dataclass
class Book:
    """One venue's book for one symbol: price -> size on each side, and the last trade."""

    venue: str
    symbol: str
    bids: dict[Decimal, int] = field(default_factory=dict)
    asks: dict[Decimal, int] = field(default_factory=dict)
    last_trade: tuple[Decimal, int] | None = None
    updated_ns: int = 0  # our receive time of the last message applied
    sending_ns: int | None = None  # the venue's SendingTime of that message

    def best_bid(self) -> Decimal | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> Decimal | None:
        return min(self.asks) if self.asks else None

    def sweep(self, buy: bool, qty: int) -> tuple[Decimal, Decimal] | None:
        """What taking ``qty`` would cost: (volume-weighted price, worst price), or None
        if the book does not hold that much. A buy takes the asks, a sell the bids."""
        levels = sorted(self.asks.items()) if buy else sorted(self.bids.items(), reverse=True)
        left, notional = qty, Decimal(0)
        for price, size in levels:
            take = min(left, size)
            notional += price * take
            left -= take
            if not left:
                return notional / qty, price
        return None


class MarketView:
    def __init__(self) -> None:
        self.books: dict[tuple[str, str], Book] = {}

    def book(self, venue: str, symbol: str) -> Book:
        key = (venue, symbol)
        found = self.books.get(key)
        if found is None:
            found = self.books[key] = Book(venue, symbol)
        return found

    def consume(self, venue: str, symbol: str, buy: bool, price: Decimal, qty: int) -> None:
        """Take our own fill out of the book at once (a buy takes from the asks).

        Market data and execution reports travel separately and either may come first.
        Until the venue's update arrives, the book would still show the quantity we just
        took, and a strategy would trade on it twice. The update states each level's size
        afresh, so it overrides this; if it came first, this under-counts until the next
        one, which is the safe side.
        """
        book = self.books.get((venue, symbol))
        if book is None:
            return
        side = book.asks if buy else book.bids
        left = side.get(price, 0) - qty
        if left > 0:
            side[price] = left
        else:
            side.pop(price, None)

    def apply(self, event: MarketDataReceived) -> set[str]:
        """Apply a snapshot or an update; returns the symbols whose books changed."""
        touched: set[str] = set()
        if event.snapshot and event.snapshot_symbol is not None:
            book = self.book(event.venue, event.snapshot_symbol)
            book.bids.clear()
            book.asks.clear()
            touched.add(event.snapshot_symbol)
        for entry in event.entries:
            book = self.book(event.venue, entry.symbol)
            touched.add(entry.symbol)
            if entry.entry_type is MdEntryType.TRADE:
                book.last_trade = (entry.price, entry.size or 0)
                continue
            side = book.bids if entry.entry_type is MdEntryType.BID else book.asks
            if entry.action is MdAction.DELETE:
                side.pop(entry.price, None)
            else:
                side[entry.price] = entry.size or 0
        for symbol in touched:
            book = self.book(event.venue, symbol)
            book.updated_ns = event.recv_ns
            book.sending_ns = event.sending_ns
        return touched
