"""What happened: the typed events that reach the OMS thread.

Sessions decode FIX into these and enqueue them; nothing here knows a tag number. Every
event carries ``recv_ns``, when the gateway received it (UTC nanoseconds), which is where
the latency of everything it causes is measured from.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from oms.enums import Side


class ExecType(str, Enum):
    """What an execution report says just happened (FIX 4.4 ExecType values)."""

    NEW = "0"
    DONE_FOR_DAY = "3"
    CANCELED = "4"
    REPLACED = "5"
    PENDING_CANCEL = "6"
    REJECTED = "8"
    PENDING_NEW = "A"
    EXPIRED = "C"
    RESTATED = "D"
    PENDING_REPLACE = "E"
    TRADE = "F"
    TRADE_CORRECT = "G"
    TRADE_CANCEL = "H"
    ORDER_STATUS = "I"


class OrdStatus(str, Enum):
    """Where an order stands (FIX 4.4 OrdStatus values)."""

    NEW = "0"
    PARTIALLY_FILLED = "1"
    FILLED = "2"
    DONE_FOR_DAY = "3"
    CANCELED = "4"
    REPLACED = "5"
    PENDING_CANCEL = "6"
    REJECTED = "8"
    PENDING_NEW = "A"
    EXPIRED = "C"
    PENDING_REPLACE = "E"


class LineRole(str, Enum):
    PRIMARY = "primary"
    BACKUP = "backup"


@dataclass(frozen=True, slots=True)
class ExecutionReceived:
    """An execution report from a venue, reduced to what the OMS needs."""

    venue: str
    line: LineRole
    clordid: str
    orig_clordid: str | None
    venue_order_id: str
    exec_id: str
    exec_type: ExecType
    ord_status: OrdStatus
    symbol: str
    side: Side
    order_qty: int | None
    last_qty: int
    last_px: Decimal | None
    cum_qty: int
    leaves_qty: int
    avg_px: Decimal
    transact_ns: int | None
    sending_ns: int | None
    recv_ns: int
    poss_dup: bool = False
    exec_ref_id: str | None = None
    text: str | None = None
    raw: str | None = None


class CancelRejectResponseTo(str, Enum):
    CANCEL = "1"
    REPLACE = "2"


@dataclass(frozen=True, slots=True)
class CancelRejected:
    """An OrderCancelReject (35=9): a cancel or replace the venue refused."""

    venue: str
    line: LineRole
    clordid: str
    orig_clordid: str
    venue_order_id: str | None
    ord_status: OrdStatus | None
    response_to: CancelRejectResponseTo
    reason: str | None
    text: str | None
    recv_ns: int
    poss_dup: bool = False
    raw: str | None = None


class MdAction(str, Enum):
    NEW = "0"
    CHANGE = "1"
    DELETE = "2"


class MdEntryType(str, Enum):
    BID = "0"
    OFFER = "1"
    TRADE = "2"


@dataclass(frozen=True, slots=True)
class MdEntry:
    action: MdAction
    entry_type: MdEntryType
    symbol: str
    price: Decimal
    size: int | None
    rpt_seq: int | None = None  # RptSeq(83): the instrument's update count, where sent


@dataclass(frozen=True, slots=True)
class MarketDataReceived:
    """A snapshot (W) or an incremental update (X), decoded but not yet applied.

    Applying it is state, so it happens on the OMS thread (``oms.market``), not in the
    quickfix callback that decoded it.
    """

    venue: str
    line: LineRole
    md_req_id: str | None
    snapshot: bool
    entries: tuple[MdEntry, ...]
    sending_ns: int | None
    recv_ns: int
    snapshot_symbol: str | None = None


@dataclass(frozen=True, slots=True)
class BookLevel:
    price: Decimal
    qty: int


@dataclass(frozen=True, slots=True)
class QuoteUpdated:
    """The top of one venue's book after a market-data message was applied."""

    venue: str
    symbol: str
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    sending_ns: int | None
    recv_ns: int


class LineState(str, Enum):
    CONNECTING = "connecting"
    LOGGED_ON = "logged_on"
    LOGGED_OUT = "logged_out"


@dataclass(frozen=True, slots=True)
class LineStateChanged:
    """One line of a venue logged on or off; ``active`` is the venue's active line after."""

    venue: str
    line: LineRole
    state: LineState
    active: LineRole | None
    recv_ns: int
    text: str | None = None


@dataclass(frozen=True, slots=True)
class SessionRejected:
    """A session-level (35=3) or business (35=j) reject of something we sent."""

    venue: str
    line: LineRole
    msg_type: str
    ref_seq_num: int | None
    ref_msg_type: str | None
    reason: str | None
    text: str | None
    recv_ns: int
    raw: str | None = None


@dataclass(frozen=True, slots=True)
class MarketDataGap:
    """Market data from a venue may have been lost: its books cannot be trusted.

    The sessions post this when they see a sequence gap the venue filled without the
    messages (venues do not replay market data), a jump in an instrument's RptSeq, or a
    change of the line the data comes on; they have already asked for a fresh snapshot.
    Until that snapshot arrives, the named books (every book of the venue when ``symbols``
    is empty) are stale and no trigger fires on them.
    """

    venue: str
    line: LineRole
    symbols: tuple[str, ...]
    reason: str
    recv_ns: int


@dataclass(frozen=True, slots=True)
class MarketDataIgnored:
    """A market-data message the sessions received and did not pass on, and why.

    Market data keeps streaming on a line that is no longer the venue's active one until
    the venue has its unsubscription; the books must not take it (they follow the active
    line), but the audit trail must: the OMS records one receipt for it and applies
    nothing. ``snapshot`` and ``sending_ns`` say which message it was (W or X, its
    SendingTime), for reconciling the receipts with the FIX log.
    """

    venue: str
    line: LineRole
    reason: str
    snapshot: bool
    sending_ns: int | None
    symbols: str
    entries: int
    recv_ns: int
