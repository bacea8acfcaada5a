"""Execution reports (35=8) and order cancel rejects (35=9) as the venue sends them.

ExecType and OrdStatus follow FIX 4.4's order state rules: ExecType says what just happened
(New, Trade, Canceled, Replaced, Rejected, Expired, Order Status, the pending states);
OrdStatus says where the order now stands, computed from its quantities.
"""

from __future__ import annotations

from decimal import Decimal

from oms.enums import OrderType, Side
from oms.instruments import Instrument
from sessions.fixwire import Field, decimal_text, encode, utc_timestamp
from sessions.simulator.matching import Order, OrderState, Reason, Report, ReportKind

EXEC_TYPE = {
    ReportKind.NEW: "0",
    ReportKind.TRADE: "F",
    ReportKind.CANCELED: "4",
    ReportKind.REPLACED: "5",
    ReportKind.REJECTED: "8",
    ReportKind.EXPIRED: "C",
}
EXEC_TYPE_PENDING_CANCEL = "6"
EXEC_TYPE_PENDING_REPLACE = "E"
EXEC_TYPE_ORDER_STATUS = "I"

# OrdRejReason(103): FIX 4.4 has no code for a bad tick or band, so those are 99 with Text.
ORD_REJ_REASON = {
    Reason.UNKNOWN_SYMBOL: "1",
    Reason.MARKET_CLOSED: "2",
    Reason.BAD_QUANTITY: "13",
    Reason.QUANTITY_TOO_LARGE: "13",
    Reason.NOT_DURING_AUCTION: "11",
}
ORD_REJ_DUPLICATE = "6"
ORD_REJ_UNSUPPORTED = "11"
ORD_REJ_OTHER = "99"

# CxlRejReason(102)
CXL_REJ_TOO_LATE = "0"
CXL_REJ_UNKNOWN_ORDER = "1"
CXL_REJ_DUPLICATE = "6"
CXL_REJ_OTHER = "99"
CXL_REJ_REASON = {Reason.UNKNOWN_ORDER: CXL_REJ_UNKNOWN_ORDER, Reason.ORDER_DONE: CXL_REJ_TOO_LATE}

AVG_PX_PLACES = Decimal("0.00000001")


class VenueOrder:
    """The venue's FIX-side record of one client order: who owns it and under which ClOrdID."""

    __slots__ = (
        "account",
        "amending",
        "clordid",
        "instrument",
        "ord_type",
        "order",
        "order_id",
        "pending",
        "session",
    )

    def __init__(
        self,
        order: Order,
        order_id: str,
        session: str,
        clordid: str,
        ord_type: OrderType,
        account: str | None,
        instrument: Instrument | None,
    ) -> None:
        self.order = order
        self.order_id = order_id
        self.session = session
        self.clordid = clordid
        self.ord_type = ord_type
        self.account = account
        self.instrument = instrument
        self.amending = False  # a cancel or replace is on its way to the book
        self.pending: str | None = None  # "6" / "E" once PendingCancel / PendingReplace was sent

    def status(self) -> str:
        """OrdStatus(39) as the order stands now, for status requests and cancel rejects."""
        order = self.order
        if order.state is OrderState.WORKING:
            if self.pending is not None:
                return self.pending
            return "1" if order.cum else "0"
        return {
            OrderState.FILLED: "2",
            OrderState.CANCELED: "4",
            OrderState.EXPIRED: "C",
            OrderState.REJECTED: "8",
        }[order.state]


def ord_status_after(report: Report) -> str:
    kind = report.kind
    if kind is ReportKind.TRADE:
        return "2" if report.leaves == 0 else "1"
    if kind is ReportKind.NEW or kind is ReportKind.REPLACED:
        return "1" if report.cum else "0"
    return {ReportKind.CANCELED: "4", ReportKind.EXPIRED: "C", ReportKind.REJECTED: "8"}[kind]


def _avg_px(instrument: Instrument | None, notional: int, cum: int) -> str:
    if not cum or instrument is None:
        return "0"
    avg = (instrument.tick * notional / cum).quantize(AVG_PX_PLACES)
    return decimal_text(avg)


def execution_report(
    rec: VenueOrder,
    *,
    exec_id: str,
    exec_type: str,
    ord_status: str,
    venue_id: str,
    ts_ns: int,
    cum: int,
    leaves: int,
    notional: int,
    last_px: int = 0,
    last_qty: int = 0,
    orig_clordid: str | None = None,
    rej_reason: str | None = None,
    text: str | None = None,
    status_req_id: str | None = None,
    clordid: str | None = None,
) -> str:
    """``clordid`` overrides the order's current ClOrdID (a pending report answers a request)."""
    order, inst = rec.order, rec.instrument
    price = decimal_text(inst.from_ticks(order.price)) if inst and order.price is not None else None
    fields: list[Field] = [
        (37, rec.order_id),
        (11, clordid or rec.clordid),
        (41, orig_clordid),
        (790, status_req_id),
        (17, exec_id),
        (150, exec_type),
        (39, ord_status),
        (103, rej_reason),
        (1, rec.account),
        (55, order.symbol),
        (54, order.side.value),
        (38, order.qty),
        (40, rec.ord_type.value),
        (44, price if rec.ord_type is OrderType.LIMIT else None),
        (59, order.tif.value),
    ]
    if last_qty and inst is not None:
        fields += [(32, last_qty), (31, decimal_text(inst.from_ticks(last_px)))]
    fields += [
        (151, leaves),
        (14, cum),
        (6, _avg_px(inst, notional, cum)),
        (60, utc_timestamp(ts_ns)),
        (30, venue_id),
        (58, text),
    ]
    return encode("8", fields)


def rejected_request_report(
    *,
    order_id: str,
    clordid: str,
    exec_id: str,
    symbol: str,
    side: Side,
    qty: str,
    venue_id: str,
    ts_ns: int,
    rej_reason: str,
    text: str,
) -> str:
    """An ExecutionReport rejecting an order that never became a venue order."""
    return encode(
        "8",
        [
            (37, order_id),
            (11, clordid),
            (17, exec_id),
            (150, "8"),
            (39, "8"),
            (103, rej_reason),
            (55, symbol),
            (54, side.value),
            (38, qty),
            (151, 0),
            (14, 0),
            (6, 0),
            (60, utc_timestamp(ts_ns)),
            (30, venue_id),
            (58, text),
        ],
    )


def cancel_reject(
    *,
    order_id: str,
    clordid: str,
    orig_clordid: str,
    ord_status: str,
    response_to: str,
    reason: str,
    text: str,
    ts_ns: int,
) -> str:
    """OrderCancelReject (35=9); ``response_to`` is CxlRejResponseTo(434): 1 cancel, 2 replace."""
    return encode(
        "9",
        [
            (37, order_id),
            (11, clordid),
            (41, orig_clordid),
            (39, ord_status),
            (60, utc_timestamp(ts_ns)),
            (434, response_to),
            (102, reason),
            (58, text),
        ],
    )
