"""A pair's live view: both books and the spreads the strategy computed, over time.

The strategy records one sample per evaluation (every market-data message on either leg),
including the ones where no trigger could fire and why. A reader such as a dashboard takes a
``snapshot`` on the OMS thread (``oms.call``), which copies what it needs, so that it never
sees a book half-updated and the OMS never waits for it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from oms.events import BookLevel
from oms.market import Book, MarketView


@dataclass(frozen=True, slots=True)
class SpreadSample:
    """One evaluation of a pair: the legs' prices for the size (outer currency and unit,
    net of fees), each direction's edge, the books' ages, and what came of it."""

    ts_ns: int  # when the strategy decided (our clock)
    cause_ns: int  # receive time of the market data that led to it
    buy_inner: Decimal | None  # edge of buying inner / selling outer
    sell_inner: Decimal | None  # edge of selling inner / buying outer
    inner_bid: Decimal | None
    inner_ask: Decimal | None
    outer_bid: Decimal | None
    outer_ask: Decimal | None
    fx_buy_inner: Decimal | None  # the FX rates the inner leg was converted at, each way
    fx_sell_inner: Decimal | None
    inner_age_ns: int | None
    outer_age_ns: int | None
    blocked: str | None = None  # why no trigger could fire, if none could
    fired: str | None = None  # the direction of the intent proposed, if any


@dataclass(frozen=True, slots=True)
class BookState:
    venue: str
    symbol: str
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    stale: str | None
    crossed: bool
    age_ns: int
    clock_offset_ns: int | None
    updated_ns: int


@dataclass(frozen=True, slots=True)
class PairSnapshot:
    pair_id: str
    inner: BookState | None
    outer: BookState | None
    samples: tuple[SpreadSample, ...]


class PairView:
    def __init__(
        self, pair_id: str, inner: tuple[str, str], outer: tuple[str, str], history: int
    ) -> None:
        self.pair_id = pair_id
        self.inner_key = inner
        self.outer_key = outer
        self.samples: deque[SpreadSample] = deque(maxlen=history)
        self.evaluations = 0
        self.fired = 0

    @property
    def last(self) -> SpreadSample | None:
        return self.samples[-1] if self.samples else None

    def record(self, sample: SpreadSample) -> None:
        self.samples.append(sample)
        self.evaluations += 1
        if sample.fired is not None:
            self.fired += 1

    def snapshot(self, market: MarketView, depth: int = 5, samples: int = 200) -> PairSnapshot:
        """A copy of both books' top ``depth`` levels and the last ``samples`` samples.
        Call it on the OMS thread."""
        now = market.clock()
        kept = list(self.samples)[-samples:] if samples > 0 else []
        return PairSnapshot(
            self.pair_id,
            _state(market, market.books.get(self.inner_key), depth, now),
            _state(market, market.books.get(self.outer_key), depth, now),
            tuple(kept),
        )


def _state(market: MarketView, book: Book | None, depth: int, now: int) -> BookState | None:
    if book is None:
        return None
    bids, asks = book.top(depth)
    return BookState(
        book.venue,
        book.symbol,
        tuple(BookLevel(p, q) for p, q in bids),
        tuple(BookLevel(p, q) for p, q in asks),
        book.stale,
        book.crossed,
        market.age_ns(book, now),
        market.clock_offset_ns(book.venue),
        book.updated_ns,
    )
