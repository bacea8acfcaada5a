"""What institutional clients ask of the gateway, and what the gateway tells them back.

The client acceptor decodes FIX into the requests below and posts them to the OMS thread;
the OMS answers with :class:`ClientReport` (an ExecutionReport, 35=8),
:class:`ClientCancelReject` (35=9) and :class:`DropCopy` (35=8 with CopyMsgIndicator 797=Y)
for the sessions to send. Nothing here knows a tag number beyond the enumerations FIX
itself names. Every request carries the client's CompID (``client``), which is the only
thing that says whose order it is: a client sees and touches only its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from oms.enums import OrderType, Side, TimeInForce
from oms.events import ExecType, OrdStatus

# -- requests, client -> gateway ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientNewOrder:
    """A NewOrderSingle (35=D) routed by ExDestination(100) to one venue."""

    client: str
    clordid: str
    venue: str
    symbol: str
    side: Side
    qty: int
    ord_type: OrderType
    price: Decimal | None
    tif: TimeInForce
    account: str | None
    poss_resend: bool
    recv_ns: int


@dataclass(frozen=True, slots=True)
class ClientCancel:
    """An OrderCancelRequest (35=F)."""

    client: str
    clordid: str
    orig_clordid: str
    symbol: str
    side: Side
    recv_ns: int


@dataclass(frozen=True, slots=True)
class ClientReplace:
    """An OrderCancelReplaceRequest (35=G): ``qty`` is the new total, filled part included."""

    client: str
    clordid: str
    orig_clordid: str
    symbol: str
    side: Side
    qty: int
    price: Decimal
    recv_ns: int


@dataclass(frozen=True, slots=True)
class ClientStatus:
    """An OrderStatusRequest (35=H)."""

    client: str
    clordid: str
    symbol: str
    side: Side
    req_id: str | None
    recv_ns: int


@dataclass(frozen=True, slots=True)
class SpreadLeg:
    """One leg of a NewOrderMultileg: where and which way (LegSecurityExchange, LegSymbol,
    LegSide)."""

    venue: str
    symbol: str
    side: Side


@dataclass(frozen=True, slots=True)
class ClientSpread:
    """A NewOrderMultileg (35=AB) for ``units`` of a configured pair, both legs at once.

    A market spread order trades now at what the books give; a limit one only if the spread
    it would capture (in the pair's outer price units) is at least ``price``. Either way it
    is immediate: what cannot trade now is not left resting.
    """

    client: str
    clordid: str
    legs: tuple[SpreadLeg, ...]
    units: int
    ord_type: OrderType
    price: Decimal | None
    account: str | None
    poss_resend: bool
    recv_ns: int


ClientRequest = ClientNewOrder | ClientCancel | ClientReplace | ClientStatus | ClientSpread

# -- answers, gateway -> client ----------------------------------------------------------------


class Reporting(str, Enum):
    """MultilegReportingType (442): which kind of report a spread order's client gets."""

    SINGLE = "1"
    LEG = "2"
    SPREAD = "3"


class RejectReason(str, Enum):
    """OrdRejReason (103) values the gateway uses."""

    BROKER_OPTION = "0"
    UNKNOWN_SYMBOL = "1"
    EXCHANGE_CLOSED = "2"
    ORDER_EXCEEDS_LIMIT = "3"
    UNKNOWN_ORDER = "5"
    DUPLICATE_ORDER = "6"
    OTHER = "99"


@dataclass(frozen=True, slots=True)
class ClientReport:
    """An ExecutionReport for one client, in the client's own ClOrdIDs.

    ``order_id`` is the gateway's id for the order (stable for its life); ``exec_id`` is
    unique across every report the gateway sends.
    """

    client: str
    clordid: str
    orig_clordid: str | None
    order_id: str
    exec_id: str
    exec_type: ExecType
    ord_status: OrdStatus
    venue: str
    symbol: str
    side: Side
    qty: int
    price: Decimal | None
    last_qty: int
    last_px: Decimal | None
    cum_qty: int
    leaves_qty: int
    avg_px: Decimal
    account: str | None
    transact_ns: int
    text: str | None = None
    reject_reason: RejectReason | None = None
    reporting: Reporting | None = None
    status_req_id: str | None = None


@dataclass(frozen=True, slots=True)
class ClientCancelReject:
    """An OrderCancelReject (35=9): the cancel or replace named cannot be done."""

    client: str
    clordid: str
    orig_clordid: str
    order_id: str
    ord_status: OrdStatus
    replace: bool  # CxlRejResponseTo: 2 for a replace, 1 for a cancel
    unknown: bool  # CxlRejReason: 1 (unknown order) or 0 (too late / other)
    text: str
    transact_ns: int


@dataclass(frozen=True, slots=True)
class DropCopy:
    """A copy of one execution the gateway received from a venue, for drop-copy consumers
    (whose filters by account and venue the sessions apply)."""

    report: ClientReport


ClientMessage = ClientReport | ClientCancelReject | DropCopy
