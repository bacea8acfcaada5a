"""Orders and their state machine: one transition table that follows FIX 4.4's matrices.

Why a table: every status change the OMS makes is one row that can be read against the FIX 4.4
order state change matrices (Volume 4, Appendix D). A (status, event) pair that is not a row
is illegal: the attempt is recorded on the order, ``IllegalTransition`` is raised, and the
order is left exactly as it was. Nothing overwrites a status silently.

Whose view: the gateway *sends* these orders to venues, so it owns them. It knows an order is
PendingNew the moment it sends it and PendingCancel / PendingReplace the moment it asks; the
venue's execution reports (35=8) and cancel rejects (35=9) tell it everything else.

What the venue says and what the OMS counts: CumQty, LeavesQty and AvgPx are taken from each
report (the venue's books are the ones that settle), and checked against the fills the OMS has
summed itself. A difference means a report went missing or a venue miscounted, so it is
flagged on the order and named in ``Applied.note`` for the receipt.

Hot path: ``Orders.apply`` runs on the OMS thread for every execution report, so this module
is plain slotted dataclasses and dict lookups: no pydantic validation, no copies of the order.
Only the OMS thread may call into ``Orders`` (single writer, DESIGN.md rule 1).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import Enum
from types import MappingProxyType
from typing import Final, NamedTuple

from oms.commands import CancelOrder, ReplaceOrder, SendOrder
from oms.enums import OrderType, Side, TimeInForce
from oms.events import (
    CancelRejected,
    CancelRejectResponseTo,
    ExecType,
    ExecutionReceived,
    LineRole,
    OrdStatus,
)

__all__ = [
    "AVG_PX_TOLERANCE",
    "CLOSED",
    "TRANSITIONS",
    "Applied",
    "Fill",
    "IllegalTransition",
    "Order",
    "OrderEvent",
    "OrderFlags",
    "Orders",
    "RequestKind",
    "Rule",
    "Transition",
    "classify",
]

_ZERO: Final = Decimal(0)

AVG_PX_TOLERANCE: Final = Decimal("0.0001")
"""How far the venue's AvgPx may sit from the OMS's own VWAP of the fills before it is flagged.

Venues round AvgPx (the simulator to 8 places; others may round to fewer), so equality is too
strict. A fill booked one tick off moves the average by a tick times that fill's share of the
order, which stays above this unless the order is hundreds of times the fill's size.
"""


class OrderEvent(Enum):
    """What can happen to an order: the column of the transition table.

    The first three are the gateway's own actions; the rest are what a venue report means.
    ``TRADE`` (ExecType F) is split by LeavesQty into PARTIAL_FILL and FULL_FILL because the
    two lead to different statuses; a cancel reject (35=9) is CANCEL_REJECTED.
    """

    # Members are singletons compared with ``is``; hashing by identity keeps the hot path's
    # lookups in C (Enum.__hash__ is a Python function).
    __hash__ = object.__hash__

    SUBMIT = "submit"
    SEND_FAILED = "send_failed"
    REQUEST_CANCEL = "request_cancel"
    REQUEST_REPLACE = "request_replace"
    PENDING_NEW = "pending_new"
    NEW = "new"
    PARTIAL_FILL = "partial_fill"
    FULL_FILL = "full_fill"
    PENDING_CANCEL = "pending_cancel"
    CANCELED = "canceled"
    PENDING_REPLACE = "pending_replace"
    REPLACED = "replaced"
    REJECTED = "rejected"
    EXPIRED = "expired"
    DONE_FOR_DAY = "done_for_day"
    RESTATED = "restated"
    TRADE_CANCEL = "trade_cancel"
    TRADE_CORRECT = "trade_correct"
    ORDER_STATUS = "order_status"
    CANCEL_REJECTED = "cancel_rejected"


class Rule(Enum):
    """A table target that depends on quantities, not on the (status, event) pair alone.

    BY_QTY: NEW if nothing has filled (CANCELED if nothing is left either: an IOC whose fill
    was busted can trade no more), FILLED if nothing is left, else PARTIALLY_FILLED; the
    quantities are the report's (a Replaced order lands by its CumQty against its new qty, a
    busted fill reopens a Filled order). RESUME: the status the order would have had without
    its cancel/replace request, i.e. PENDING_NEW if the venue never acknowledged it, else BY_QTY
    on the order's current quantities, because fills may have arrived while it was pending.
    """

    BY_QTY = "by_qty"
    RESUME = "resume"


class RequestKind(Enum):
    """The kind of the one cancel or replace request an order may have outstanding."""

    CANCEL = "cancel"
    REPLACE = "replace"


Next = OrdStatus | Rule

_S = OrdStatus
_E = OrderEvent

CLOSED: Final[frozenset[OrdStatus]] = frozenset(
    {_S.FILLED, _S.CANCELED, _S.REJECTED, _S.EXPIRED, _S.DONE_FOR_DAY}
)
"""Statuses in which the venue will not execute the order (today): not ``working``.

FILLED and DONE_FOR_DAY are not quite final in FIX (a bust reopens a fill, a GT order is
restated the next morning); the table says what may still follow them.
"""

TRANSITIONS: Final[Mapping[tuple[OrdStatus | None, OrderEvent], Next]] = MappingProxyType(
    {
        # --- the gateway sends the order: it is PendingNew from that moment ---------------
        (None, _E.SUBMIT): _S.PENDING_NEW,
        # --- PendingNew: sent, nothing heard yet ------------------------------------------
        (_S.PENDING_NEW, _E.SEND_FAILED): _S.REJECTED,  # never left: no line was logged on
        (_S.PENDING_NEW, _E.PENDING_NEW): _S.PENDING_NEW,  # venue's optional 39=A ack
        (_S.PENDING_NEW, _E.NEW): _S.NEW,  # A.1.a
        (_S.PENDING_NEW, _E.REJECTED): _S.REJECTED,  # A.1.a alt path, F.1
        (_S.PENDING_NEW, _E.REQUEST_CANCEL): _S.PENDING_CANCEL,  # B.1.d, B.1.e
        (_S.PENDING_NEW, _E.ORDER_STATUS): _S.PENDING_NEW,  # G.1.c
        # --- New --------------------------------------------------------------------------
        (_S.NEW, _E.PARTIAL_FILL): _S.PARTIALLY_FILLED,  # A.1.a
        (_S.NEW, _E.FULL_FILL): _S.FILLED,  # A.1.a
        (_S.NEW, _E.REQUEST_CANCEL): _S.PENDING_CANCEL,  # B.1.a
        (_S.NEW, _E.REQUEST_REPLACE): _S.PENDING_REPLACE,  # C.1.a
        (_S.NEW, _E.CANCELED): _S.CANCELED,  # I.1.a/b FOK/IOC killed, E.1 unsolicited
        (_S.NEW, _E.EXPIRED): _S.EXPIRED,  # DAY / GTD order expires
        (_S.NEW, _E.DONE_FOR_DAY): _S.DONE_FOR_DAY,  # A.1.b with nothing filled
        (_S.NEW, _E.RESTATED): Rule.BY_QTY,  # E.1.d unsolicited qty change
        (_S.NEW, _E.ORDER_STATUS): _S.NEW,  # G.1.c
        # --- PartiallyFilled --------------------------------------------------------------
        (_S.PARTIALLY_FILLED, _E.PARTIAL_FILL): _S.PARTIALLY_FILLED,  # A.1.a
        (_S.PARTIALLY_FILLED, _E.FULL_FILL): _S.FILLED,  # A.1.a
        (_S.PARTIALLY_FILLED, _E.REQUEST_CANCEL): _S.PENDING_CANCEL,  # B.1.b, B.1.c
        (_S.PARTIALLY_FILLED, _E.REQUEST_REPLACE): _S.PENDING_REPLACE,  # C.1.b, C.3.*
        (_S.PARTIALLY_FILLED, _E.CANCELED): _S.CANCELED,  # E.1.b, IOC remainder
        (_S.PARTIALLY_FILLED, _E.EXPIRED): _S.EXPIRED,
        (_S.PARTIALLY_FILLED, _E.DONE_FOR_DAY): _S.DONE_FOR_DAY,  # A.1.b
        (_S.PARTIALLY_FILLED, _E.RESTATED): Rule.BY_QTY,  # E.1.d, H.1.b
        (_S.PARTIALLY_FILLED, _E.TRADE_CANCEL): Rule.BY_QTY,  # J.1.a
        (_S.PARTIALLY_FILLED, _E.TRADE_CORRECT): Rule.BY_QTY,  # J.1.a, J.1.c
        (_S.PARTIALLY_FILLED, _E.ORDER_STATUS): _S.PARTIALLY_FILLED,  # G.1.c
        # --- Filled: only busts, corrections and a qty increase can follow -----------------
        (_S.FILLED, _E.TRADE_CANCEL): Rule.BY_QTY,  # J.1.a: reopens quantity
        (_S.FILLED, _E.TRADE_CORRECT): Rule.BY_QTY,  # J.1.a
        (_S.FILLED, _E.REQUEST_REPLACE): _S.PENDING_REPLACE,  # C.1.c (increase qty)
        (_S.FILLED, _E.PENDING_REPLACE): _S.PENDING_REPLACE,  # C.1.c after a fill crossed it
        (_S.FILLED, _E.REPLACED): Rule.BY_QTY,  # C.1.c after a fill crossed it
        (_S.FILLED, _E.CANCEL_REJECTED): _S.FILLED,  # B.1.c, C.2.a: too late to cancel
        (_S.FILLED, _E.ORDER_STATUS): _S.FILLED,
        # --- PendingCancel: fills still land; a completing fill wins ----------------------
        (_S.PENDING_CANCEL, _E.PENDING_NEW): _S.PENDING_CANCEL,  # B.1.d
        (_S.PENDING_CANCEL, _E.NEW): _S.PENDING_CANCEL,  # B.1.e: the ack crossed the request
        (_S.PENDING_CANCEL, _E.REJECTED): _S.REJECTED,  # B.1.d: the order itself refused
        (_S.PENDING_CANCEL, _E.PENDING_CANCEL): _S.PENDING_CANCEL,  # B.1.a
        (_S.PENDING_CANCEL, _E.PARTIAL_FILL): _S.PENDING_CANCEL,  # B.1.b
        (_S.PENDING_CANCEL, _E.FULL_FILL): _S.FILLED,  # B.1.c
        (_S.PENDING_CANCEL, _E.CANCELED): _S.CANCELED,  # B.1.a, B.1.b
        (_S.PENDING_CANCEL, _E.CANCEL_REJECTED): Rule.RESUME,  # B.1.b alt path, H.1.c
        (_S.PENDING_CANCEL, _E.EXPIRED): _S.EXPIRED,  # the venue's clock beat the request
        (_S.PENDING_CANCEL, _E.DONE_FOR_DAY): _S.DONE_FOR_DAY,
        (_S.PENDING_CANCEL, _E.RESTATED): _S.PENDING_CANCEL,
        (_S.PENDING_CANCEL, _E.TRADE_CANCEL): _S.PENDING_CANCEL,
        (_S.PENDING_CANCEL, _E.TRADE_CORRECT): _S.PENDING_CANCEL,
        (_S.PENDING_CANCEL, _E.ORDER_STATUS): _S.PENDING_CANCEL,
        (_S.PENDING_CANCEL, _E.SEND_FAILED): _S.REJECTED,  # never acknowledged, never arrived
        # --- PendingReplace: fills land on the original order ------------------------------
        (_S.PENDING_REPLACE, _E.PENDING_REPLACE): _S.PENDING_REPLACE,  # C.1.a
        (_S.PENDING_REPLACE, _E.SEND_FAILED): _S.REJECTED,  # never acknowledged, never arrived
        (_S.PENDING_REPLACE, _E.PARTIAL_FILL): _S.PENDING_REPLACE,  # C.1.b, D.1.a
        (_S.PENDING_REPLACE, _E.FULL_FILL): _S.FILLED,  # C.2.a
        (_S.PENDING_REPLACE, _E.REPLACED): Rule.BY_QTY,  # C.1.a/b, C.3.a/b/c
        (_S.PENDING_REPLACE, _E.CANCEL_REJECTED): Rule.RESUME,  # C.1.a alt path, D.1.c
        (_S.PENDING_REPLACE, _E.CANCELED): _S.CANCELED,  # unsolicited cancel wins
        (_S.PENDING_REPLACE, _E.EXPIRED): _S.EXPIRED,
        (_S.PENDING_REPLACE, _E.DONE_FOR_DAY): _S.DONE_FOR_DAY,
        (_S.PENDING_REPLACE, _E.RESTATED): _S.PENDING_REPLACE,
        (_S.PENDING_REPLACE, _E.TRADE_CANCEL): _S.PENDING_REPLACE,
        (_S.PENDING_REPLACE, _E.TRADE_CORRECT): _S.PENDING_REPLACE,
        (_S.PENDING_REPLACE, _E.ORDER_STATUS): _S.PENDING_REPLACE,
        # --- DoneForDay: closed for today; a GT order is restated tomorrow ----------------
        (_S.DONE_FOR_DAY, _E.RESTATED): Rule.BY_QTY,  # H.1.a GTC renewal
        (_S.DONE_FOR_DAY, _E.CANCELED): _S.CANCELED,  # a pending cancel answered late
        (_S.DONE_FOR_DAY, _E.EXPIRED): _S.EXPIRED,
        (_S.DONE_FOR_DAY, _E.CANCEL_REJECTED): _S.DONE_FOR_DAY,
        (_S.DONE_FOR_DAY, _E.TRADE_CANCEL): _S.DONE_FOR_DAY,  # J.1.d: DFD outranks PF
        (_S.DONE_FOR_DAY, _E.TRADE_CORRECT): _S.DONE_FOR_DAY,
        (_S.DONE_FOR_DAY, _E.ORDER_STATUS): _S.DONE_FOR_DAY,
        # --- Canceled / Expired / Rejected: final; late busts and answers only -------------
        (_S.CANCELED, _E.TRADE_CANCEL): _S.CANCELED,  # J.1.b
        (_S.CANCELED, _E.TRADE_CORRECT): _S.CANCELED,
        (_S.CANCELED, _E.CANCEL_REJECTED): _S.CANCELED,  # a replace crossed the cancel
        (_S.CANCELED, _E.ORDER_STATUS): _S.CANCELED,
        (_S.EXPIRED, _E.TRADE_CANCEL): _S.EXPIRED,
        (_S.EXPIRED, _E.TRADE_CORRECT): _S.EXPIRED,
        (_S.EXPIRED, _E.CANCEL_REJECTED): _S.EXPIRED,
        (_S.EXPIRED, _E.ORDER_STATUS): _S.EXPIRED,
        (_S.REJECTED, _E.CANCEL_REJECTED): _S.REJECTED,  # B.1.d: cancel of a refused order
        (_S.REJECTED, _E.ORDER_STATUS): _S.REJECTED,
    }
)
"""The order state machine: (current status, event) -> next status or a quantity rule.

Comments name the FIX 4.4 Appendix D matrix that shows each row. Deliberate choices where the
matrices leave room: one outstanding cancel/replace per order (no D.2 chaining); no fill before
the venue's New (the matrices always acknowledge first); a venue's expiry or done-for-day wins
over a request in flight; no fill after Canceled, Expired or Rejected (J.1.b's re-execution of a
busted fill on a canceled order is therefore raised for a human to book).
"""

# The same table keyed for the hot path: OrdStatus hashes in Python (Enum.__hash__), its code
# string in C. Derived from TRANSITIONS, never edited by hand.
_INDEX: Final[dict[tuple[str | None, OrderEvent], Next]] = {
    (status._value_ if status is not None else None, event): target
    for (status, event), target in TRANSITIONS.items()
}
_CLOSED_CODES: Final[frozenset[str]] = frozenset(status._value_ for status in CLOSED)

_REPORT_EVENTS: Final[Mapping[ExecType, OrderEvent]] = MappingProxyType(
    {
        ExecType.NEW: _E.NEW,
        ExecType.DONE_FOR_DAY: _E.DONE_FOR_DAY,
        ExecType.CANCELED: _E.CANCELED,
        ExecType.REPLACED: _E.REPLACED,
        ExecType.PENDING_CANCEL: _E.PENDING_CANCEL,
        ExecType.REJECTED: _E.REJECTED,
        ExecType.PENDING_NEW: _E.PENDING_NEW,
        ExecType.EXPIRED: _E.EXPIRED,
        ExecType.RESTATED: _E.RESTATED,
        ExecType.PENDING_REPLACE: _E.PENDING_REPLACE,
        ExecType.TRADE_CORRECT: _E.TRADE_CORRECT,
        ExecType.TRADE_CANCEL: _E.TRADE_CANCEL,
        ExecType.ORDER_STATUS: _E.ORDER_STATUS,
    }
)

_EVENT_BY_CODE: Final[dict[str, OrderEvent]] = {t._value_: e for t, e in _REPORT_EVENTS.items()}

# Events that answer a request, and the request they need outstanding (see _request_problem).
_ANSWERS: Final[dict[OrderEvent, RequestKind]] = {
    _E.PENDING_CANCEL: RequestKind.CANCEL,
    _E.PENDING_REPLACE: RequestKind.REPLACE,
    _E.REPLACED: RequestKind.REPLACE,
}
_FILLS: Final[frozenset[OrderEvent]] = frozenset({_E.PARTIAL_FILL, _E.FULL_FILL})
_BUSTS: Final[frozenset[OrderEvent]] = frozenset({_E.TRADE_CANCEL, _E.TRADE_CORRECT})

# Members the hot path compares against, as module globals: in Python 3.11 reading a member
# off its Enum class (``OrderEvent.NEW``) costs a descriptor call, about 80 ns, each time.
_TRADE: Final = ExecType.TRADE
_EV_NEW: Final = _E.NEW
_EV_PARTIAL_FILL: Final = _E.PARTIAL_FILL
_EV_FULL_FILL: Final = _E.FULL_FILL
_EV_TRADE_CORRECT: Final = _E.TRADE_CORRECT
_EV_REPLACED: Final = _E.REPLACED
_EV_CANCELED: Final = _E.CANCELED
_EV_RESTATED: Final = _E.RESTATED
_EV_ORDER_STATUS: Final = _E.ORDER_STATUS
_ST_NEW: Final = _S.NEW
_ST_PARTIALLY_FILLED: Final = _S.PARTIALLY_FILLED
_ST_FILLED: Final = _S.FILLED
_ST_PENDING_NEW: Final = _S.PENDING_NEW
_ST_CANCELED: Final = _S.CANCELED
_RESUME: Final = Rule.RESUME


def classify(report: ExecutionReceived) -> OrderEvent:
    """The table column for a report: its ExecType, with a Trade split by what it leaves."""
    if report.exec_type is _TRADE:
        return _EV_FULL_FILL if report.leaves_qty <= 0 else _EV_PARTIAL_FILL
    return _EVENT_BY_CODE[report.exec_type._value_]


def _by_qty(cum: int, leaves: int) -> OrdStatus:
    if cum <= 0:
        # Nothing filled and nothing left (an IOC whose only fill was busted, an order
        # restated to zero): it can no longer trade, so it is not working.
        return _ST_NEW if leaves > 0 else _ST_CANCELED
    return _ST_FILLED if leaves <= 0 else _ST_PARTIALLY_FILLED


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of one order, as the venue reported it.

    A bust (ExecType H) or correction (G) does not delete a fill: the stored copy gets
    ``busted_by`` (the ExecID of the bust or correction) and stops counting, and a correction
    adds a new fill whose ``correction_of`` names the ExecID it replaces. Receipts and
    positions can so replay exactly what the venue said, in order.
    """

    order_key: str
    venue: str
    symbol: str
    side: Side
    exec_id: str
    qty: int
    price: Decimal
    transact_ns: int | None
    recv_ns: int
    correction_of: str | None = None
    busted_by: str | None = None

    @property
    def busted(self) -> bool:
        """True once a bust or a correction has taken this fill out of the order's totals."""
        return self.busted_by is not None


class Transition(NamedTuple):
    """One line of an order's history: a change made, or (``legal=False``) one refused.

    ``to_status`` is None for a refused attempt: the order stayed where it was.
    """

    from_status: OrdStatus | None
    to_status: OrdStatus | None
    cause: str
    legal: bool = True


@dataclass(slots=True)
class OrderFlags:
    """Sticky marks for reconciliation: once set they stay set, so nothing is forgotten."""

    overfilled: bool = False
    """The venue reported CumQty above the order's quantity."""
    fills_mismatch: bool = False
    """A report's CumQty, LeavesQty or AvgPx disagreed with the fills the OMS summed."""
    illegal_transitions: int = 0
    """How many illegal transitions were attempted on this order (each also in history)."""


@dataclass(slots=True, eq=False)
class Order:
    """One order the gateway sent to a venue, owned and mutated by the OMS thread only.

    ``key`` is the first ClOrdID and never changes; ``clordid`` is the current acknowledged one
    (it moves on when a replace or cancel is accepted) and ``clordids`` every ID the order has
    used, requests included, because venues may answer under any of them. ``qty`` and
    ``price`` change only when the venue confirms a replace; until then a requested change
    waits in ``pending_*``. ``cum_qty``/``leaves_qty``/``avg_px`` are the venue's latest
    numbers; ``fill_qty``/``fill_notional`` are the OMS's own sums of live fills.
    """

    key: str
    venue: str
    symbol: str
    side: Side
    qty: int
    ord_type: OrderType
    price: Decimal | None
    tif: TimeInForce
    account: str | None
    status: OrdStatus
    clordid: str
    created_ns: int
    pair_id: str | None = None
    leg: str | None = None
    pending_clordid: str | None = None
    pending_kind: RequestKind | None = None
    pending_qty: int | None = None
    pending_price: Decimal | None = None
    venue_order_id: str | None = None
    line: LineRole | None = None  # the line its NewOrderSingle went out on
    acked: bool = False
    cum_qty: int = 0
    leaves_qty: int = 0
    avg_px: Decimal = _ZERO
    fills: list[Fill] = field(default_factory=list)
    exec_ids: set[str] = field(default_factory=set)
    fill_qty: int = 0
    fill_notional: Decimal = _ZERO
    last_update_ns: int = 0
    flags: OrderFlags = field(default_factory=OrderFlags)
    history: list[Transition] = field(default_factory=list)
    clordids: list[str] = field(default_factory=list)
    rejected_requests: set[str] = field(default_factory=set)

    @property
    def working(self) -> bool:
        """The venue may still execute it (today): not Filled/Canceled/Rejected/Expired/DFD."""
        return self.status not in CLOSED

    @property
    def vwap(self) -> Decimal | None:
        """The OMS's own average price of the live fills, or None before the first fill."""
        return self.fill_notional / self.fill_qty if self.fill_qty else None


@dataclass(frozen=True, slots=True)
class Applied:
    """What applying one report did, for the hooks and the receipt.

    ``duplicate``: the ExecID (or the rejected request's ClOrdID) was already applied, so
    nothing changed, PossDup or not. ``unknown``: no order answers to the report's ClOrdID or
    OrigClOrdID on that venue. ``fill`` is the new fill of a Trade or a correction, or the
    voided fill of a bust (its ``busted_by`` set) so positions can reverse it.
    """

    order: Order | None
    previous: OrdStatus | None
    status: OrdStatus | None
    event: OrderEvent | None = None
    fill: Fill | None = None
    duplicate: bool = False
    overfill: bool = False
    unknown: bool = False
    note: str = ""


class IllegalTransition(Exception):
    """An event the transition table does not allow in the order's status.

    By the time it is raised the attempt is in ``order.history`` (``legal=False``) and counted
    in ``order.flags.illegal_transitions``; the order itself is unchanged. ``report`` is the
    venue message that tried it, or None for a local request.
    """

    def __init__(
        self,
        key: str,
        from_status: OrdStatus,
        event: OrderEvent,
        report: ExecutionReceived | CancelRejected | None,
        reason: str,
    ) -> None:
        super().__init__(f"order {key}: {event.name} is illegal in {from_status.name} ({reason})")
        self.key = key
        self.from_status = from_status
        self.event = event
        self.report = report
        self.reason = reason


class Orders:
    """Every order of the gateway, by key and by every ClOrdID it has used.

    The registry is where commands are born (``submit``, ``request_cancel``,
    ``request_replace`` return the command to send) and where venue messages are applied
    (``apply``, ``apply_cancel_reject``), so an order's status never changes anywhere else.
    """

    __slots__ = ("_by_clordid", "_orders")

    def __init__(self) -> None:
        self._orders: dict[str, Order] = {}
        self._by_clordid: dict[str, Order] = {}

    def __len__(self) -> int:
        return len(self._orders)

    # -- lookups ----------------------------------------------------------------------------

    def by_key(self, key: str) -> Order | None:
        return self._orders.get(key)

    def by_clordid(self, clordid: str) -> Order | None:
        """The order that has used ``clordid``: its first, a replacement, or a request's ID."""
        return self._by_clordid.get(clordid)

    def all(self) -> list[Order]:
        """Every order of the day, oldest first."""
        return list(self._orders.values())

    def working(self) -> list[Order]:
        """Orders the venues may still execute, oldest first."""
        return [o for o in self._orders.values() if o.status not in CLOSED]

    # -- the gateway's actions -------------------------------------------------------------

    def submit(
        self,
        venue: str,
        symbol: str,
        side: Side,
        qty: int,
        ord_type: OrderType,
        price: Decimal | None,
        tif: TimeInForce,
        *,
        clordid: str,
        account: str | None = None,
        pair_id: str | None = None,
        leg: str | None = None,
        now_ns: int,
        cause_ns: int | None = None,
    ) -> tuple[Order, SendOrder]:
        """Create an order in PendingNew and the NewOrderSingle that sends it.

        Raises ValueError for a request no venue should see (a reused ClOrdID, a quantity
        below one, a limit order without a price or a market order with one).
        """
        self._check_fresh(clordid)
        if qty < 1:
            raise ValueError(f"order quantity must be at least 1 contract, got {qty}")
        if (ord_type is OrderType.LIMIT) != (price is not None):
            need = "needs a price" if price is None else "takes no price"
            raise ValueError(f"a {ord_type.name} order {need}")
        status = TRANSITIONS[(None, _E.SUBMIT)]
        assert isinstance(status, OrdStatus)
        order = Order(
            key=clordid,
            venue=venue,
            symbol=symbol,
            side=side,
            qty=qty,
            ord_type=ord_type,
            price=price,
            tif=tif,
            account=account,
            status=status,
            clordid=clordid,
            created_ns=now_ns,
            pair_id=pair_id,
            leg=leg,
            leaves_qty=qty,
            last_update_ns=now_ns,
        )
        order.history.append(Transition(None, status, f"SUBMIT {clordid}"))
        order.clordids.append(clordid)
        self._orders[clordid] = order
        self._by_clordid[clordid] = order
        command = SendOrder(
            venue=venue,
            clordid=clordid,
            symbol=symbol,
            side=side,
            qty=qty,
            ord_type=ord_type,
            price=price,
            tif=tif,
            account=account,
            created_ns=now_ns,
            cause_ns=cause_ns,
            pair_id=pair_id,
        )
        return order, command

    def send_failed(self, order: Order, *, reason: str, now_ns: int) -> None:
        """The order never reached the venue (no line logged on, or the venue does not know
        it where it would): it is Rejected here, by the gateway, so that nothing waits for an
        answer that cannot come. A cancel or replace sent after it is over too: the venue's
        refusal of it, if one comes, is taken as a duplicate."""
        target = _INDEX.get((order.status._value_, _E.SEND_FAILED))
        if target is None or order.acked:
            why = "only an order the venue never acknowledged can have failed to reach it"
            raise self._illegal(order, _E.SEND_FAILED, None, why)
        assert isinstance(target, OrdStatus)
        order.history.append(Transition(order.status, target, f"SEND_FAILED {reason}"))
        if order.pending_clordid is not None:
            order.rejected_requests.add(order.pending_clordid)
            _clear_pending(order)
        order.status = target
        order.leaves_qty = 0
        order.last_update_ns = now_ns

    def request_cancel(
        self, order: Order, *, clordid: str, now_ns: int, cause_ns: int | None = None
    ) -> CancelOrder:
        """Move the order to PendingCancel and return the OrderCancelRequest to send."""
        self._request(order, _E.REQUEST_CANCEL, RequestKind.CANCEL, clordid, now_ns)
        return CancelOrder(
            venue=order.venue,
            clordid=clordid,
            orig_clordid=order.clordid,
            venue_order_id=order.venue_order_id,
            symbol=order.symbol,
            side=order.side,
            created_ns=now_ns,
            cause_ns=cause_ns,
        )

    def request_replace(
        self,
        order: Order,
        qty: int,
        price: Decimal,
        *,
        clordid: str,
        now_ns: int,
        cause_ns: int | None = None,
    ) -> ReplaceOrder:
        """Move the order to PendingReplace and return the cancel/replace request to send.

        ``qty`` is the new total quantity, filled part included (FIX's OrderQty on a replace).
        Nothing about the order changes until the venue says Replaced.
        """
        if qty < 1:
            raise ValueError(f"order quantity must be at least 1 contract, got {qty}")
        self._request(order, _E.REQUEST_REPLACE, RequestKind.REPLACE, clordid, now_ns)
        order.pending_qty = qty
        order.pending_price = price
        return ReplaceOrder(
            venue=order.venue,
            clordid=clordid,
            orig_clordid=order.clordid,
            venue_order_id=order.venue_order_id,
            symbol=order.symbol,
            side=order.side,
            qty=qty,
            price=price,
            tif=order.tif,
            created_ns=now_ns,
            cause_ns=cause_ns,
        )

    # -- what the venues say ---------------------------------------------------------------

    def apply(self, report: ExecutionReceived) -> Applied:
        """Apply one execution report; raise IllegalTransition (recorded) if the table refuses.

        The order is found by ClOrdID, else OrigClOrdID, on the report's venue. A repeated
        ExecID is applied once. Fills during a pending cancel/replace land on the order and
        keep it pending; a completing fill makes it FILLED.
        """
        order = self._find(report.venue, report.clordid, report.orig_clordid)
        if order is None:
            note = f"no order with ClOrdID {report.clordid} on {report.venue}"
            return Applied(None, None, None, unknown=True, note=note)
        status = order.status
        if report.exec_id in order.exec_ids:
            return Applied(
                order,
                status,
                status,
                duplicate=True,
                note=f"duplicate ExecID {report.exec_id}{' (PossDup)' if report.poss_dup else ''}",
            )
        event = classify(report)
        target = _INDEX.get((status._value_, event))
        if target is None:
            raise self._illegal(order, event, report, "not in the transition table")
        problem = _request_problem(order, event, report)
        if problem is not None:
            raise self._illegal(order, event, report, problem)

        # Check everything that can refuse before anything changes.
        fill: Fill | None = None
        voided_at = -1
        trades = event in _FILLS or event is _EV_TRADE_CORRECT
        if trades and (report.last_qty <= 0 or report.last_px is None):
            raise self._illegal(order, event, report, "a trade needs LastQty and LastPx")
        if event in _BUSTS:
            voided_at = _live_fill_index(order, report.exec_ref_id)
            if voided_at < 0:
                why = f"ExecRefID {report.exec_ref_id} names no live fill of this order"
                raise self._illegal(order, event, report, why)

        if voided_at >= 0:
            old = order.fills[voided_at]
            order.fills[voided_at] = fill = replace(old, busted_by=report.exec_id)
            order.fill_qty -= old.qty
            order.fill_notional -= old.qty * old.price
        if trades:
            assert report.last_px is not None
            fill = Fill(
                order_key=order.key,
                venue=order.venue,
                symbol=order.symbol,
                side=order.side,
                exec_id=report.exec_id,
                qty=report.last_qty,
                price=report.last_px,
                transact_ns=report.transact_ns,
                recv_ns=report.recv_ns,
                correction_of=order.fills[voided_at].exec_id if voided_at >= 0 else None,
            )
            order.fills.append(fill)
            order.fill_qty += fill.qty
            order.fill_notional += fill.qty * fill.price

        if event is not _EV_ORDER_STATUS:
            # A status reply is a check on the order, not an update of it: see the G.1 test.
            order.cum_qty = report.cum_qty
            order.leaves_qty = report.leaves_qty
            order.avg_px = report.avg_px
        if event is _EV_NEW or event in _FILLS:
            order.acked = True
        if event is _EV_REPLACED:
            pending_qty = order.pending_qty if order.pending_qty is not None else order.qty
            # C.3.b/c: a venue amends a qty at or below CumQty up to CumQty.
            order.qty = (
                report.order_qty
                if report.order_qty is not None
                else max(pending_qty, report.cum_qty)
            )
            if order.pending_price is not None:
                order.price = order.pending_price
            order.clordid = report.clordid
            _clear_pending(order)
        elif event is _EV_CANCELED and report.clordid == order.pending_clordid:
            order.clordid = report.clordid
            _clear_pending(order)
        elif event is _EV_RESTATED and report.order_qty is not None:
            order.qty = report.order_qty
        if report.venue_order_id and report.venue_order_id != "NONE":
            order.venue_order_id = report.venue_order_id

        new_status = _resolve(target, order, report.cum_qty, report.leaves_qty)
        order.status = new_status
        order.exec_ids.add(report.exec_id)
        order.last_update_ns = report.recv_ns
        cause = f"{event._name_} {report.exec_id}"
        order.history.append(Transition(status, new_status, cause))

        # _name_, not .name: the property costs a Python call per use on the hot path.
        note = f"{status._name_}->{new_status._name_} {event._name_}"
        if fill is not None:
            note += f" {fill.qty}@{fill.price}" + (" busted" if fill.busted else "")
        overfill = report.cum_qty > order.qty
        if overfill:
            order.flags.overfilled = True
            note += f"; OVERFILL cum {report.cum_qty} > qty {order.qty}"
        mismatch = _cross_check(order, report, new_status)
        if mismatch:
            order.flags.fills_mismatch = True
            note += "; " + mismatch
        if event is _EV_ORDER_STATUS and report.ord_status is not new_status:
            note += f"; venue status {report.ord_status.name}"
        if report.poss_dup:
            note += "; PossDup, first seen"
        return Applied(order, status, new_status, event, fill, overfill=overfill, note=note)

    def apply_cancel_reject(self, rej: CancelRejected) -> Applied:
        """Apply an OrderCancelReject: the request is over and the order resumes.

        The order goes back to the status it would have had without the request (fills may
        have come meanwhile) or, if it finished meanwhile (a fill beat the cancel: "too late to
        cancel"), stays finished. pending_* are cleared either way.
        """
        order = self._find(rej.venue, rej.clordid, rej.orig_clordid)
        if order is None:
            note = f"no order with ClOrdID {rej.clordid} on {rej.venue}"
            return Applied(None, None, None, unknown=True, note=note)
        status = order.status
        event = _E.CANCEL_REJECTED
        if order.pending_clordid != rej.clordid:
            if rej.clordid in order.rejected_requests:
                return Applied(
                    order,
                    status,
                    status,
                    event,
                    duplicate=True,
                    note=f"duplicate cancel reject {rej.clordid}",
                )
            raise self._illegal(
                order, event, rej, f"no outstanding request with ClOrdID {rej.clordid}"
            )
        kind = (
            RequestKind.CANCEL
            if rej.response_to is CancelRejectResponseTo.CANCEL
            else RequestKind.REPLACE
        )
        if kind is not order.pending_kind:
            pending = order.pending_kind.name if order.pending_kind else "none"
            raise self._illegal(
                order, event, rej, f"rejects a {kind.name} but the request is a {pending}"
            )
        target = TRANSITIONS.get((status, event))
        if target is None:
            raise self._illegal(order, event, rej, "not in the transition table")
        new_status = _resolve(target, order, order.cum_qty, order.leaves_qty)
        _clear_pending(order)
        order.rejected_requests.add(rej.clordid)
        order.status = new_status
        order.last_update_ns = rej.recv_ns
        order.history.append(Transition(status, new_status, f"{event.name} {rej.clordid}"))
        why = " ".join(p for p in (rej.reason and f"reason {rej.reason}", rej.text) if p)
        note = f"{status.name}->{new_status.name} {kind.name} rejected" + (
            f": {why}" if why else ""
        )
        return Applied(order, status, new_status, event, note=note)

    # -- internals -------------------------------------------------------------------------

    def _find(self, venue: str, clordid: str, orig_clordid: str | None) -> Order | None:
        order = self._by_clordid.get(clordid)
        if order is None and orig_clordid is not None:
            order = self._by_clordid.get(orig_clordid)
        if order is None or order.venue != venue:
            return None  # another venue's ClOrdID is not ours to apply there
        return order

    def _check_fresh(self, clordid: str) -> None:
        if not clordid:
            raise ValueError("ClOrdID must not be empty")
        if clordid in self._by_clordid:
            raise ValueError(
                f"ClOrdID {clordid} is already used by order {self._by_clordid[clordid].key}"
            )

    def _request(
        self, order: Order, event: OrderEvent, kind: RequestKind, clordid: str, now_ns: int
    ) -> None:
        if self._orders.get(order.key) is not order:
            raise ValueError(f"order {order.key} is not in this registry")
        self._check_fresh(clordid)
        status = order.status
        target = TRANSITIONS.get((status, event))
        if target is None:
            raise self._illegal(order, event, None, "not in the transition table")
        if order.pending_kind is not None:
            why = f"{order.pending_kind.name} {order.pending_clordid} is still outstanding"
            raise self._illegal(order, event, None, why)
        new_status = _resolve(target, order, order.cum_qty, order.leaves_qty)
        order.pending_kind = kind
        order.pending_clordid = clordid
        order.status = new_status
        order.last_update_ns = now_ns
        order.clordids.append(clordid)
        order.history.append(Transition(status, new_status, f"{event.name} {clordid}"))
        self._by_clordid[clordid] = order

    @staticmethod
    def _illegal(
        order: Order,
        event: OrderEvent,
        report: ExecutionReceived | CancelRejected | None,
        reason: str,
    ) -> IllegalTransition:
        """Record the refused attempt on the order and build the exception to raise."""
        ident = (
            report.exec_id
            if isinstance(report, ExecutionReceived)
            else report.clordid
            if report is not None
            else "local"
        )
        order.flags.illegal_transitions += 1
        order.history.append(
            Transition(order.status, None, f"{event.name} {ident}: {reason}", legal=False)
        )
        return IllegalTransition(order.key, order.status, event, report, reason)


def _resolve(target: Next, order: Order, cum: int, leaves: int) -> OrdStatus:
    if isinstance(target, OrdStatus):
        return target
    if target is _RESUME and not order.acked:
        return _ST_PENDING_NEW
    return _by_qty(cum, leaves)


def _request_problem(order: Order, event: OrderEvent, report: ExecutionReceived) -> str | None:
    """Why a venue's answer to a request cannot be applied, if it cannot.

    The table says which status may follow which; this is the one precondition it cannot
    express: an acknowledgement of a cancel or replace needs that request outstanding, and a
    Replaced must carry the replacement's ClOrdID (from Filled, C.1.c, the status alone does
    not show that a replace is outstanding).
    """
    needed = _ANSWERS.get(event)
    if needed is None:
        return None
    if order.pending_kind is not needed:
        return f"no {needed.name} request is outstanding"
    if event is _EV_REPLACED and report.clordid != order.pending_clordid:
        return f"Replaced under {report.clordid}, but the request is {order.pending_clordid}"
    return None


def _live_fill_index(order: Order, exec_id: str | None) -> int:
    if exec_id is None:
        return -1
    fills = order.fills
    for i in range(len(fills) - 1, -1, -1):
        if fills[i].exec_id == exec_id:
            return i if fills[i].busted_by is None else -1
    return -1


def _clear_pending(order: Order) -> None:
    order.pending_clordid = None
    order.pending_kind = None
    order.pending_qty = None
    order.pending_price = None


def _cross_check(order: Order, report: ExecutionReceived, status: OrdStatus) -> str:
    """The venue's CumQty / LeavesQty / AvgPx against the OMS's own fills; "" if they agree."""
    problems: list[str] = []
    if report.cum_qty != order.fill_qty:
        problems.append(f"venue cum {report.cum_qty} != fills {order.fill_qty}")
    elif order.fill_qty:
        vwap = order.fill_notional / order.fill_qty
        if abs(vwap - report.avg_px) > AVG_PX_TOLERANCE:
            problems.append(f"venue avg_px {report.avg_px} != fills {vwap:.8f}")
    if status._value_ not in _CLOSED_CODES and status is not _ST_PENDING_NEW:
        expected = max(order.qty - order.fill_qty, 0)
        if report.leaves_qty != expected:
            problems.append(f"venue leaves {report.leaves_qty} != qty - fills {expected}")
    return "; ".join(problems)
