"""The shadow stage's venues: orders filled on paper against a mirror of the real books.

In shadow the strategy runs on the venues' real market data, but no order reaches a venue:
the gateway hands each order command to the venue's shadow instead, which answers with the
execution reports the venue would have sent. The OMS applies them as it applies a venue's,
so pairs, positions, P&L and receipts move as they would live, on paper.

**The mirror.** Each venue's mirror is the venue simulator's own matching engine
(``sessions.simulator.matching``), holding one resting order per displayed level of the
real book (a *level order*, owned by the mirror) at the level's price and size. An order of
ours is entered into the same engine and matched by its rules: price, then time; a buy takes
the asks up to its limit, level by level, at their prices; what an IOC or a market order
leaves is cancelled, a FOK fills in full or not at all, and a DAY or GTC remainder rests.
What our orders take from a level stays taken until the venue states that level again (a
new size in an update, or a snapshot): two orders cannot both take the same displayed lots.
When the real book later reaches a resting order of ours (a level appears at or through its
price), that level's order is entered as the venue would see the incoming order, and ours
fills at its own price, as the resting side of a trade does.

**On the OMS thread.** The mirror is touched on the OMS thread only. It follows market data
through an OMS hook, which runs once the OMS has applied each message to its own books; an
order command is not matched inside ``send`` but queued behind the event being handled, so
that it meets the mirror as of the market data the strategy decided on. Its reports are
posted to the OMS like a venue's, never applied while ``send`` runs.

**What it does not model.** The mirror knows the displayed depth only (a larger order's
remainder finds nothing beyond it); it trades continuously, whatever phase the venue is in;
and it cannot tell how much displayed quantity stood ahead of a resting order at its price,
so such an order fills once the real book crosses it. Paper orders live in memory only: a
restarted gateway knows none of them (their receipts have their own kinds, ``shadow.*``).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Final

from oms.clock import now_ns
from oms.commands import CancelOrder, Command, ReplaceOrder, SendOrder, StatusRequest
from oms.enums import OrderType, Side, TimeInForce
from oms.events import (
    CancelRejected,
    CancelRejectResponseTo,
    ExecType,
    ExecutionReceived,
    LineRole,
    MarketDataReceived,
    MdAction,
    MdEntryType,
    OrdStatus,
)
from oms.instruments import Instrument, OffTickError
from oms.market import MarketView
from sessions.simulator.matching import (
    Event,
    MatchingEngine,
    Order,
    OrderState,
    Reason,
    Report,
    ReportKind,
    entered_order,
)

log = logging.getLogger("cmc.shadow")

AVG_PX_PLACES: Final = Decimal("0.00000001")
_UNKNOWN_ORDER: Final = "NONE"  # the OrderID of an order a venue does not know
_CXL_UNKNOWN, _CXL_TOO_LATE = "1", "0"  # CxlRejReason(102)

_STATUS_OF_STATE: Final = {
    OrderState.FILLED: OrdStatus.FILLED,
    OrderState.CANCELED: OrdStatus.CANCELED,
    OrderState.EXPIRED: OrdStatus.EXPIRED,
    OrderState.REJECTED: OrdStatus.REJECTED,
}
_EXEC_TYPE: Final = {
    ReportKind.NEW: ExecType.NEW,
    ReportKind.TRADE: ExecType.TRADE,
    ReportKind.CANCELED: ExecType.CANCELED,
    ReportKind.REPLACED: ExecType.REPLACED,
    ReportKind.REJECTED: ExecType.REJECTED,
    ReportKind.EXPIRED: ExecType.EXPIRED,
}

Post = Callable[[Any], None]
"""The OMS's ``post``: events, and callables the OMS thread runs with the OMS."""


class _Level:
    """The owner of the mirror's level orders (the real book's displayed sizes)."""

    __slots__ = ()


_MIRROR: Final = _Level()


class PaperOrder:
    """One order of ours in a mirror, under the ClOrdID it answers to now."""

    __slots__ = ("clordid", "instrument", "line", "ord_type", "order", "order_id", "venue")

    def __init__(
        self, venue: str, clordid: str, line: LineRole, ord_type: OrderType, inst: Instrument
    ) -> None:
        self.venue = venue
        self.clordid = clordid
        self.line = line
        self.ord_type = ord_type
        self.instrument = inst
        self.order: Order | None = None
        self.order_id = _UNKNOWN_ORDER

    @property
    def status(self) -> OrdStatus:
        order = self.order
        if order is None:
            return OrdStatus.REJECTED
        if order.state is OrderState.WORKING:
            return OrdStatus.PARTIALLY_FILLED if order.cum else OrdStatus.NEW
        return _STATUS_OF_STATE[order.state]


class Mirror:
    """One venue's mirror: the real book's levels and our paper orders in one engine."""

    def __init__(
        self, venue: str, instruments: Iterable[Instrument], clock: Callable[[], int]
    ) -> None:
        self.venue = venue
        self.instruments = {i.symbol: i for i in instruments}
        # A level is many orders at the venue: no per-order maximum or band applies to it.
        # Our orders get the venue's own checks in ``enter``.
        relaxed = [
            i.model_copy(update={"max_order_qty": None, "price_band_pct": None})
            for i in self.instruments.values()
        ]
        self.engine = MatchingEngine(relaxed, clock=clock)
        self.levels: dict[tuple[str, Side, int], Order] = {}

    # -- the real book ------------------------------------------------------------------------

    def apply(self, event: MarketDataReceived) -> list[Event]:
        """State the levels the message names afresh (a snapshot: every level of its
        symbol). What shrinks goes first, so that a message moving the book never crosses
        the mirror half way through."""
        wanted: dict[tuple[str, Side, int], int] = {}
        if event.snapshot and event.snapshot_symbol is not None:
            symbol = event.snapshot_symbol
            wanted.update((key, 0) for key in self.levels if key[0] == symbol)
        for entry in event.entries:
            if entry.entry_type is MdEntryType.TRADE:
                continue
            inst = self.instruments.get(entry.symbol)
            if inst is None:
                continue
            try:
                ticks = inst.to_ticks(entry.price)
            except OffTickError:
                continue
            side = Side.BUY if entry.entry_type is MdEntryType.BID else Side.SELL
            size = 0 if entry.action is MdAction.DELETE else max(entry.size or 0, 0)
            wanted[(entry.symbol, side, ticks)] = size
        return self._state(wanted)

    def seed(self, symbol: str, bids: Mapping[Decimal, int], asks: Mapping[Decimal, int]) -> None:
        """Start from a book as the OMS holds it (the shadow stage begins mid-session)."""
        inst = self.instruments.get(symbol)
        if inst is None:
            return
        wanted = {key: 0 for key in self.levels if key[0] == symbol}
        for side, levels in ((Side.BUY, bids), (Side.SELL, asks)):
            for price, size in levels.items():
                try:
                    wanted[(symbol, side, inst.to_ticks(price))] = size
                except OffTickError:
                    continue
        self._state(wanted)  # no paper order can be working yet: nothing to report

    def _state(self, wanted: Mapping[tuple[str, Side, int], int]) -> list[Event]:
        out: list[Event] = []
        growing = []
        for key, size in wanted.items():
            level = self._live(key)
            if size <= 0 or (level is not None and size <= level.leaves):
                self._set(key, level, size, out)
            else:
                growing.append((key, size))
        for key, size in growing:  # looked up again: a crossed level may have gone meanwhile
            self._set(key, self._live(key), size, out)
        return out

    def _live(self, key: tuple[str, Side, int]) -> Order | None:
        level = self.levels.get(key)
        if level is not None and level.state is not OrderState.WORKING:
            del self.levels[key]  # taken in full by our orders since the venue last said
            self.engine.orders.pop(level.order_id, None)
            return None
        return level

    def _set(
        self, key: tuple[str, Side, int], level: Order | None, size: int, out: list[Event]
    ) -> None:
        engine = self.engine
        symbol, side, ticks = key
        if size <= 0:
            if level is not None:
                out += engine.cancel(level.order_id)
                self._forget(key, level)
            return
        price = self.instruments[symbol].from_ticks(ticks)
        if level is not None:
            if size != level.leaves:  # a larger size goes to the back of its level's queue
                out += engine.replace(level.order_id, level.cum + size, price)
            return
        self._clear_crossed(symbol, side, ticks, out)
        events = engine.submit(_MIRROR, symbol, side, size, price, TimeInForce.DAY)
        out += events
        level = entered_order(events)
        if level.state is OrderState.WORKING:
            self.levels[key] = level
        else:  # refused, or taken in full by our resting orders
            engine.orders.pop(level.order_id, None)

    def _clear_crossed(self, symbol: str, side: Side, ticks: int, out: list[Event]) -> None:
        """The venue's book is never crossed: a level on the other side at or through a new
        one is gone at the venue, whatever message is still to say so."""
        other = side.opposite
        for key in [
            k
            for k in self.levels
            if k[0] == symbol
            and k[1] is other
            and (k[2] >= ticks if side is Side.SELL else k[2] <= ticks)
        ]:
            level = self._live(key)
            if level is not None:
                out += self.engine.cancel(level.order_id)
                self._forget(key, level)

    def _forget(self, key: tuple[str, Side, int], level: Order) -> None:
        self.levels.pop(key, None)
        self.engine.orders.pop(level.order_id, None)

    # -- our orders -----------------------------------------------------------------------------

    def enter(self, paper: PaperOrder, command: SendOrder) -> list[Event]:
        """Enter a new order with the venue's checks (its maximum size and daily band), then
        the engine's (tick, lot)."""
        inst = paper.instrument
        price = command.price if command.ord_type is OrderType.LIMIT else None
        reject: Reason | None = None
        if inst.max_order_qty is not None and command.qty > inst.max_order_qty:
            reject = Reason.QUANTITY_TOO_LARGE
        band = inst.band_ticks()
        if reject is None and band is not None and price is not None:
            try:
                if not band[0] <= inst.to_ticks(price) <= band[1]:
                    reject = Reason.OUTSIDE_BAND
            except OffTickError:
                pass  # the engine says so
        events = self.engine.submit(
            paper, command.symbol, command.side, command.qty, price, command.tif, reject=reject
        )
        paper.order = entered_order(events)
        return events


class ShadowVenues:
    """Every venue's shadow: order commands in, a venue's reports posted back to the OMS.

    ``post`` is the OMS's: reports go to it as events, and each order command as a callable
    that the OMS thread runs after the event it is handling. ``active`` says whether orders
    come here at all (the shadow stage); the mirrors follow market data only while it does.
    """

    def __init__(
        self,
        instruments: Mapping[tuple[str, str], Instrument],
        *,
        clock: Callable[[], int] = now_ns,
    ) -> None:
        self._instruments = instruments
        self._clock = clock
        self._post: Post | None = None
        self.active = False
        self.mirrors: dict[str, Mirror] = {}
        self._reset()
        self.orders: dict[tuple[str, str], PaperOrder] = {}  # (venue, any ClOrdID of its chain)
        self._run = f"{int(time.time()) % 10**8:08d}"
        self._order_ids = itertools.count(1)
        self._exec_ids = itertools.count(1)

    def bind(self, post: Post) -> None:
        self._post = post

    def _reset(self) -> None:
        by_venue: dict[str, list[Instrument]] = {}
        for (venue, _), inst in self._instruments.items():
            by_venue.setdefault(venue, []).append(inst)
        self.mirrors = {v: Mirror(v, insts, self._clock) for v, insts in by_venue.items()}

    # -- the stage (OMS thread) ---------------------------------------------------------------

    def activate(self, market: MarketView | None = None) -> None:
        """Take orders from now on, the mirrors starting from the OMS's books (``market``),
        or empty, to be filled by the venues' snapshots."""
        self._reset()
        self.orders.clear()
        if market is not None:
            for (venue, symbol), book in market.books.items():
                mirror = self.mirrors.get(venue)
                if mirror is not None and book.stale is None:
                    mirror.seed(symbol, book.bids, book.asks)
        self.active = True

    def deactivate(self) -> None:
        """No more orders: the mirrors and every paper order are dropped."""
        self.active = False
        self._reset()
        self.orders.clear()

    def working(self) -> int:
        return sum(
            1
            for key, p in self.orders.items()
            if key[1] == p.clordid and p.order is not None and p.order.state is OrderState.WORKING
        )

    # -- commands (OMS thread, from the gateway's send) ----------------------------------------

    def send(self, command: Command, line: LineRole | None) -> LineRole | None:
        """Take an order command for the venue's shadow: the line it is booked on (the
        venue's active one, whose market data the mirror follows), or None when the venue
        has no line up (no market data: the order goes nowhere, as it would live)."""
        if isinstance(command, StatusRequest) and command.line is not None:
            line = command.line
        post = self._post
        if line is None or post is None or command.venue not in self.mirrors:
            return None
        if not isinstance(command, SendOrder | CancelOrder | ReplaceOrder | StatusRequest):
            return None
        taken = line
        post(lambda oms: self._execute(command, taken))
        return line

    def _execute(self, command: Command, line: LineRole) -> None:
        if isinstance(command, SendOrder):
            events = self._new(command, line)
        elif isinstance(command, CancelOrder):
            events = self._cancel(command, line)
        elif isinstance(command, ReplaceOrder):
            events = self._replace(command, line)
        elif isinstance(command, StatusRequest):
            events = [self._status(command, line)]
        else:
            return
        self._deliver(events)

    def _deliver(self, events: Iterable[ExecutionReceived | CancelRejected]) -> None:
        post = self._post
        if post is None:
            return
        for event in events:
            post(event)

    def _new(self, command: SendOrder, line: LineRole) -> list[ExecutionReceived]:
        venue = command.venue
        inst = self._instruments.get((venue, command.symbol))
        if (venue, command.clordid) in self.orders or inst is None:
            why = (
                f"duplicate ClOrdID {command.clordid}"
                if inst is not None
                else Reason.UNKNOWN_SYMBOL.value
            )
            return [self._refusal(command, line, why)]
        paper = PaperOrder(venue, command.clordid, line, command.ord_type, inst)
        self.orders[(venue, command.clordid)] = paper
        events = self.mirrors[venue].enter(paper, command)
        assert paper.order is not None
        paper.order_id = f"SHADOW-{venue}-{self._run}-{paper.order.order_id}"
        return self._reports(events)

    def _cancel(self, command: CancelOrder, line: LineRole) -> list[Any]:
        paper = self.orders.get((command.venue, command.orig_clordid))
        if paper is None or paper.order is None:
            return [self._cancel_reject(command, None, CancelRejectResponseTo.CANCEL, line)]
        events = self.mirrors[command.venue].engine.cancel(paper.order.order_id)
        first = events[0] if events else None
        if isinstance(first, Report) and first.kind is ReportKind.CANCEL_REJECTED:
            return [self._cancel_reject(command, paper, CancelRejectResponseTo.CANCEL, line)]
        orig = paper.clordid
        self._rename(paper, command.clordid)
        return self._reports(events, orig=orig)

    def _replace(self, command: ReplaceOrder, line: LineRole) -> list[Any]:
        paper = self.orders.get((command.venue, command.orig_clordid))
        if paper is None or paper.order is None:
            return [self._cancel_reject(command, None, CancelRejectResponseTo.REPLACE, line)]
        engine = self.mirrors[command.venue].engine
        events = engine.replace(paper.order.order_id, command.qty, command.price)
        first = events[0] if events else None
        if isinstance(first, Report) and first.kind is ReportKind.REPLACE_REJECTED:
            return [self._cancel_reject(command, paper, CancelRejectResponseTo.REPLACE, line)]
        orig = paper.clordid
        self._rename(paper, command.clordid)
        return self._reports(events, orig=orig)

    def _rename(self, paper: PaperOrder, clordid: str) -> None:
        paper.clordid = clordid
        self.orders[(paper.venue, clordid)] = paper

    def _status(self, command: StatusRequest, line: LineRole) -> ExecutionReceived:
        paper = self.orders.get((command.venue, command.clordid))
        order = paper.order if paper is not None else None
        if paper is None or order is None:
            return self._unknown(
                command, line, ExecType.ORDER_STATUS, None, Reason.UNKNOWN_ORDER.value
            )
        paper.line = line  # answered on the line that asked, which has it from now on
        return self._event(
            venue=paper.venue,
            line=line,
            clordid=paper.clordid,
            orig_clordid=None,
            venue_order_id=paper.order_id,
            exec_type=ExecType.ORDER_STATUS,
            ord_status=paper.status,
            symbol=order.symbol,
            side=order.side,
            order_qty=order.qty,
            cum_qty=order.cum,
            leaves_qty=order.leaves,
            avg_px=_avg_px(paper.instrument, order.notional, order.cum),
        )

    # -- the real book moves (OMS hook) --------------------------------------------------------

    def on_event(self, event: object, oms: object) -> None:
        """After the OMS applied a market-data message: the mirror states the same levels,
        and a resting paper order the real book now reaches fills."""
        if self.active and isinstance(event, MarketDataReceived):
            mirror = self.mirrors.get(event.venue)
            if mirror is not None:
                self._deliver(self._reports(mirror.apply(event)))

    # -- reports --------------------------------------------------------------------------------

    def _reports(self, events: Iterable[Event], *, orig: str | None = None) -> list[Any]:
        """The engine's reports on paper orders as a venue's execution reports (the level
        orders' own are the mirror's business). ``orig``: the ClOrdID a cancel or replace
        named, carried by its own report (the first one)."""
        out: list[ExecutionReceived] = []
        for ev in events:
            if not isinstance(ev, Report) or ev.order is None:
                continue
            paper = ev.order.owner
            if not isinstance(paper, PaperOrder):
                continue
            kind = _EXEC_TYPE.get(ev.kind)
            if kind is None:
                continue
            inst = paper.instrument
            order = ev.order
            trade = ev.kind is ReportKind.TRADE
            amends = ev.kind is ReportKind.CANCELED or ev.kind is ReportKind.REPLACED
            out.append(
                self._event(
                    venue=paper.venue,
                    line=paper.line,
                    clordid=paper.clordid,
                    orig_clordid=orig if amends else None,
                    venue_order_id=paper.order_id,
                    exec_type=kind,
                    ord_status=_status_after(ev),
                    symbol=order.symbol,
                    side=order.side,
                    order_qty=order.qty,
                    last_qty=ev.last_qty if trade else 0,
                    last_px=inst.from_ticks(ev.last_px) if trade else None,
                    cum_qty=ev.cum,
                    leaves_qty=ev.leaves,
                    avg_px=_avg_px(inst, ev.notional, ev.cum),
                    text=ev.reason.value if ev.reason is not None else None,
                )
            )
        return out

    def _refusal(self, command: SendOrder, line: LineRole, why: str) -> ExecutionReceived:
        return self._unknown(command, line, ExecType.REJECTED, command.qty, why)

    def _unknown(
        self,
        command: SendOrder | StatusRequest,
        line: LineRole,
        exec_type: ExecType,
        order_qty: int | None,
        text: str,
    ) -> ExecutionReceived:
        """A Rejected report for an order the paper venue has no OrderID for: a new order it
        refused, or a status request about one it does not know."""
        return self._event(
            venue=command.venue,
            line=line,
            clordid=command.clordid,
            orig_clordid=None,
            venue_order_id=_UNKNOWN_ORDER,
            exec_type=exec_type,
            ord_status=OrdStatus.REJECTED,
            symbol=command.symbol,
            side=command.side,
            order_qty=order_qty,
            text=text,
        )

    def _cancel_reject(
        self,
        command: CancelOrder | ReplaceOrder,
        paper: PaperOrder | None,
        response_to: CancelRejectResponseTo,
        line: LineRole,
    ) -> CancelRejected:
        known = paper is not None and paper.order is not None
        return CancelRejected(
            venue=command.venue,
            line=paper.line if paper is not None else line,
            clordid=command.clordid,
            orig_clordid=command.orig_clordid,
            venue_order_id=paper.order_id if paper is not None else None,
            ord_status=paper.status if paper is not None and known else None,
            response_to=response_to,
            reason=_CXL_TOO_LATE if known else _CXL_UNKNOWN,
            text=(Reason.ORDER_DONE if known else Reason.UNKNOWN_ORDER).value,
            recv_ns=self._clock(),
        )

    def _event(
        self,
        *,
        venue: str,
        line: LineRole,
        clordid: str,
        orig_clordid: str | None,
        venue_order_id: str,
        exec_type: ExecType,
        ord_status: OrdStatus,
        symbol: str,
        side: Side,
        order_qty: int | None,
        last_qty: int = 0,
        last_px: Decimal | None = None,
        cum_qty: int = 0,
        leaves_qty: int = 0,
        avg_px: Decimal = Decimal(0),
        text: str | None = None,
    ) -> ExecutionReceived:
        """One report as the sessions decode a venue's: no raw message (none was on the
        wire) and no venue timestamps (they would calibrate the venue's clock against ours)."""
        return ExecutionReceived(
            venue=venue,
            line=line,
            clordid=clordid,
            orig_clordid=orig_clordid,
            venue_order_id=venue_order_id,
            exec_id=f"SHADOW-{venue}-{self._run}-E{next(self._exec_ids)}",
            exec_type=exec_type,
            ord_status=ord_status,
            symbol=symbol,
            side=side,
            order_qty=order_qty,
            last_qty=last_qty,
            last_px=last_px,
            cum_qty=cum_qty,
            leaves_qty=leaves_qty,
            avg_px=avg_px,
            transact_ns=None,
            sending_ns=None,
            recv_ns=self._clock(),
            text=text,
        )


def _status_after(report: Report) -> OrdStatus:
    kind = report.kind
    if kind is ReportKind.TRADE:
        return OrdStatus.FILLED if report.leaves == 0 else OrdStatus.PARTIALLY_FILLED
    if kind is ReportKind.NEW or kind is ReportKind.REPLACED:
        return OrdStatus.PARTIALLY_FILLED if report.cum else OrdStatus.NEW
    return {
        ReportKind.CANCELED: OrdStatus.CANCELED,
        ReportKind.EXPIRED: OrdStatus.EXPIRED,
        ReportKind.REJECTED: OrdStatus.REJECTED,
    }[kind]


def _avg_px(inst: Instrument, notional: int, cum: int) -> Decimal:
    if not cum:
        return Decimal(0)
    return (inst.tick * notional / cum).quantize(AVG_PX_PLACES)
