"""The OMS's view of every venue's book, rebuilt from market data on the OMS thread.

A book is a venue's top levels by price (``Decimal`` price -> lots), as the snapshot (W)
and the incremental updates (X) after it say. It knows when it can be trusted: a book is
*stale* from the moment market data may have been lost (a sequence gap, a reconnect, a line
switch: ``MarketDataGap``) until the next snapshot; it is *crossed* when its best bid is at
or above its best ask (a call auction collects such orders; in continuous trading it means
an update is missing); and it has an *age*, the time since the venue stamped the state we
hold, on our clock thanks to each venue's ``ClockCalibration``. No trigger fires on a book
that is stale, crossed or older than the pair allows (``oms.strategy``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from oms.calibration import ClockCalibration
from oms.clock import now_ns
from oms.events import MarketDataReceived, MdAction, MdEntryType

NO_SNAPSHOT = "updates before any snapshot"


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
    stamped_ns: int = 0  # when the venue sent that message, on our clock (best estimate)
    snapshot_ns: int = 0  # our receive time of the last snapshot
    stale: str | None = None  # why the book cannot be trusted until the next snapshot
    stale_since_ns: int | None = None
    messages: int = 0  # market-data messages applied

    def best_bid(self) -> Decimal | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> Decimal | None:
        return min(self.asks) if self.asks else None

    @property
    def crossed(self) -> bool:
        """Best bid at or above best ask: no price in it can be believed for a trade."""
        return bool(self.bids and self.asks) and max(self.bids) >= min(self.asks)

    def side_qty(self, buy: bool) -> int:
        """Lots a buy (the asks) or a sell (the bids) could take from the whole book."""
        return sum((self.asks if buy else self.bids).values())

    def sweep_notional(self, buy: bool, qty: int) -> tuple[Decimal, Decimal] | None:
        """What taking ``qty`` lots would cost: (sum of price x lots, worst price), or None
        if the book does not hold that much. A buy takes the asks, a sell the bids.

        The notional is exact (products and sums of short decimals), so whoever divides it
        rounds once.
        """
        levels = sorted(self.asks.items()) if buy else sorted(self.bids.items(), reverse=True)
        left, notional = qty, Decimal(0)
        for price, size in levels:
            take = min(left, size)
            notional += price * take
            left -= take
            if not left:
                return notional, price
        return None

    def sweep(self, buy: bool, qty: int) -> tuple[Decimal, Decimal] | None:
        """What taking ``qty`` would cost: (volume-weighted price, worst price), or None
        if the book does not hold that much. A buy takes the asks, a sell the bids."""
        swept = self.sweep_notional(buy, qty)
        if swept is None:
            return None
        return swept[0] / qty, swept[1]

    def top(self, depth: int) -> tuple[list[tuple[Decimal, int]], list[tuple[Decimal, int]]]:
        """The best ``depth`` levels of each side, best first: (bids, asks)."""
        return (
            sorted(self.bids.items(), reverse=True)[:depth],
            sorted(self.asks.items())[:depth],
        )


class MarketView:
    """Every book, each venue's clock calibration, and the clock that ages them.

    ``depth``, when set, trims each side to that many levels after every message, for
    venues that let a level fall out of the top N without deleting it. ``clock`` is our
    time now (UTC ns); the OMS may give it its own.
    """

    def __init__(self, *, depth: int | None = None, clock: Callable[[], int] = now_ns) -> None:
        self.books: dict[tuple[str, str], Book] = {}
        self.clocks: dict[str, ClockCalibration] = {}
        self.depth = depth
        self.clock = clock

    def book(self, venue: str, symbol: str) -> Book:
        key = (venue, symbol)
        found = self.books.get(key)
        if found is None:
            found = self.books[key] = Book(venue, symbol)
        return found

    def calibration(self, venue: str) -> ClockCalibration:
        found = self.clocks.get(venue)
        if found is None:
            found = self.clocks[venue] = ClockCalibration()
        return found

    def clock_offset_ns(self, venue: str) -> int | None:
        """How far the venue's clock runs ahead of ours, or None before any stamped message."""
        found = self.clocks.get(venue)
        return None if found is None else found.offset_ns

    def age_ns(self, book: Book, now: int | None = None) -> int:
        """How old the state of ``book`` is: now minus when the venue stamped it, both on our
        clock (never below 0, as a fresh message can beat the fastest one seen so far)."""
        age = (self.clock() if now is None else now) - book.stamped_ns
        return age if age > 0 else 0

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

    def mark_stale(self, venue: str, symbols: Iterable[str], reason: str, now: int) -> list[str]:
        """Distrust the named books of ``venue`` (all of them when ``symbols`` is empty) until
        their next snapshot; returns the symbols marked."""
        wanted = set(symbols)
        marked: list[str] = []
        for (book_venue, symbol), book in self.books.items():
            if book_venue == venue and (not wanted or symbol in wanted):
                if book.stale is None:
                    book.stale_since_ns = now
                book.stale = reason
                marked.append(symbol)
        for symbol in wanted.difference(marked):  # a book not seen yet starts out stale
            book = self.book(venue, symbol)
            book.stale, book.stale_since_ns = reason, now
            marked.append(symbol)
        return sorted(marked)

    def apply(self, event: MarketDataReceived) -> set[str]:
        """Apply a snapshot or an update; returns the symbols whose books changed."""
        touched: set[str] = set()
        venue = event.venue
        books = self.books
        if event.snapshot and event.snapshot_symbol is not None:
            book = self.book(venue, event.snapshot_symbol)
            book.bids.clear()
            book.asks.clear()
            book.stale = book.stale_since_ns = None
            book.snapshot_ns = event.recv_ns
            touched.add(event.snapshot_symbol)
        for entry in event.entries:
            book = books.get((venue, entry.symbol)) or self.book(venue, entry.symbol)
            if book.messages == 0 and book.snapshot_ns == 0 and book.stale is None:
                book.stale, book.stale_since_ns = NO_SNAPSHOT, event.recv_ns
            touched.add(entry.symbol)
            if entry.entry_type is MdEntryType.TRADE:
                book.last_trade = (entry.price, entry.size or 0)
                continue
            side = book.bids if entry.entry_type is MdEntryType.BID else book.asks
            if entry.action is MdAction.DELETE:
                side.pop(entry.price, None)
            else:
                side[entry.price] = entry.size or 0
        stamped = event.recv_ns
        if event.sending_ns is not None:
            calibration = self.clocks.get(venue) or self.calibration(venue)
            calibration.observe(event.sending_ns, event.recv_ns)
            local = calibration.to_local(event.sending_ns)
            if local is not None:
                stamped = local
        depth = self.depth
        for symbol in touched:
            book = books[(venue, symbol)]
            book.updated_ns = event.recv_ns
            book.sending_ns = event.sending_ns
            book.stamped_ns = stamped
            book.messages += 1
            if depth is not None:
                _trim(book.bids, depth, highest=True)
                _trim(book.asks, depth, highest=False)
        return touched


def _trim(side: dict[Decimal, int], depth: int, *, highest: bool) -> None:
    if len(side) > depth:
        for price in sorted(side, reverse=not highest)[: len(side) - depth]:
            del side[price]
