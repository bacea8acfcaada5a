"""What the venue's FIX callbacks hand to the venue thread: plain values, nothing of quickfix.

Callbacks run on quickfix's thread and only decode; the venue thread owns the matching
engine and is the only one that acts on these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from oms.enums import OrderType, Side, TimeInForce

if TYPE_CHECKING:
    from sessions.simulator.venue import Venue


@dataclass(frozen=True, slots=True)
class NewOrder:
    session: str
    clordid: str
    symbol: str
    side: Side
    qty: int
    ord_type: OrderType
    price: Decimal | None
    tif: TimeInForce
    account: str | None
    recv_ns: int


@dataclass(frozen=True, slots=True)
class CancelOrder:
    session: str
    clordid: str
    orig_clordid: str
    order_id: str | None
    symbol: str
    side: Side
    recv_ns: int


@dataclass(frozen=True, slots=True)
class ReplaceOrder:
    session: str
    clordid: str
    orig_clordid: str
    order_id: str | None
    symbol: str
    side: Side
    qty: int
    price: Decimal | None
    recv_ns: int


@dataclass(frozen=True, slots=True)
class StatusRequest:
    session: str
    clordid: str
    order_id: str | None
    status_req_id: str | None
    symbol: str
    side: Side


@dataclass(frozen=True, slots=True)
class UnsupportedOrder:
    """An order the venue will not take, decoded far enough to reject it properly."""

    session: str
    clordid: str
    symbol: str
    side: Side
    qty: str
    text: str


@dataclass(frozen=True, slots=True)
class MarketDataRequest:
    session: str
    md_req_id: str
    subscription: str  # 263: 0 snapshot, 1 snapshot + updates, 2 unsubscribe
    depth: int
    update_type: str | None  # 265: 0 full refresh, 1 incremental
    entry_types: tuple[str, ...]
    symbols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SessionUp:
    session: str


@dataclass(frozen=True, slots=True)
class SessionDown:
    session: str


@dataclass(frozen=True, slots=True)
class Control:
    """An operator's or a test's action, run on the venue thread like everything else."""

    action: Callable[[Venue], object]
    done: Callable[[object], None] | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    pass


Command = (
    NewOrder
    | CancelOrder
    | ReplaceOrder
    | StatusRequest
    | UnsupportedOrder
    | MarketDataRequest
    | SessionUp
    | SessionDown
    | Control
    | Stop
)
