"""Market data: a snapshot (35=W) on subscription, then incremental updates (35=X).

Books are published by price level, keyed by price: an update says a price level was added
(MDUpdateAction 0), changed size (1) or removed (2). Each subscription remembers the top-N
levels it was last sent, so the updates it gets are exactly the difference between that and
the book now, and a consumer that applies them to the snapshot holds the venue's top N.
Trades go out as MDEntryType 2 entries. Bad requests get a MarketDataRequestReject (35=Y).

``loss`` loses chosen messages on the wire (``faults.MarketDataLoss``): the subscription
goes on as if they had arrived, so a consumer that does not repair the gap holds a wrong
book.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from oms.enums import Side
from sessions.fixwire import Field, decimal_text, encode
from sessions.simulator.commands import MarketDataRequest
from sessions.simulator.faults import MarketDataLoss, burn_sequence_number
from sessions.simulator.matching import Book, MatchingEngine, TradePrint

BID, OFFER, TRADE = "0", "1", "2"
SUPPORTED_ENTRY_TYPES = frozenset({BID, OFFER, TRADE})

# MDReqRejReason(281)
REJ_UNKNOWN_SYMBOL = "0"
REJ_DUPLICATE_ID = "1"
REJ_SUBSCRIPTION_TYPE = "4"
REJ_DEPTH = "5"
REJ_UPDATE_TYPE = "6"
REJ_ENTRY_TYPE = "8"

Levels = dict[int, int]  # price ticks -> total size


@dataclass
class Subscription:
    session: str
    md_req_id: str
    symbols: tuple[str, ...]
    depth: int
    incremental: bool
    entry_types: frozenset[str]
    sent: dict[str, tuple[Levels, Levels]] = field(default_factory=dict)


class MarketDataPublisher:
    """Owned by the venue thread: no locking, like the engine it reads."""

    def __init__(
        self,
        engine: MatchingEngine,
        send: Callable[[str, str], None],
        max_depth: int,
        loss: MarketDataLoss | None = None,
        burn: Callable[[str], object] = burn_sequence_number,
    ) -> None:
        self._engine = engine
        self._send_text = send
        self.loss = loss or MarketDataLoss()
        self._burn = burn
        self.messages_sent = 0
        self._max_depth = max_depth
        self._subs: dict[tuple[str, str], Subscription] = {}
        self._dirty: set[str] = set()
        self._trades: list[TradePrint] = []

    # -- requests -------------------------------------------------------------------------

    def request(self, req: MarketDataRequest) -> None:
        key = (req.session, req.md_req_id)
        if req.subscription == "2":
            if self._subs.pop(key, None) is None:
                self._reject(
                    req, REJ_UNKNOWN_SYMBOL, f"no subscription with MDReqID {req.md_req_id}"
                )
            return
        problem = self._validate(req, key)
        if problem is not None:
            self._reject(req, *problem)
            return
        depth = self._max_depth if req.depth == 0 else req.depth
        sub = Subscription(
            req.session,
            req.md_req_id,
            req.symbols,
            depth,
            incremental=req.update_type != "0",
            entry_types=frozenset(req.entry_types),
        )
        for symbol in sub.symbols:
            self._send_snapshot(sub, symbol)
        if req.subscription == "1":
            self._subs[key] = sub

    def _validate(self, req: MarketDataRequest, key: tuple[str, str]) -> tuple[str, str] | None:
        if req.subscription not in ("0", "1"):
            return (
                REJ_SUBSCRIPTION_TYPE,
                f"SubscriptionRequestType {req.subscription} not supported",
            )
        if key in self._subs:
            return REJ_DUPLICATE_ID, f"MDReqID {req.md_req_id} is already subscribed"
        if req.depth < 0 or req.depth > self._max_depth:
            return REJ_DEPTH, f"MarketDepth {req.depth} not supported; use 0 to {self._max_depth}"
        if req.update_type not in (None, "0", "1"):
            return REJ_UPDATE_TYPE, f"MDUpdateType {req.update_type} not supported"
        unsupported = set(req.entry_types) - SUPPORTED_ENTRY_TYPES
        if unsupported or not req.entry_types:
            return REJ_ENTRY_TYPE, "MDEntryType must be 0 (bid), 1 (offer) or 2 (trade)"
        unknown = [s for s in req.symbols if s not in self._engine.books]
        if unknown or not req.symbols:
            return REJ_UNKNOWN_SYMBOL, f"unknown symbol(s): {', '.join(unknown) or '(none given)'}"
        return None

    def _reject(self, req: MarketDataRequest, reason: str, text: str) -> None:
        self._send(req.session, encode("Y", [(262, req.md_req_id), (281, reason), (58, text)]))

    def _send(self, session: str, text: str) -> None:
        if self.loss.roll(session):
            self._burn(session)
        else:
            self._send_text(session, text)

    def drop_session(self, session: str) -> None:
        for key in [k for k in self._subs if k[0] == session]:
            del self._subs[key]

    # -- book changes ---------------------------------------------------------------------

    def touched(self, symbol: str) -> None:
        self._dirty.add(symbol)

    def traded(self, trade: TradePrint) -> None:
        self._trades.append(trade)
        self._dirty.add(trade.symbol)

    def flush(self) -> None:
        """Send what changed since the last flush to every subscription that covers it."""
        if not self._dirty:
            return
        dirty, trades = self._dirty, self._trades
        self._dirty, self._trades = set(), []
        if not self._subs:
            return
        views: dict[tuple[str, int], tuple[Levels, Levels]] = {}
        for sub in self._subs.values():
            for symbol in sub.symbols:
                if symbol not in dirty:
                    continue
                view = views.get((symbol, sub.depth))
                if view is None:
                    view = views[(symbol, sub.depth)] = self._view(symbol, sub.depth)
                if sub.incremental:
                    self._send_update(sub, symbol, view, [t for t in trades if t.symbol == symbol])
                elif view != sub.sent.get(symbol):
                    self._send_snapshot(sub, symbol, view)

    # -- messages -------------------------------------------------------------------------

    def _view(self, symbol: str, depth: int) -> tuple[Levels, Levels]:
        book: Book = self._engine.books[symbol]
        return (
            {px: qty for px, qty, _ in book.depth(Side.BUY, depth)},
            {px: qty for px, qty, _ in book.depth(Side.SELL, depth)},
        )

    def _send_snapshot(
        self, sub: Subscription, symbol: str, view: tuple[Levels, Levels] | None = None
    ) -> None:
        view = view or self._view(symbol, sub.depth)
        inst = self._engine.books[symbol].instrument
        entries: list[Field] = []
        for entry_type, levels in ((BID, view[0]), (OFFER, view[1])):
            if entry_type in sub.entry_types:
                for px, qty in levels.items():
                    entries += [
                        (269, entry_type),
                        (270, decimal_text(inst.from_ticks(px))),
                        (271, qty),
                    ]
        fields: list[Field] = [
            (262, sub.md_req_id),
            (55, symbol),
            (268, len(entries) // 3),
            *entries,
        ]
        self._send(sub.session, encode("W", fields))
        self.messages_sent += 1
        sub.sent[symbol] = view

    def _send_update(
        self,
        sub: Subscription,
        symbol: str,
        view: tuple[Levels, Levels],
        trades: Iterable[TradePrint],
    ) -> None:
        inst = self._engine.books[symbol].instrument
        old = sub.sent.get(symbol, ({}, {}))
        entries: list[list[Field]] = []

        def entry(action: str, entry_type: str, px: int, qty: int | None) -> None:
            price = decimal_text(inst.from_ticks(px))
            entries.append(
                [(279, action), (269, entry_type), (55, symbol), (270, price), (271, qty)]
            )

        for entry_type, before, after in ((BID, old[0], view[0]), (OFFER, old[1], view[1])):
            if entry_type not in sub.entry_types:
                continue
            for px in before.keys() - after.keys():
                entry("2", entry_type, px, None)
            for px, qty in after.items():
                if px not in before:
                    entry("0", entry_type, px, qty)
                elif before[px] != qty:
                    entry("1", entry_type, px, qty)
        if TRADE in sub.entry_types:
            for trade in trades:
                entry("0", TRADE, trade.price, trade.qty)
        sub.sent[symbol] = view
        if entries:
            fields: list[Field] = [(262, sub.md_req_id), (268, len(entries))]
            for e in entries:
                fields += e
            self._send(sub.session, encode("X", fields))
            self.messages_sent += 1
