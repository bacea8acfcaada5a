"""What is asked: the commands the OMS hands to the sessions to send.

``cause_ns`` is the ``recv_ns`` of the event that led to the command, so that every hop's
latency can be measured from the same clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from oms.enums import OrderType, Side, TimeInForce
from oms.events import LineRole


@dataclass(frozen=True, slots=True)
class SendOrder:
    venue: str
    clordid: str
    symbol: str
    side: Side
    qty: int
    ord_type: OrderType
    price: Decimal | None
    tif: TimeInForce
    account: str | None
    created_ns: int
    cause_ns: int | None = None
    pair_id: str | None = None


@dataclass(frozen=True, slots=True)
class CancelOrder:
    venue: str
    clordid: str
    orig_clordid: str
    venue_order_id: str | None
    symbol: str
    side: Side
    created_ns: int
    cause_ns: int | None = None


@dataclass(frozen=True, slots=True)
class ReplaceOrder:
    venue: str
    clordid: str
    orig_clordid: str
    venue_order_id: str | None
    symbol: str
    side: Side
    qty: int
    price: Decimal
    tif: TimeInForce
    created_ns: int
    cause_ns: int | None = None


@dataclass(frozen=True, slots=True)
class StatusRequest:
    """Ask the venue where an order stands (OrderStatusRequest): after a line switch, each
    working order is checked on the new line before its pairs trade again; an order the new
    line cannot tell of is asked after on its own line (``line``) when that one is up."""

    venue: str
    clordid: str
    venue_order_id: str | None
    symbol: str
    side: Side
    status_req_id: str
    created_ns: int
    cause_ns: int | None = None
    line: LineRole | None = None  # this line, logged on, rather than the venue's active one


@dataclass(frozen=True, slots=True)
class SwitchLine:
    """Ask the sessions to move the venue's orders off ``away_from`` to its other line, when
    the OMS finds that line unhealthy (slow acknowledgements, too many rejects). Nothing is
    sent to the venue: the sessions switch on their line-control thread, and the OMS learns
    of the switch as a ``LineStateChanged`` like any other."""

    venue: str
    away_from: LineRole
    reason: str
    created_ns: int
    cause_ns: int | None = None


Command = SendOrder | CancelOrder | ReplaceOrder | StatusRequest | SwitchLine
