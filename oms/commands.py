"""What is asked: the commands the OMS hands to the sessions to send.

``cause_ns`` is the ``recv_ns`` of the event that led to the command, so that every hop's
latency can be measured from the same clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from oms.enums import OrderType, Side, TimeInForce


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


Command = SendOrder | CancelOrder | ReplaceOrder
