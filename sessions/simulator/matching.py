"""A price-time priority matching engine: the venue simulator's exchange, without FIX.

The rules are those of a real exchange's continuous market and call auction:

* Price priority: the highest bid and the lowest ask trade first.
* Time priority: at one price, the order that arrived first trades first. A replace that
  raises the price or the quantity loses its place; one that only reduces quantity keeps it.
* A buy trades when its price is at or above the best ask, at the resting ask's price; a sell
  when its price is at or below the best bid, at the resting bid's price. A large order walks
  the book level by level until it is filled or its limit no longer crosses; what is left
  rests (DAY/GTC) or is cancelled (IOC, market). FOK fills in full or not at all.
* An emptied level disappears and the next one becomes the best; resting quantity falls by
  each fill.
* Call auction: orders collect without trading; at the uncross, the price is the one that
  maximises executable volume ``min(demand at >= p, supply at <= p)``. Ties go to the smallest
  imbalance ``|demand - supply|``, then to the price nearest the previous close, and finally
  to the lower price. Every matched order fills at that single price.

Prices are whole ticks (``int``) inside the engine; ``Decimal`` crosses at ``submit`` and
``replace`` and leaves through ``Instrument.from_ticks``. The engine is single-threaded by
design: its owner (the venue) feeds it one command at a time.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from enum import Enum

from oms.clock import now_ns
from oms.enums import Side, TimeInForce
from oms.instruments import Instrument, OffTickError

BUY = Side.BUY
SELL = Side.SELL


class Phase(str, Enum):
    OPENING_AUCTION = "opening_auction"
    CONTINUOUS = "continuous"
    CLOSING_AUCTION = "closing_auction"
    CLOSED = "closed"

    @property
    def is_auction(self) -> bool:
        return self is _OPENING or self is _CLOSING


class OrderState(str, Enum):
    WORKING = "working"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"


class ReportKind(str, Enum):
    NEW = "new"
    TRADE = "trade"
    CANCELED = "canceled"
    REPLACED = "replaced"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCEL_REJECTED = "cancel_rejected"
    REPLACE_REJECTED = "replace_rejected"


class Reason(str, Enum):
    """Why an order was refused or ended; the value is the text a trader reads."""

    UNKNOWN_SYMBOL = "unknown symbol"
    OFF_TICK = "price is not a multiple of the tick size"
    BAD_QUANTITY = "quantity is not a positive multiple of the lot size"
    QUANTITY_TOO_LARGE = "quantity exceeds the maximum order size"
    PRICE_REQUIRED = "a limit order needs a price"
    OUTSIDE_BAND = "price is outside the daily limit band"
    NOT_DURING_AUCTION = "market, IOC and FOK orders are not accepted during a call auction"
    MARKET_CLOSED = "the market is closed"
    UNKNOWN_ORDER = "unknown order"
    ORDER_DONE = "order is already filled, cancelled or expired"
    BELOW_FILLED = "new quantity is not above the quantity already filled"
    INJECTED = "rejected by fault injection"
    PARTIAL_FILL_REMAINDER = "remainder cancelled after a partial fill (fault injection)"
    REQUESTED = "cancelled on request"
    IOC_REMAINDER = "unfilled remainder of an immediate-or-cancel order"
    FOK_UNFILLED = "fill-or-kill order could not be filled in full"
    NO_LIQUIDITY = "unfilled remainder of a market order"
    DAY_END = "day order expired at the close"


# Enum members bound once for the order path: on CPython 3.11 every ``Enum.MEMBER`` lookup
# through its class costs about 85 ns, and one order made a dozen or more of them.
_IOC, _FOK = TimeInForce.IOC, TimeInForce.FOK
_CONTINUOUS, _OPENING, _CLOSING = Phase.CONTINUOUS, Phase.OPENING_AUCTION, Phase.CLOSING_AUCTION
_WORKING, _FILLED = OrderState.WORKING, OrderState.FILLED
_CANCELED, _EXPIRED = OrderState.CANCELED, OrderState.EXPIRED
_NEW, _TRADE = ReportKind.NEW, ReportKind.TRADE
_CANCELED_REPORT, _EXPIRED_REPORT = ReportKind.CANCELED, ReportKind.EXPIRED
_REQUESTED, _IOC_REMAINDER = Reason.REQUESTED, Reason.IOC_REMAINDER
_NO_LIQUIDITY, _FOK_UNFILLED = Reason.NO_LIQUIDITY, Reason.FOK_UNFILLED
_PRICE_MEMO_SIZE = 16_384  # prices remembered per symbol; a daily band holds a few thousand


class Order:
    """A venue order. The engine mutates it; everyone else reads it."""

    __slots__ = (
        "cum",
        "leaves",
        "notional",
        "order_id",
        "owner",
        "price",
        "qty",
        "seq",
        "side",
        "state",
        "symbol",
        "tif",
        "ts_ns",
    )

    def __init__(
        self,
        order_id: int,
        owner: object,
        symbol: str,
        side: Side,
        qty: int,
        price: int | None,
        tif: TimeInForce,
        ts_ns: int,
    ) -> None:
        self.order_id = order_id
        self.owner = owner
        self.symbol = symbol
        self.side = side
        self.qty = qty
        self.price = price  # ticks; None for a market order
        self.tif = tif
        self.ts_ns = ts_ns
        self.leaves = qty
        self.cum = 0
        self.notional = 0  # sum of fill price (ticks) x fill qty, for the average price
        self.seq = 0  # time priority: lower arrived first at its price
        self.state = _WORKING

    def __repr__(self) -> str:
        return (
            f"Order({self.order_id} {self.side.name} {self.qty}@{self.price} "
            f"cum={self.cum} leaves={self.leaves} {self.state.value})"
        )


class Report:
    """What happened to one order, with its quantities as they stood right after."""

    __slots__ = (
        "aggressor",
        "cum",
        "kind",
        "last_px",
        "last_qty",
        "leaves",
        "match_id",
        "notional",
        "order",
        "reason",
        "ts_ns",
    )

    def __init__(
        self,
        kind: ReportKind,
        order: Order | None,
        ts_ns: int,
        reason: Reason | None = None,
        last_px: int = 0,
        last_qty: int = 0,
        match_id: int = 0,
        aggressor: bool = False,
    ) -> None:
        self.kind = kind
        self.order = order
        self.ts_ns = ts_ns
        self.reason = reason
        self.last_px = last_px
        self.last_qty = last_qty
        self.match_id = match_id
        self.aggressor = aggressor
        if order is None:
            self.cum = self.leaves = self.notional = 0
        else:
            self.cum = order.cum
            self.leaves = order.leaves
            self.notional = order.notional

    def __repr__(self) -> str:
        oid = self.order.order_id if self.order else None
        return f"Report({self.kind.value} order={oid} {self.last_qty}@{self.last_px} {self.reason})"


class TradePrint:
    """One match, as the market sees it: for the trade entries of market data."""

    __slots__ = ("aggressor", "match_id", "price", "qty", "symbol", "ts_ns")

    def __init__(
        self, symbol: str, price: int, qty: int, aggressor: Side | None, match_id: int, ts_ns: int
    ) -> None:
        self.symbol = symbol
        self.price = price
        self.qty = qty
        self.aggressor = aggressor  # None for an auction uncross
        self.match_id = match_id
        self.ts_ns = ts_ns


Event = Report | TradePrint


def entered_order(events: list[Event]) -> Order:
    """The order a ``submit`` created: its first event always reports it (NEW or REJECTED)."""
    first = events[0]
    assert isinstance(first, Report) and first.order is not None
    return first.order


class Book:
    """One instrument's resting orders.

    Each side keeps a dict of price -> FIFO queue and a sorted list of its prices with the
    best price last, so that the best level is ``keys[-1]`` and removing it is ``pop()``.
    Asks are stored under their negated price to make "best last" hold for both sides.
    """

    __slots__ = ("ask_keys", "asks", "bid_keys", "bids", "instrument", "last_uncross", "phase")

    def __init__(self, instrument: Instrument, phase: Phase) -> None:
        self.instrument = instrument
        self.phase = phase
        self.bids: dict[int, deque[Order]] = {}
        self.asks: dict[int, deque[Order]] = {}
        self.bid_keys: list[int] = []  # prices, ascending
        self.ask_keys: list[int] = []  # negated prices, ascending
        self.last_uncross: tuple[int, int] | None = None  # (price ticks, volume)

    def best_bid(self) -> int | None:
        return self.bid_keys[-1] if self.bid_keys else None

    def best_ask(self) -> int | None:
        return -self.ask_keys[-1] if self.ask_keys else None

    def levels(self, side: Side) -> Iterator[tuple[int, deque[Order]]]:
        """Price levels from the best outwards."""
        if side is BUY:
            for px in reversed(self.bid_keys):
                yield px, self.bids[px]
        else:
            for key in reversed(self.ask_keys):
                yield -key, self.asks[-key]

    def depth(self, side: Side, n: int) -> list[tuple[int, int, int]]:
        """The top ``n`` levels as (price ticks, total quantity, order count)."""
        out: list[tuple[int, int, int]] = []
        for px, queue in self.levels(side):
            if len(out) == n:
                break
            out.append((px, sum(o.leaves for o in queue), len(queue)))
        return out

    def is_crossed(self) -> bool:
        bid, ask = self.best_bid(), self.best_ask()
        return bid is not None and ask is not None and bid >= ask

    def orders(self) -> Iterator[Order]:
        for side in (BUY, SELL):
            for _, queue in self.levels(side):
                yield from queue

    def _rest(self, order: Order) -> None:
        px = order.price
        assert px is not None
        if order.side is BUY:
            queue = self.bids.get(px)
            if queue is None:
                queue = self.bids[px] = deque()
                bisect.insort(self.bid_keys, px)
        else:
            queue = self.asks.get(px)
            if queue is None:
                queue = self.asks[px] = deque()
                bisect.insort(self.ask_keys, -px)
        queue.append(order)

    def _unrest(self, order: Order) -> None:
        px = order.price
        assert px is not None
        levels, keys, key = (
            (self.bids, self.bid_keys, px) if order.side is BUY else (self.asks, self.ask_keys, -px)
        )
        queue = levels[px]
        queue.remove(order)
        if not queue:
            del levels[px]
            del keys[bisect.bisect_left(keys, key)]


class MatchingEngine:
    """All books of one venue. Each command returns the events it caused, in order."""

    def __init__(
        self,
        instruments: Iterable[Instrument],
        *,
        phase: Phase = Phase.CONTINUOUS,
        clock: Callable[[], int] = now_ns,
    ) -> None:
        self.books: dict[str, Book] = {i.symbol: Book(i, phase) for i in instruments}
        self.orders: dict[int, Order] = {}
        self._clock = clock
        self._next_order_id = 0
        self._next_seq = 0
        self._next_match_id = 0
        self._bands = {s: b.instrument.band_ticks() for s, b in self.books.items()}
        self._price_checks: dict[str, dict[Decimal, tuple[int | None, Reason | None]]] = {
            s: {} for s in self.books
        }

    # -- commands -------------------------------------------------------------------------

    def submit(
        self,
        owner: object,
        symbol: str,
        side: Side,
        qty: int,
        price: Decimal | None,
        tif: TimeInForce = TimeInForce.DAY,
        *,
        max_fill: int | None = None,
        reject: Reason | None = None,
    ) -> list[Event]:
        """Enter an order; ``price=None`` is a market order.

        ``max_fill`` caps how much may trade on entry (a partial fill forced by fault
        injection); ``reject`` refuses the order with that reason after validation.
        """
        ts = self._clock()
        order_id = self._next_order_id = self._next_order_id + 1
        order = Order(order_id, owner, symbol, side, qty, None, tif, ts)
        self.orders[order_id] = order
        book = self.books.get(symbol)
        ticks: int | None = None
        problem: Reason | None
        if book is None:
            problem = Reason.UNKNOWN_SYMBOL
        else:
            problem = self._check_quantity(book, qty)
            if problem is None and price is not None:
                ticks, problem = self._check_price(book, price)
            if problem is None and book.phase is not _CONTINUOUS:
                problem = self._check_phase_accepts(book.phase, price is None, tif)
        if problem is None and reject is not None:
            problem = reject
        if problem is not None or book is None:
            order.state = OrderState.REJECTED
            order.leaves = 0
            return [Report(ReportKind.REJECTED, order, ts, problem)]

        order.price = ticks
        out: list[Event] = [Report(_NEW, order, ts)]
        phase = book.phase
        if phase is _OPENING or phase is _CLOSING:
            self._rest(book, order)
            return out
        cap = qty if max_fill is None else max(0, min(qty, max_fill))
        if tif is _FOK and self._fillable(book, order, cap) < qty:
            self._finish(order, _CANCELED, _FOK_UNFILLED, out, ts)
            return out
        self._match(book, order, cap, out, ts)
        if order.leaves:
            if ticks is None:
                self._finish(order, _CANCELED, _NO_LIQUIDITY, out, ts)
            elif tif is _IOC or tif is _FOK:
                self._finish(order, _CANCELED, _IOC_REMAINDER, out, ts)
            elif max_fill is not None and self._crosses(book, order):
                # A forced partial fill stopped the order while it still crossed: a venue
                # never rests a crossing order, so the remainder is cancelled instead.
                self._finish(order, _CANCELED, Reason.PARTIAL_FILL_REMAINDER, out, ts)
            else:  # self._rest, written out on the path most orders take
                order.seq = self._next_seq = self._next_seq + 1
                book._rest(order)
        return out

    def cancel(self, order_id: int) -> list[Event]:
        ts = self._clock()
        order = self.orders.get(order_id)
        problem = self._check_live(order)
        if problem is not None or order is None:
            return [Report(ReportKind.CANCEL_REJECTED, order, ts, problem)]
        self.books[order.symbol]._unrest(order)
        out: list[Event] = []
        self._finish(order, _CANCELED, _REQUESTED, out, ts)
        return out

    def replace(self, order_id: int, qty: int, price: Decimal) -> list[Event]:
        """Change a resting order's total quantity and/or price.

        ``qty`` is the new total, filled part included, as FIX's OrderQty on a replace is.
        """
        ts = self._clock()
        order = self.orders.get(order_id)
        problem = self._check_live(order)
        # .get: an order refused for an unknown symbol has no book, and is ORDER_DONE
        book = self.books.get(order.symbol) if order is not None else None
        ticks: int | None = None
        if problem is None and book is not None and order is not None:
            problem = self._check_quantity(book, qty)
            if problem is None and qty <= order.cum:
                problem = Reason.BELOW_FILLED
            if problem is None:
                ticks, problem = self._check_price(book, price)
            if problem is None and book.phase is Phase.CLOSED:
                problem = Reason.MARKET_CLOSED
        if problem is not None or order is None or book is None or ticks is None:
            return [Report(ReportKind.REPLACE_REJECTED, order, ts, problem)]

        loses_priority = ticks != order.price or qty > order.qty
        if loses_priority:
            book._unrest(order)
        order.price = ticks
        order.qty = qty
        order.leaves = qty - order.cum
        out: list[Event] = [Report(ReportKind.REPLACED, order, ts)]
        if loses_priority:
            if not book.phase.is_auction:
                self._match(book, order, order.leaves, out, ts)
            if order.leaves:
                self._rest(book, order)
        return out

    def set_phase(self, phase: Phase, symbols: Iterable[str] | None = None) -> list[Event]:
        """Move books to a new trading phase.

        Leaving an auction for a non-auction phase runs the uncross; entering CLOSED expires
        every DAY order still working.
        """
        ts = self._clock()
        out: list[Event] = []
        for symbol in list(self.books) if symbols is None else symbols:
            book = self.books[symbol]
            if book.phase.is_auction and not phase.is_auction:
                self._uncross(book, out, ts)
            elif phase.is_auction and not book.phase.is_auction:
                book.last_uncross = None
            if phase is Phase.CLOSED:
                for order in [o for o in book.orders() if o.tif is TimeInForce.DAY]:
                    book._unrest(order)
                    self._finish(order, OrderState.EXPIRED, Reason.DAY_END, out, ts)
            book.phase = phase
        return out

    # -- queries --------------------------------------------------------------------------

    def auction_price(self, symbol: str) -> tuple[int, int, int] | None:
        """The price the uncross would use now: (price ticks, volume, imbalance), or None."""
        return _auction_price(self.books[symbol])

    # -- checks ---------------------------------------------------------------------------

    @staticmethod
    def _check_quantity(book: Book, qty: int) -> Reason | None:
        inst = book.instrument
        if qty <= 0 or qty % inst.lot:
            return Reason.BAD_QUANTITY
        if inst.max_order_qty is not None and qty > inst.max_order_qty:
            return Reason.QUANTITY_TOO_LARGE
        return None

    def _check_price(self, book: Book, price: Decimal) -> tuple[int | None, Reason | None]:
        """Ticks of ``price``, or why it is refused; remembered per symbol.

        The answer depends only on the (frozen) instrument, and working it out (Decimal
        modulo and division in ``to_ticks``) was the dearest step of entering an order.
        """
        checked = self._price_checks[book.instrument.symbol]
        try:
            found = checked.get(price)
        except TypeError:  # a signalling NaN cannot be hashed: let to_ticks say what it is
            return self._work_out_price(book, price)
        if found is None:
            found = self._work_out_price(book, price)
            if len(checked) < _PRICE_MEMO_SIZE:
                checked[price] = found
        return found

    def _work_out_price(self, book: Book, price: Decimal) -> tuple[int | None, Reason | None]:
        try:
            ticks = book.instrument.to_ticks(price)
        except OffTickError:
            return None, Reason.OFF_TICK
        if ticks <= 0:
            return None, Reason.OFF_TICK
        band = self._bands[book.instrument.symbol]
        if band is not None and not band[0] <= ticks <= band[1]:
            return None, Reason.OUTSIDE_BAND
        return ticks, None

    @staticmethod
    def _check_phase_accepts(phase: Phase, is_market: bool, tif: TimeInForce) -> Reason | None:
        if phase is Phase.CLOSED:
            return Reason.MARKET_CLOSED
        if phase.is_auction and (is_market or tif in (TimeInForce.IOC, TimeInForce.FOK)):
            return Reason.NOT_DURING_AUCTION
        return None

    @staticmethod
    def _check_live(order: Order | None) -> Reason | None:
        if order is None:
            return Reason.UNKNOWN_ORDER
        if order.state is not _WORKING:
            return Reason.ORDER_DONE
        return None

    # -- mechanics ------------------------------------------------------------------------

    def _rest(self, book: Book, order: Order) -> None:
        self._next_seq += 1
        order.seq = self._next_seq
        book._rest(order)

    @staticmethod
    def _finish(order: Order, state: OrderState, reason: Reason, out: list[Event], ts: int) -> None:
        order.state = state
        order.leaves = 0
        kind = _EXPIRED_REPORT if state is _EXPIRED else _CANCELED_REPORT
        out.append(Report(kind, order, ts, reason))

    @staticmethod
    def _fill(order: Order, px: int, qty: int, match_id: int, aggressor: bool, ts: int) -> Report:
        order.leaves -= qty
        order.cum += qty
        order.notional += px * qty
        if not order.leaves:
            order.state = _FILLED
        return Report(_TRADE, order, ts, None, px, qty, match_id, aggressor)

    @staticmethod
    def _crosses(book: Book, order: Order) -> bool:
        """Whether ``order`` would trade against the opposite side's best price now."""
        if order.side is BUY:
            best = book.best_ask()
            return best is not None and order.price is not None and order.price >= best
        best = book.best_bid()
        return best is not None and order.price is not None and order.price <= best

    @staticmethod
    def _fillable(book: Book, taker: Order, cap: int) -> int:
        """How much of ``taker`` could trade now, up to ``cap``, without trading it."""
        limit = taker.price
        total = 0
        for px, queue in book.levels(taker.side.opposite):
            if limit is not None and (px > limit if taker.side is BUY else px < limit):
                break
            total += sum(o.leaves for o in queue)
            if total >= cap:
                return cap
        return total

    def _match(self, book: Book, taker: Order, cap: int, out: list[Event], ts: int) -> None:
        """Walk the opposite side from the best level while the taker's limit crosses.

        This is the engine's hot loop, so it returns before any set-up when nothing can
        trade (most orders that rest), and it writes both fills itself as ``_fill`` would:
        two calls per match were a fifth of the cost of an order that walks the book.
        """
        side = taker.side
        is_buy = side is BUY
        keys = book.ask_keys if is_buy else book.bid_keys
        need = min(taker.leaves, cap)  # what may still trade: both fall by every fill
        if not keys or need <= 0:
            return
        limit = taker.price
        if limit is not None and (-keys[-1] > limit if is_buy else keys[-1] < limit):
            return
        levels = book.asks if is_buy else book.bids
        symbol = taker.symbol
        append = out.append
        while need and keys:
            px = -keys[-1] if is_buy else keys[-1]
            if limit is not None and (px > limit if is_buy else px < limit):
                break
            queue = levels[px]
            while queue and need:
                maker = queue[0]
                qty = maker.leaves if maker.leaves < need else need
                need -= qty
                notional = px * qty
                self._next_match_id = mid = self._next_match_id + 1
                taker.leaves -= qty
                taker.cum += qty
                taker.notional += notional
                if not taker.leaves:
                    taker.state = _FILLED
                append(Report(_TRADE, taker, ts, None, px, qty, mid, True))
                maker.leaves -= qty
                maker.cum += qty
                maker.notional += notional
                if not maker.leaves:
                    maker.state = _FILLED
                    queue.popleft()
                append(Report(_TRADE, maker, ts, None, px, qty, mid, False))
                append(TradePrint(symbol, px, qty, side, mid, ts))
            if not queue:
                del levels[px]
                keys.pop()

    def _uncross(self, book: Book, out: list[Event], ts: int) -> None:
        found = _auction_price(book)
        if found is None:
            return
        px, volume, _ = found
        buys = [o for p, q in book.levels(BUY) if p >= px for o in q]
        sells = [o for p, q in book.levels(SELL) if p <= px for o in q]
        bi = si = 0
        left = volume
        while left:
            b, s = buys[bi], sells[si]
            qty = min(b.leaves, s.leaves, left)
            left -= qty
            self._next_match_id += 1
            mid = self._next_match_id
            out.append(self._fill(b, px, qty, mid, False, ts))
            out.append(self._fill(s, px, qty, mid, False, ts))
            out.append(TradePrint(book.instrument.symbol, px, qty, None, mid, ts))
            if not b.leaves:
                bi += 1
            if not s.leaves:
                si += 1
        for order in buys[:bi] + sells[:si]:
            book._unrest(order)
        book.last_uncross = (px, volume)


def _auction_price(book: Book) -> tuple[int, int, int] | None:
    """The uncross price of ``book``: (price ticks, volume, imbalance), or None if none.

    Volume is a step function of price that only changes at the orders' limit prices, so
    each limit price is a candidate, and inside each gap between two neighbouring limits one
    more point is: the tick nearest the previous close (volume and imbalance are the same
    everywhere in the gap, so that point wins every tie within it).
    """
    if not book.bid_keys or not book.ask_keys or book.best_bid() < book.best_ask():  # type: ignore[operator]
        return None
    bid_qty = {px: sum(o.leaves for o in q) for px, q in book.bids.items()}
    ask_qty = {px: sum(o.leaves for o in q) for px, q in book.asks.items()}
    prices = sorted(bid_qty.keys() | ask_qty.keys())
    n = len(prices)
    demand = [0] * n  # buy quantity with limit >= prices[i]
    supply = [0] * n  # sell quantity with limit <= prices[i]
    running = 0
    for i in range(n - 1, -1, -1):
        running += bid_qty.get(prices[i], 0)
        demand[i] = running
    running = 0
    for i in range(n):
        running += ask_qty.get(prices[i], 0)
        supply[i] = running

    prev = book.instrument.prev_close
    ref = book.instrument.to_ticks(prev) if prev is not None else None
    candidates: list[tuple[int, int, int]] = []  # (price, demand, supply)
    for i, px in enumerate(prices):
        candidates.append((px, demand[i], supply[i]))
        if i + 1 < n and prices[i + 1] - px > 1:
            lo, hi = px + 1, prices[i + 1] - 1
            inner = lo if ref is None else min(max(ref, lo), hi)
            candidates.append((inner, demand[i + 1], supply[i]))

    def rank(c: tuple[int, int, int]) -> tuple[int, int, int, int]:
        px, d, s = c
        return (-min(d, s), abs(d - s), abs(px - ref) if ref is not None else 0, px)

    px, d, s = min(candidates, key=rank)
    volume = min(d, s)
    if volume == 0:
        return None
    return px, volume, abs(d - s)
