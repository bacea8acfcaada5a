"""The order state machine against the FIX 4.4 order state change matrices (Vol. 4, App. D).

One named test per matrix scenario that applies to an order the gateway sends to a venue
(the docstring names the matrix, e.g. B.1.c), then the OMS's own guarantees (duplicates,
overfills, cross-checks, unknown orders) and the illegal transitions, each of which must be
raised, recorded on the order, and leave the order exactly as it was.

Reports are built by ``er`` / ``trade`` below as the venue would send them: ClOrdID and
OrigClOrdID as in the matrices' "(ClOrdID, OrigClOrdID)" column, the venue's OrdStatus,
CumQty, LeavesQty and AvgPx. Quantities are small (contracts) except where a matrix's own
numbers make the arithmetic worth checking (J.1.a).
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import fields
from decimal import Decimal
from typing import Any

import pytest

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
from oms.orders import (
    CLOSED,
    TRANSITIONS,
    Applied,
    IllegalTransition,
    Order,
    OrderEvent,
    Orders,
    RequestKind,
    Transition,
)

D = Decimal
VENUE = "SHFE"
SYMBOL = "AU"
T0 = 1_700_000_000_000_000_000

PN = OrdStatus.PENDING_NEW
NEW = OrdStatus.NEW
PF = OrdStatus.PARTIALLY_FILLED
FILLED = OrdStatus.FILLED
DFD = OrdStatus.DONE_FOR_DAY
PC = OrdStatus.PENDING_CANCEL
PR = OrdStatus.PENDING_REPLACE
CANCELED = OrdStatus.CANCELED
REJECTED = OrdStatus.REJECTED
EXPIRED = OrdStatus.EXPIRED

_exec_ids = itertools.count(1)
_clock = itertools.count(T0, 1_000)


def er(
    clordid: str,
    exec_type: ExecType,
    ord_status: OrdStatus,
    *,
    cum: int = 0,
    leaves: int = 0,
    qty: int | None = 10,
    last_qty: int = 0,
    last_px: str | None = None,
    avg_px: str = "0",
    orig: str | None = None,
    exec_id: str | None = None,
    exec_ref_id: str | None = None,
    poss_dup: bool = False,
    venue: str = VENUE,
    order_id: str = "V-1",
) -> ExecutionReceived:
    """An ExecutionReport (35=8) as the session layer would hand it to the OMS."""
    now = next(_clock)
    return ExecutionReceived(
        venue=venue,
        line=LineRole.PRIMARY,
        clordid=clordid,
        orig_clordid=orig,
        venue_order_id=order_id,
        exec_id=exec_id or f"E{next(_exec_ids)}",
        exec_type=exec_type,
        ord_status=ord_status,
        symbol=SYMBOL,
        side=Side.BUY,
        order_qty=qty,
        last_qty=last_qty,
        last_px=D(last_px) if last_px is not None else None,
        cum_qty=cum,
        leaves_qty=leaves,
        avg_px=D(avg_px),
        transact_ns=now - 500,
        sending_ns=now - 200,
        recv_ns=now,
        poss_dup=poss_dup,
        exec_ref_id=exec_ref_id,
    )


def trade(
    clordid: str,
    last_qty: int,
    last_px: str,
    *,
    cum: int,
    leaves: int,
    avg_px: str,
    status: OrdStatus | None = None,
    **kw: Any,
) -> ExecutionReceived:
    """A Trade (150=F); OrdStatus defaults to what the quantities say."""
    if status is None:
        status = FILLED if leaves == 0 else PF
    return er(
        clordid,
        ExecType.TRADE,
        status,
        cum=cum,
        leaves=leaves,
        last_qty=last_qty,
        last_px=last_px,
        avg_px=avg_px,
        **kw,
    )


def bust(clordid: str, ref: str, status: OrdStatus, **kw: Any) -> ExecutionReceived:
    """A Trade Cancel (150=H) of the execution ``ref`` (ExecRefID)."""
    return er(clordid, ExecType.TRADE_CANCEL, status, exec_ref_id=ref, **kw)


def correct(
    clordid: str, ref: str, last_qty: int, last_px: str, status: OrdStatus, **kw: Any
) -> ExecutionReceived:
    """A Trade Correct (150=G): execution ``ref`` is now ``last_qty`` @ ``last_px``."""
    return er(
        clordid,
        ExecType.TRADE_CORRECT,
        status,
        exec_ref_id=ref,
        last_qty=last_qty,
        last_px=last_px,
        **kw,
    )


def cxl_rej(
    clordid: str,
    orig: str,
    to: CancelRejectResponseTo,
    ord_status: OrdStatus | None,
    *,
    reason: str | None = "0",
    text: str | None = None,
    poss_dup: bool = False,
    venue: str = VENUE,
) -> CancelRejected:
    """An OrderCancelReject (35=9): ClOrdID of the request, OrigClOrdID of the order."""
    return CancelRejected(
        venue=venue,
        line=LineRole.PRIMARY,
        clordid=clordid,
        orig_clordid=orig,
        venue_order_id="V-1",
        ord_status=ord_status,
        response_to=to,
        reason=reason,
        text=text,
        recv_ns=next(_clock),
        poss_dup=poss_dup,
    )


CANCEL = CancelRejectResponseTo.CANCEL
REPLACE = CancelRejectResponseTo.REPLACE


@pytest.fixture
def book() -> Orders:
    return Orders()


def send(
    book: Orders,
    clordid: str = "X",
    qty: int = 10,
    price: str = "560.00",
    tif: TimeInForce = TimeInForce.DAY,
) -> Order:
    order, _ = book.submit(
        VENUE,
        SYMBOL,
        Side.BUY,
        qty,
        OrderType.LIMIT,
        D(price),
        tif,
        clordid=clordid,
        now_ns=next(_clock),
    )
    return order


def working_order(book: Orders, clordid: str = "X", qty: int = 10, **kw: Any) -> Order:
    """Sent and acknowledged: New."""
    order = send(book, clordid, qty, **kw)
    book.apply(er(clordid, ExecType.NEW, NEW, leaves=qty, qty=qty))
    assert order.status is NEW
    return order


def cancel(book: Orders, order: Order, clordid: str) -> CancelOrder:
    return book.request_cancel(order, clordid=clordid, now_ns=next(_clock))


def amend(
    book: Orders, order: Order, clordid: str, qty: int, price: str = "560.00"
) -> ReplaceOrder:
    return book.request_replace(order, qty, D(price), clordid=clordid, now_ns=next(_clock))


def statuses(order: Order) -> list[OrdStatus | None]:
    return [t.to_status for t in order.history]


def assert_fills_agree(applied: Applied) -> None:
    """The venue's CumQty/LeavesQty/AvgPx agreed with the OMS's own fills on this report."""
    assert "!=" not in applied.note, applied.note


# =============================================================================================
# A Vanilla
# =============================================================================================


def test_submit_creates_pending_new_order_and_its_new_order_single(book: Orders) -> None:
    """The gateway owns the order: it is PendingNew locally the moment it is sent."""
    order, command = book.submit(
        VENUE,
        SYMBOL,
        Side.SELL,
        5,
        OrderType.LIMIT,
        D("560.02"),
        TimeInForce.GTC,
        clordid="X",
        account="ACC1",
        pair_id="P1",
        leg="near",
        now_ns=T0,
        cause_ns=T0 - 10,
    )
    assert command == SendOrder(
        venue=VENUE,
        clordid="X",
        symbol=SYMBOL,
        side=Side.SELL,
        qty=5,
        ord_type=OrderType.LIMIT,
        price=D("560.02"),
        tif=TimeInForce.GTC,
        account="ACC1",
        created_ns=T0,
        cause_ns=T0 - 10,
        pair_id="P1",
    )
    assert order.key == order.clordid == "X"
    assert order.status is PN and order.working
    assert (order.qty, order.cum_qty, order.leaves_qty) == (5, 0, 5)
    assert (order.pair_id, order.leg, order.account) == ("P1", "near", "ACC1")
    assert order.history == [Transition(None, PN, "SUBMIT X")]
    assert book.by_clordid("X") is order and book.by_key("X") is order


def test_pending_new_then_new(book: Orders) -> None:
    """The venue's optional PendingNew (150=A) keeps the order PendingNew; New makes it New."""
    order = send(book)
    a = book.apply(er("X", ExecType.PENDING_NEW, PN, leaves=10))
    assert (a.previous, a.status, a.event) == (PN, PN, OrderEvent.PENDING_NEW)
    assert not order.acked
    a = book.apply(er("X", ExecType.NEW, NEW, leaves=10, order_id="V-77"))
    assert (a.previous, a.status) == (PN, NEW)
    assert order.acked and order.venue_order_id == "V-77"
    assert statuses(order) == [PN, PN, NEW]
    assert_fills_agree(a)


def test_a1a_filled_order(book: Orders) -> None:
    """A.1.a Filled order: New, two partial fills, a completing fill; AvgPx cross-checked."""
    order = working_order(book)
    a1 = book.apply(trade("X", 4, "560.00", cum=4, leaves=6, avg_px="560.00"))
    a2 = book.apply(trade("X", 3, "560.02", cum=7, leaves=3, avg_px="560.00857143"))
    a3 = book.apply(trade("X", 3, "560.04", cum=10, leaves=0, avg_px="560.018"))
    assert [a.status for a in (a1, a2, a3)] == [PF, PF, FILLED]
    assert a3.event is OrderEvent.FULL_FILL and a1.event is OrderEvent.PARTIAL_FILL
    assert (order.cum_qty, order.leaves_qty, order.avg_px) == (10, 0, D("560.018"))
    assert [(f.qty, f.price) for f in order.fills] == [
        (4, D("560.00")),
        (3, D("560.02")),
        (3, D("560.04")),
    ]
    assert a3.fill is order.fills[-1] and a3.fill.exec_id in order.exec_ids
    assert order.vwap == D("560.018")
    for a in (a1, a2, a3):
        assert_fills_agree(a)
        assert not a.overfill
    assert not order.working and book.working() == []


def test_a1b_part_filled_day_order_done_for_day(book: Orders) -> None:
    """A.1.b Part-filled day order, done for day: DFD closes it with the part fill kept."""
    order = working_order(book)
    book.apply(trade("X", 2, "560.00", cum=2, leaves=8, avg_px="560.00"))
    a = book.apply(er("X", ExecType.DONE_FOR_DAY, DFD, cum=2, leaves=0, avg_px="560.00"))
    assert (a.previous, a.status) == (PF, DFD)
    assert (order.cum_qty, order.leaves_qty, order.avg_px) == (2, 0, D("560.00"))
    assert not order.working
    assert_fills_agree(a)


# =============================================================================================
# B Cancel
# =============================================================================================


def test_b1a_cancel_request_for_zero_filled_order(book: Orders) -> None:
    """B.1.a: PendingCancel (Y,X), then Canceled (Y,X); the order now answers to Y."""
    order = working_order(book)
    command = cancel(book, order, "Y")
    assert command.clordid == "Y" and command.orig_clordid == "X"
    assert command.venue_order_id == "V-1" and command.side is Side.BUY
    assert order.status is PC and order.pending_clordid == "Y"
    assert order.pending_kind is RequestKind.CANCEL
    a = book.apply(er("Y", ExecType.PENDING_CANCEL, PC, leaves=10, orig="X"))
    assert (a.previous, a.status) == (PC, PC)
    a = book.apply(er("Y", ExecType.CANCELED, CANCELED, orig="X"))
    assert (a.previous, a.status) == (PC, CANCELED)
    assert order.clordid == "Y" and order.pending_clordid is None and order.pending_kind is None
    assert (order.cum_qty, order.leaves_qty) == (0, 0)
    assert statuses(order) == [PN, NEW, PC, PC, CANCELED]
    assert book.by_clordid("Y") is order and book.by_clordid("X") is order


def test_b1b_cancel_part_filled_order_executions_while_cancel_pending(book: Orders) -> None:
    """B.1.b: fills during PendingCancel land on the original order and keep it pending."""
    order = working_order(book)
    book.apply(trade("X", 2, "560.00", cum=2, leaves=8, avg_px="560.00"))
    cancel(book, order, "Y")
    book.apply(er("Y", ExecType.PENDING_CANCEL, PC, cum=2, leaves=8, avg_px="560.00", orig="X"))
    a = book.apply(trade("X", 3, "560.10", cum=5, leaves=5, avg_px="560.06", status=PC))
    assert (a.previous, a.status, a.event) == (PC, PC, OrderEvent.PARTIAL_FILL)
    assert a.fill is not None and (a.fill.qty, a.fill.price) == (3, D("560.10"))
    assert (order.cum_qty, order.leaves_qty, order.avg_px) == (5, 5, D("560.06"))
    assert_fills_agree(a)
    a = book.apply(er("Y", ExecType.CANCELED, CANCELED, cum=5, avg_px="560.06", orig="X"))
    assert a.status is CANCELED
    assert (order.cum_qty, order.leaves_qty, order.avg_px) == (5, 0, D("560.06"))
    assert order.vwap == D("560.06")


def test_b1c_fill_beats_cancel_too_late_to_cancel(book: Orders) -> None:
    """B.1.c: the completing fill crosses the cancel: FILLED, and the 35=9 leaves it FILLED."""
    order = working_order(book)
    book.apply(trade("X", 2, "560.00", cum=2, leaves=8, avg_px="560.00"))
    cancel(book, order, "Y")
    a = book.apply(trade("X", 8, "560.00", cum=10, leaves=0, avg_px="560.00"))
    assert (a.previous, a.status) == (PC, FILLED)
    assert order.pending_clordid == "Y"  # the cancel is still unanswered
    a = book.apply_cancel_reject(cxl_rej("Y", "X", CANCEL, FILLED, text="too late to cancel"))
    assert (a.previous, a.status, a.event) == (FILLED, FILLED, OrderEvent.CANCEL_REJECTED)
    assert "too late to cancel" in a.note
    assert order.pending_clordid is None and order.pending_kind is None
    assert order.clordid == "X" and order.cum_qty == 10 and not order.working


def test_b1d_cancel_request_for_order_not_yet_acknowledged(book: Orders) -> None:
    """B.1.d: cancel while PendingNew; the venue acknowledges the cancel and cancels."""
    order = send(book)
    cancel(book, order, "Y")
    assert order.status is PC
    book.apply(er("Y", ExecType.PENDING_CANCEL, PC, leaves=10, orig="X"))
    a = book.apply(er("Y", ExecType.CANCELED, CANCELED, orig="X"))
    assert (a.previous, a.status) == (PC, CANCELED) and order.clordid == "Y"


def test_b1d_cancel_of_unacknowledged_order_rejected_resumes_pending_new(book: Orders) -> None:
    """B.1.d alt path: the cancel is refused before any ack: back to PendingNew, then New."""
    order = send(book)
    cancel(book, order, "Y")
    a = book.apply_cancel_reject(cxl_rej("Y", "X", CANCEL, PN, reason="99"))
    assert (a.previous, a.status) == (PC, PN)
    book.apply(er("X", ExecType.NEW, NEW, leaves=10))
    assert order.status is NEW


def test_b1e_acknowledgement_and_cancel_request_cross(book: Orders) -> None:
    """B.1.e: the New ack crosses the cancel request: the order stays PendingCancel."""
    order = send(book)
    cancel(book, order, "Y")
    a = book.apply(er("X", ExecType.NEW, NEW, leaves=10))
    assert (a.previous, a.status) == (PC, PC) and order.acked
    book.apply(er("Y", ExecType.PENDING_CANCEL, PC, leaves=10, orig="X"))
    a = book.apply(er("Y", ExecType.CANCELED, CANCELED, orig="X"))
    assert a.status is CANCELED


def test_b1f_cancel_reject_for_unknown_order_is_reported_unknown(book: Orders) -> None:
    """B.1.f: a 35=9 (Unknown order) for ClOrdIDs we never used: unknown, nothing raised."""
    working_order(book)
    a = book.apply_cancel_reject(cxl_rej("Q", "Z", CANCEL, REJECTED, reason="1"))
    assert a.unknown and a.order is None and a.status is None and "Q" in a.note


def test_cancel_request_rejected_returns_order_to_prior_status(book: Orders) -> None:
    """B.1.a alt path: a refused cancel of a zero-filled order puts it back to New."""
    order = working_order(book)
    cancel(book, order, "Y")
    a = book.apply_cancel_reject(cxl_rej("Y", "X", CANCEL, NEW, reason="2", text="broker"))
    assert (a.previous, a.status) == (PC, NEW)
    assert order.pending_clordid is None and order.clordid == "X" and order.working
    assert a.note.endswith("CANCEL rejected: reason 2 broker")


def test_cancel_rejected_after_fills_while_pending_resumes_part_filled(book: Orders) -> None:
    """B.1.b alt path / H.1.c: fills came during PendingCancel, so the order resumes as PF."""
    order = working_order(book)
    cancel(book, order, "Y")
    book.apply(trade("X", 3, "560.00", cum=3, leaves=7, avg_px="560.00", status=PC))
    assert order.status is PC
    a = book.apply_cancel_reject(cxl_rej("Y", "X", CANCEL, PF))
    assert (a.previous, a.status) == (PC, PF)
    assert (order.cum_qty, order.leaves_qty) == (3, 7)


# =============================================================================================
# C Cancel/Replace quantity changes
# =============================================================================================


def test_c1a_replace_to_increase_qty_of_zero_filled_order(book: Orders) -> None:
    """C.1.a: PendingReplace (Y,X), Replaced (Y,X): New with the new qty and price."""
    order = working_order(book)
    command = amend(book, order, "Y", 15, "560.10")
    assert (command.clordid, command.orig_clordid, command.qty, command.price) == (
        "Y",
        "X",
        15,
        D("560.10"),
    )
    assert command.tif is TimeInForce.DAY
    assert order.status is PR and (order.pending_qty, order.pending_price) == (15, D("560.10"))
    assert order.qty == 10 and order.price == D("560.00")  # nothing changes until Replaced
    book.apply(er("Y", ExecType.PENDING_REPLACE, PR, leaves=10, orig="X"))
    a = book.apply(er("Y", ExecType.REPLACED, NEW, leaves=15, qty=15, orig="X"))
    assert (a.previous, a.status, a.event) == (PR, NEW, OrderEvent.REPLACED)
    assert (order.qty, order.price, order.clordid) == (15, D("560.10"), "Y")
    assert (order.pending_clordid, order.pending_qty, order.pending_price) == (None, None, None)
    assert order.leaves_qty == 15
    assert_fills_agree(a)


def test_c1b_replace_increase_on_part_filled_order_fill_while_pending_replace(
    book: Orders,
) -> None:
    """C.1.b: a fill during PendingReplace lands on the original order (X, qty 10)."""
    order = working_order(book)
    book.apply(trade("X", 1, "560.00", cum=1, leaves=9, avg_px="560.00"))
    amend(book, order, "Y", 12)
    book.apply(er("Y", ExecType.PENDING_REPLACE, PR, cum=1, leaves=9, avg_px="560", orig="X"))
    a = book.apply(trade("X", 1, "560.00", cum=2, leaves=8, avg_px="560.00", status=PR))
    assert (a.previous, a.status) == (PR, PR)
    assert (order.qty, order.clordid, order.cum_qty) == (10, "X", 2)
    assert_fills_agree(a)
    a = book.apply(er("Y", ExecType.REPLACED, PF, cum=2, leaves=10, qty=12, avg_px="560", orig="X"))
    assert (a.previous, a.status) == (PR, PF)
    assert (order.qty, order.clordid, order.leaves_qty) == (12, "Y", 10)
    assert_fills_agree(a)
    a = book.apply(trade("Y", 10, "560.00", cum=12, leaves=0, avg_px="560.00", qty=12))
    assert a.status is FILLED and order.cum_qty == 12 and not a.overfill


def test_c1c_replace_to_increase_qty_of_filled_order(book: Orders) -> None:
    """C.1.c: a Filled order may be replaced up: PendingReplace, then Replaced -> PF."""
    order = working_order(book)
    book.apply(trade("X", 10, "560.00", cum=10, leaves=0, avg_px="560.00"))
    amend(book, order, "Y", 12)
    assert order.status is PR and order.working
    book.apply(er("Y", ExecType.PENDING_REPLACE, PR, cum=10, avg_px="560", orig="X"))
    a = book.apply(er("Y", ExecType.REPLACED, PF, cum=10, leaves=2, qty=12, avg_px="560", orig="X"))
    assert (a.previous, a.status) == (PR, PF)
    assert (order.qty, order.cum_qty, order.leaves_qty) == (12, 10, 2)


def test_c1c_fill_crosses_increase_and_venue_still_accepts_it(book: Orders) -> None:
    """C.1.c after a crossing fill: Filled, then the venue accepts the increase -> PF."""
    order = working_order(book)
    book.apply(trade("X", 4, "560.00", cum=4, leaves=6, avg_px="560.00"))
    amend(book, order, "Y", 12)
    book.apply(trade("X", 6, "560.00", cum=10, leaves=0, avg_px="560.00"))
    assert order.status is FILLED and order.pending_clordid == "Y"
    a = book.apply(er("Y", ExecType.REPLACED, PF, cum=10, leaves=2, qty=12, avg_px="560", orig="X"))
    assert (a.previous, a.status) == (FILLED, PF) and order.qty == 12


def test_c2a_replace_not_for_qty_rejected_as_fill_occurred(book: Orders) -> None:
    """C.2.a: a price amend crosses the completing fill; the 35=9 leaves the order FILLED."""
    order = working_order(book)
    book.apply(trade("X", 1, "560.00", cum=1, leaves=9, avg_px="560.00"))
    amend(book, order, "Y", 10, "560.20")
    a = book.apply(trade("X", 9, "560.00", cum=10, leaves=0, avg_px="560.00"))
    assert (a.previous, a.status) == (PR, FILLED)
    a = book.apply_cancel_reject(cxl_rej("Y", "X", REPLACE, FILLED, text="too late"))
    assert (a.previous, a.status) == (FILLED, FILLED)
    assert order.price == D("560.00") and order.pending_price is None
    assert order.clordid == "X" and order.pending_clordid is None


def test_c3a_replace_to_decrease_qty_above_cum_replaced_then_filled(book: Orders) -> None:
    """C.3.a: requested qty (8) still exceeds cum (1): Replaced -> PF, then filled."""
    order = working_order(book)
    amend(book, order, "Y", 8)
    a = book.apply(trade("X", 1, "560.00", cum=1, leaves=9, avg_px="560.00"))
    assert (a.previous, a.status) == (PR, PR)
    a = book.apply(er("Y", ExecType.REPLACED, PF, cum=1, leaves=7, qty=8, avg_px="560", orig="X"))
    assert (a.previous, a.status) == (PR, PF) and order.qty == 8
    assert_fills_agree(a)
    a = book.apply(trade("Y", 7, "560.02", cum=8, leaves=0, avg_px="560.0175", qty=8))
    assert a.status is FILLED and order.avg_px == D("560.0175") and not a.overfill
    assert_fills_agree(a)


def test_c3b_replace_to_decrease_qty_equal_to_cum_lands_filled(book: Orders) -> None:
    """C.3.b: requested qty (7) equals cum after a crossing fill: Replaced lands FILLED."""
    order = working_order(book)
    amend(book, order, "Y", 7)
    book.apply(trade("X", 7, "560.00", cum=7, leaves=3, avg_px="560.00"))
    a = book.apply(
        er("Y", ExecType.REPLACED, FILLED, cum=7, leaves=0, qty=7, avg_px="560", orig="X")
    )
    assert (a.previous, a.status) == (PR, FILLED)
    assert (order.qty, order.cum_qty, order.clordid) == (7, 7, "Y")
    assert not a.overfill and not order.flags.overfilled


def test_c3c_replace_below_cum_amends_qty_to_cum(book: Orders) -> None:
    """C.3.c: requested qty (7) is below cum (8): the venue amends qty to cum; FILLED."""
    order = working_order(book)
    amend(book, order, "Y", 7)
    book.apply(trade("X", 8, "560.00", cum=8, leaves=2, avg_px="560.00"))
    a = book.apply(
        er("Y", ExecType.REPLACED, FILLED, cum=8, leaves=0, qty=8, avg_px="560", orig="X")
    )
    assert (a.previous, a.status) == (PR, FILLED)
    assert order.qty == 8 and not a.overfill


def test_c3c_replace_below_cum_without_order_qty_uses_cum(book: Orders) -> None:
    """C.3.c when the venue leaves OrderQty out: the OMS takes max(requested, cum)."""
    order = working_order(book)
    amend(book, order, "Y", 7)
    book.apply(trade("X", 8, "560.00", cum=8, leaves=2, avg_px="560.00"))
    a = book.apply(
        er("Y", ExecType.REPLACED, FILLED, cum=8, leaves=0, qty=None, avg_px="560", orig="X")
    )
    assert a.status is FILLED and order.qty == 8 and not a.overfill


def test_replace_below_cum_rejected_by_venue_returns_to_part_filled(book: Orders) -> None:
    """C.3.c as the simulator plays it: a replace below cum is refused (35=9) -> PF."""
    order = working_order(book)
    book.apply(trade("X", 4, "560.00", cum=4, leaves=6, avg_px="560.00"))
    amend(book, order, "Y", 3)
    a = book.apply_cancel_reject(cxl_rej("Y", "X", REPLACE, PF, reason="99"))
    assert (a.previous, a.status) == (PR, PF)
    assert (order.qty, order.pending_qty, order.clordid) == (10, None, "X")


# =============================================================================================
# D Cancel/Replace sequencing and chaining
# =============================================================================================


def test_d1a_two_replaces_in_sequence_both_accepted(book: Orders) -> None:
    """D.1.a: X -> Y -> Z; each replace names the last accepted ClOrdID as OrigClOrdID."""
    order = working_order(book)
    book.apply(trade("X", 1, "560.00", cum=1, leaves=9, avg_px="560.00"))
    amend(book, order, "Y", 8)
    book.apply(er("Y", ExecType.PENDING_REPLACE, PR, cum=1, leaves=9, avg_px="560", orig="X"))
    book.apply(trade("X", 1, "560.00", cum=2, leaves=8, avg_px="560.00", status=PR))
    a = book.apply(er("Y", ExecType.REPLACED, PF, cum=2, leaves=6, qty=8, avg_px="560", orig="X"))
    assert a.status is PF and order.clordid == "Y"
    book.apply(trade("Y", 2, "560.00", cum=4, leaves=4, avg_px="560.00", qty=8))
    command = amend(book, order, "Z", 6)
    assert command.orig_clordid == "Y"
    book.apply(
        er("Z", ExecType.PENDING_REPLACE, PR, cum=4, leaves=4, qty=8, avg_px="560", orig="Y")
    )
    a = book.apply(er("Z", ExecType.REPLACED, PF, cum=4, leaves=2, qty=6, avg_px="560", orig="Y"))
    assert a.status is PF and (order.qty, order.clordid) == (6, "Z")
    a = book.apply(trade("Z", 2, "560.00", cum=6, leaves=0, avg_px="560.00", qty=6))
    assert a.status is FILLED
    assert order.clordids == ["X", "Y", "Z"]
    assert all(book.by_clordid(c) is order for c in "XYZ")


def test_d1b_replace_rejected_before_pending_then_another_accepted(book: Orders) -> None:
    """D.1.b: the first replace is refused at once (no PendingReplace); the next succeeds."""
    order = working_order(book)
    amend(book, order, "Y", 8)
    a = book.apply_cancel_reject(cxl_rej("Y", "X", REPLACE, NEW, reason="99"))
    assert (a.previous, a.status) == (PR, NEW)
    command = amend(book, order, "Z", 6)
    assert command.orig_clordid == "X"  # the last *accepted* ClOrdID
    a = book.apply(er("Z", ExecType.REPLACED, NEW, leaves=6, qty=6, orig="X"))
    assert a.status is NEW and (order.qty, order.clordid) == (6, "Z")


def test_d1c_replace_rejected_while_pending_then_another_accepted(book: Orders) -> None:
    """D.1.c: rejected after PendingReplace (a fill came meanwhile): back to PF, pending
    cleared, qty/price/ClOrdID untouched; the next replace still names X."""
    order = working_order(book)
    book.apply(trade("X", 1, "560.00", cum=1, leaves=9, avg_px="560.00"))
    amend(book, order, "Y", 8, "560.40")
    book.apply(er("Y", ExecType.PENDING_REPLACE, PR, cum=1, leaves=9, avg_px="560", orig="X"))
    book.apply(trade("X", 1, "560.00", cum=2, leaves=8, avg_px="560.00", status=PR))
    a = book.apply_cancel_reject(cxl_rej("Y", "X", REPLACE, PF, reason="99"))
    assert (a.previous, a.status) == (PR, PF)
    assert (order.pending_clordid, order.pending_kind) == (None, None)
    assert (order.pending_qty, order.pending_price) == (None, None)
    assert (order.qty, order.price, order.clordid) == (10, D("560.00"), "X")
    command = amend(book, order, "Z", 6)
    assert command.orig_clordid == "X"
    a = book.apply(er("Z", ExecType.REPLACED, PF, cum=2, leaves=4, qty=6, avg_px="560", orig="X"))
    assert a.status is PF and order.clordid == "Z"


def test_d2_second_replace_while_first_pending_is_refused(book: Orders) -> None:
    """D.2 chaining is not used: one outstanding cancel/replace per order, so a second
    request while PendingReplace is an illegal transition (recorded, raised, no change)."""
    order = working_order(book)
    amend(book, order, "Y", 8)
    before = snapshot(order)
    with pytest.raises(IllegalTransition) as err:
        amend(book, order, "Z", 6)
    assert (err.value.from_status, err.value.event) == (PR, OrderEvent.REQUEST_REPLACE)
    assert err.value.report is None
    assert snapshot(order) == before
    assert book.by_clordid("Z") is None
    assert order.history[-1].legal is False and order.flags.illegal_transitions == 1


# =============================================================================================
# E Unsolicited, F Reject, I TimeInForce, expiry
# =============================================================================================


def test_e1b_unsolicited_cancel_of_part_filled_order(book: Orders) -> None:
    """E.1.b: the venue cancels a part-filled order without a request; ClOrdID stays X."""
    order = working_order(book)
    book.apply(trade("X", 1, "560.00", cum=1, leaves=9, avg_px="560.00"))
    a = book.apply(er("X", ExecType.CANCELED, CANCELED, cum=1, avg_px="560.00"))
    assert (a.previous, a.status) == (PF, CANCELED)
    assert (order.clordid, order.cum_qty, order.leaves_qty) == ("X", 1, 0)
    assert_fills_agree(a)


def test_unsolicited_cancel_while_replace_pending_then_replace_rejected(book: Orders) -> None:
    """The venue cancels while our replace is in flight; its late 35=9 leaves it Canceled."""
    order = working_order(book)
    amend(book, order, "Y", 8)
    a = book.apply(er("X", ExecType.CANCELED, CANCELED))
    assert (a.previous, a.status) == (PR, CANCELED) and order.pending_clordid == "Y"
    a = book.apply_cancel_reject(cxl_rej("Y", "X", REPLACE, CANCELED))
    assert (a.previous, a.status) == (CANCELED, CANCELED) and order.pending_clordid is None


def test_f1_order_rejected(book: Orders) -> None:
    """F.1 / A.1.a alt path: the venue refuses the order: Rejected, final."""
    order = send(book)
    a = book.apply(er("X", ExecType.REJECTED, REJECTED, order_id="NONE"))
    assert (a.previous, a.status) == (PN, REJECTED)
    assert not order.working and order.venue_order_id is None and order.leaves_qty == 0


def test_i1a_fill_or_kill_cannot_be_filled(book: Orders) -> None:
    """I.1.a: a FOK that cannot fill in full is acknowledged then Canceled, nothing filled."""
    order = working_order(book, tif=TimeInForce.FOK)
    a = book.apply(er("X", ExecType.CANCELED, CANCELED))
    assert (a.previous, a.status) == (NEW, CANCELED) and order.fills == []


def test_i1b_immediate_or_cancel_remainder_canceled_by_venue(book: Orders) -> None:
    """I.1.b: an IOC fills 4 and the venue cancels the remaining 6 unsolicited."""
    order = working_order(book, tif=TimeInForce.IOC)
    book.apply(trade("X", 4, "560.00", cum=4, leaves=6, avg_px="560.00"))
    a = book.apply(er("X", ExecType.CANCELED, CANCELED, cum=4, avg_px="560.00"))
    assert (a.previous, a.status) == (PF, CANCELED)
    assert (order.cum_qty, order.leaves_qty, order.avg_px) == (4, 0, D("560.00"))


def test_day_order_expired(book: Orders) -> None:
    """A DAY order part-filled at the close expires (150=C): Expired, fills kept."""
    order = working_order(book)
    book.apply(trade("X", 3, "560.00", cum=3, leaves=7, avg_px="560.00"))
    a = book.apply(er("X", ExecType.EXPIRED, EXPIRED, cum=3, avg_px="560.00"))
    assert (a.previous, a.status) == (PF, EXPIRED)
    assert not order.working and order.cum_qty == 3


# =============================================================================================
# G Status, H GT
# =============================================================================================


def test_g1c_order_status_requests_do_not_change_state(book: Orders) -> None:
    """G.1.c: status replies while PendingNew, New and PF change nothing; they are checks."""
    order = send(book)
    a = book.apply(er("X", ExecType.ORDER_STATUS, PN, leaves=10))
    assert (a.previous, a.status, a.event) == (PN, PN, OrderEvent.ORDER_STATUS)
    book.apply(er("X", ExecType.NEW, NEW, leaves=10))
    a = book.apply(er("X", ExecType.ORDER_STATUS, NEW, leaves=10))
    assert (a.previous, a.status) == (NEW, NEW)
    book.apply(trade("X", 3, "560.00", cum=3, leaves=7, avg_px="560.00"))
    a = book.apply(er("X", ExecType.ORDER_STATUS, PF, cum=3, leaves=7, avg_px="560.00"))
    assert (a.previous, a.status) == (PF, PF) and a.fill is None
    assert_fills_agree(a)
    assert (order.cum_qty, order.leaves_qty, len(order.fills)) == (3, 7, 1)


def test_g1_status_reply_disagreeing_with_fills_is_flagged_not_applied(book: Orders) -> None:
    """A status reply showing cum 5 when the OMS has 3: flagged for reconciliation, the
    order keeps its own numbers (a status reply is a check, not a fill)."""
    order = working_order(book)
    book.apply(trade("X", 3, "560.00", cum=3, leaves=7, avg_px="560.00"))
    a = book.apply(er("X", ExecType.ORDER_STATUS, PF, cum=5, leaves=5, avg_px="560.00"))
    assert (a.previous, a.status) == (PF, PF)
    assert "venue cum 5 != fills 3" in a.note
    assert order.flags.fills_mismatch
    assert (order.cum_qty, order.leaves_qty) == (3, 7)


def test_h1a_gtc_order_done_for_day_restated_next_day(book: Orders) -> None:
    """H.1.a: GTC part-filled, DFD at the close, restated (renewed) next morning, fills."""
    order = working_order(book, tif=TimeInForce.GTC)
    book.apply(trade("X", 2, "560.00", cum=2, leaves=8, avg_px="560.00"))
    book.apply(er("X", ExecType.DONE_FOR_DAY, DFD, cum=2, leaves=8, avg_px="560.00"))
    assert order.status is DFD and not order.working
    a = book.apply(er("X", ExecType.RESTATED, PF, cum=2, leaves=8, avg_px="560.00"))
    assert (a.previous, a.status) == (DFD, PF) and order.working
    a = book.apply(trade("X", 1, "560.00", cum=3, leaves=7, avg_px="560.00"))
    assert a.status is PF and order.cum_qty == 3
    assert_fills_agree(a)


# =============================================================================================
# J Execution cancels / corrects
# =============================================================================================


def test_j1a_filled_order_then_trade_cancel_and_trade_corrects(book: Orders) -> None:
    """J.1.a with the matrix's own numbers: busts reopen quantity, corrections reprice,
    a correction after a replace arrives under the new ClOrdID."""
    order = working_order(book, qty=10000)
    kw: dict[str, Any] = {"qty": 10000}
    book.apply(trade("X", 1000, "100", cum=1000, leaves=9000, avg_px="100", exec_id="C", **kw))
    a = book.apply(trade("X", 9000, "110", cum=10000, leaves=0, avg_px="109", exec_id="D", **kw))
    assert a.status is FILLED and order.vwap == D(109)
    assert_fills_agree(a)

    # E(C): trade cancel of the 1000 @ 100 reopens 1000.
    a = book.apply(bust("X", "C", PF, cum=9000, leaves=1000, avg_px="110", exec_id="E", **kw))
    assert (a.previous, a.status, a.event) == (FILLED, PF, OrderEvent.TRADE_CANCEL)
    assert a.fill is not None and a.fill.exec_id == "C" and a.fill.busted_by == "E"
    assert a.fill.busted and order.fills[0].busted
    assert (order.cum_qty, order.leaves_qty, order.avg_px) == (9000, 1000, D(110))
    assert order.working
    assert_fills_agree(a)

    # F(D): correct the 9000's price to 100.
    a = book.apply(
        correct("X", "D", 9000, "100", PF, cum=9000, leaves=1000, avg_px="100", exec_id="F", **kw)
    )
    assert (a.previous, a.status) == (PF, PF)
    assert a.fill is not None and a.fill.correction_of == "D" and a.fill.price == D(100)
    assert order.fills[1].busted_by == "F" and order.vwap == D(100)
    assert_fills_agree(a)

    a = book.apply(trade("X", 1000, "120", cum=10000, leaves=0, avg_px="102", exec_id="G", **kw))
    assert a.status is FILLED and order.vwap == D(102)

    # H(F): correct the corrected 9000 to 120; still Filled.
    a = book.apply(
        correct("X", "F", 9000, "120", FILLED, cum=10000, avg_px="120", exec_id="H", **kw)
    )
    assert (a.previous, a.status) == (FILLED, FILLED) and order.avg_px == D(120)
    assert_fills_agree(a)

    # C.1.c inside J.1.a: increase the filled order to 12000.
    amend(book, order, "Y", 12000, "120")
    book.apply(er("Y", ExecType.PENDING_REPLACE, PR, cum=10000, avg_px="120", orig="X", **kw))
    a = book.apply(
        er("Y", ExecType.REPLACED, PF, cum=10000, leaves=2000, qty=12000, avg_px="120", orig="X")
    )
    assert a.status is PF and order.qty == 12000

    # K(H): correct 9000 @ 120 to 9500 @ 120, reported under Y.
    kw = {"qty": 12000}
    a = book.apply(
        correct("Y", "H", 9500, "120", PF, cum=10500, leaves=1500, avg_px="120", exec_id="K", **kw)
    )
    assert (a.previous, a.status) == (PF, PF)
    assert (order.cum_qty, order.leaves_qty, order.avg_px) == (10500, 1500, D(120))
    assert [f.exec_id for f in order.fills if not f.busted] == ["G", "K"]
    assert [f.exec_id for f in order.fills] == ["C", "D", "F", "G", "H", "K"]
    assert order.fill_qty == 10500 and order.vwap == D(120)
    assert_fills_agree(a)


def test_j1b_canceled_order_then_busted_execution(book: Orders) -> None:
    """J.1.b: a bust after Canceled keeps it Canceled (Canceled outranks New). The matrix's
    next step, a fresh fill on the canceled order, is refused by design (no fill after
    Canceled): it is raised so a human books it."""
    order = working_order(book)
    book.apply(trade("X", 5, "50", cum=5, leaves=5, avg_px="50", exec_id="B"))
    cancel(book, order, "Y")
    book.apply(er("Y", ExecType.PENDING_CANCEL, PC, cum=5, leaves=5, avg_px="50", orig="X"))
    book.apply(er("Y", ExecType.CANCELED, CANCELED, cum=5, avg_px="50", orig="X"))
    a = book.apply(bust("Y", "B", CANCELED))
    assert (a.previous, a.status) == (CANCELED, CANCELED)
    assert (order.cum_qty, order.fill_qty) == (0, 0) and order.fills[0].busted
    assert_fills_agree(a)
    refused = trade("Y", 4, "51", cum=4, leaves=0, avg_px="51", status=CANCELED)
    assert_illegal(book, order, refused, CANCELED, OrderEvent.FULL_FILL)


def test_trade_cancel_of_unknown_execution_is_illegal(book: Orders) -> None:
    """A bust naming an ExecID the order never had cannot be reversed: raised, no change."""
    order = working_order(book)
    book.apply(trade("X", 3, "560.00", cum=3, leaves=7, avg_px="560.00", exec_id="T1"))
    report = bust("X", "NOPE", PF, cum=0, leaves=10)
    err = assert_illegal(book, order, report, PF, OrderEvent.TRADE_CANCEL)
    assert "NOPE" in err.reason


# =============================================================================================
# Duplicates, overfills, cross-checks, unknown orders, the ClOrdID chain
# =============================================================================================


def test_duplicate_report_with_possdup_is_applied_once(book: Orders) -> None:
    """A PossDup resend of a fill already applied changes nothing and says so."""
    order = working_order(book)
    first = trade("X", 3, "560.00", cum=3, leaves=7, avg_px="560.00", exec_id="T1")
    book.apply(first)
    history = len(order.history)
    again = trade("X", 3, "560.00", cum=3, leaves=7, avg_px="560.00", exec_id="T1", poss_dup=True)
    a = book.apply(again)
    assert a.duplicate and a.fill is None and (a.previous, a.status) == (PF, PF)
    assert "PossDup" in a.note
    assert (order.cum_qty, len(order.fills), len(order.history)) == (3, 1, history)


def test_duplicate_report_without_possdup_is_applied_once(book: Orders) -> None:
    """The same ExecID again without PossDup (say, over the backup line) is still one fill."""
    order = working_order(book)
    report = trade("X", 10, "560.00", cum=10, leaves=0, avg_px="560.00", exec_id="T1")
    book.apply(report)
    a = book.apply(report)
    assert a.duplicate and not a.overfill and a.status is FILLED
    assert (order.cum_qty, order.fill_qty, len(order.fills)) == (10, 10, 1)
    assert not order.flags.overfilled


def test_possdup_report_seen_for_the_first_time_is_applied(book: Orders) -> None:
    """PossDup only says "maybe sent before": an ExecID never seen is applied normally."""
    order = working_order(book)
    a = book.apply(
        trade("X", 3, "560.00", cum=3, leaves=7, avg_px="560.00", exec_id="T9", poss_dup=True)
    )
    assert not a.duplicate and a.status is PF and order.cum_qty == 3
    assert "PossDup, first seen" in a.note


def test_duplicate_cancel_reject_is_applied_once(book: Orders) -> None:
    """A resent 35=9 for a request already refused is a duplicate, not an illegal event."""
    order = working_order(book)
    cancel(book, order, "Y")
    book.apply_cancel_reject(cxl_rej("Y", "X", CANCEL, NEW))
    a = book.apply_cancel_reject(cxl_rej("Y", "X", CANCEL, NEW, poss_dup=True))
    assert a.duplicate and a.status is NEW and order.flags.illegal_transitions == 0


def test_overfill_is_applied_and_flagged(book: Orders) -> None:
    """cum 12 on a 10-lot: the fill is real exposure, so it is applied, and flagged."""
    order = working_order(book)
    book.apply(trade("X", 6, "560.00", cum=6, leaves=4, avg_px="560.00"))
    a = book.apply(trade("X", 6, "560.00", cum=12, leaves=0, avg_px="560.00"))
    assert a.overfill and a.status is FILLED and "OVERFILL" in a.note
    assert order.flags.overfilled
    assert (order.cum_qty, order.fill_qty, len(order.fills)) == (12, 12, 2)


def test_overfill_after_replace_down(book: Orders) -> None:
    """Replaced down to 5 with 3 done, then a fill of 4: cum 7 > qty 5 is an overfill."""
    order = working_order(book)
    book.apply(trade("X", 3, "560.00", cum=3, leaves=7, avg_px="560.00"))
    amend(book, order, "Y", 5)
    book.apply(er("Y", ExecType.REPLACED, PF, cum=3, leaves=2, qty=5, avg_px="560", orig="X"))
    a = book.apply(trade("Y", 4, "560.00", cum=7, leaves=0, avg_px="560.00", qty=5))
    assert a.overfill and a.status is FILLED and order.flags.overfilled


def test_cum_taken_from_report_and_mismatch_with_fills_flagged(book: Orders) -> None:
    """A fill report went missing: the venue's cum (7) is taken, the gap to the OMS's fills
    (5) is flagged on the order and named in the note for the receipt."""
    order = working_order(book)
    book.apply(trade("X", 3, "560.00", cum=3, leaves=7, avg_px="560.00"))
    a = book.apply(trade("X", 2, "560.00", cum=7, leaves=3, avg_px="560.00"))
    assert a.status is PF
    assert (order.cum_qty, order.leaves_qty, order.fill_qty) == (7, 3, 5)
    assert "venue cum 7 != fills 5" in a.note and order.flags.fills_mismatch


def test_avg_px_mismatch_with_fills_flagged(book: Orders) -> None:
    """The venue's AvgPx is a tick off the fills: taken from the report, and flagged."""
    order = working_order(book)
    a = book.apply(trade("X", 2, "560.00", cum=2, leaves=8, avg_px="560.02"))
    assert order.avg_px == D("560.02") and order.vwap == D("560.00")
    assert "venue avg_px 560.02" in a.note and order.flags.fills_mismatch


def test_avg_px_rounded_by_venue_is_not_a_mismatch(book: Orders) -> None:
    """1 @ 560.00 + 2 @ 560.02 = 560.01333...; a venue's 8-place rounding is fine."""
    order = working_order(book)
    book.apply(trade("X", 1, "560.00", cum=1, leaves=9, avg_px="560.00"))
    a = book.apply(trade("X", 2, "560.02", cum=3, leaves=7, avg_px="560.01333333"))
    assert_fills_agree(a)
    assert not order.flags.fills_mismatch


def test_unknown_clordid_returns_unknown_without_raising(book: Orders) -> None:
    working_order(book)
    a = book.apply(trade("NOT-OURS", 1, "560.00", cum=1, leaves=9, avg_px="560.00"))
    assert a.unknown and a.order is None and (a.previous, a.status) == (None, None)
    assert "NOT-OURS" in a.note


def test_report_from_another_venue_is_unknown(book: Orders) -> None:
    """ClOrdIDs are ours, but a report for them from the wrong venue is not applied."""
    order = working_order(book)
    a = book.apply(trade("X", 1, "560.00", cum=1, leaves=9, avg_px="560.00", venue="CME"))
    assert a.unknown and order.cum_qty == 0 and order.status is NEW


def test_reports_under_original_clordid_after_replace_apply_to_the_order(book: Orders) -> None:
    """After Replaced the order answers to Y, yet a late report under X (or only an
    OrigClOrdID we know) still finds it."""
    order = working_order(book)
    amend(book, order, "Y", 8)
    book.apply(er("Y", ExecType.REPLACED, NEW, leaves=8, qty=8, orig="X"))
    assert order.clordid == "Y"
    a = book.apply(trade("X", 1, "560.00", cum=1, leaves=7, avg_px="560.00", qty=8))
    assert a.order is order and a.status is PF
    a = book.apply(trade("??", 1, "560.00", cum=2, leaves=6, avg_px="560.00", orig="Y", qty=8))
    assert a.order is order and order.cum_qty == 2


def test_by_clordid_resolves_every_id_in_the_chain(book: Orders) -> None:
    order = working_order(book)
    amend(book, order, "Y", 8)
    book.apply_cancel_reject(cxl_rej("Y", "X", REPLACE, NEW))
    cancel(book, order, "Z")
    assert order.clordids == ["X", "Y", "Z"]
    assert [book.by_clordid(c) for c in ("X", "Y", "Z")] == [order, order, order]
    assert book.by_clordid("W") is None and book.by_key("Y") is None and book.by_key("X") is order


def test_working_lists_only_orders_the_venue_may_still_execute(book: Orders) -> None:
    live = working_order(book, "A")
    pending = send(book, "B")
    done = working_order(book, "C")
    book.apply(er("C", ExecType.CANCELED, CANCELED))
    assert book.working() == [live, pending]
    assert not done.working and len(book) == 3


def test_submit_refuses_reused_clordid_and_malformed_orders(book: Orders) -> None:
    working_order(book)
    with pytest.raises(ValueError, match="already used"):
        send(book, "X")
    args = (VENUE, SYMBOL, Side.BUY)
    with pytest.raises(ValueError, match="at least 1"):
        book.submit(*args, 0, OrderType.LIMIT, D(1), TimeInForce.DAY, clordid="A", now_ns=T0)
    with pytest.raises(ValueError, match="needs a price"):
        book.submit(*args, 1, OrderType.LIMIT, None, TimeInForce.DAY, clordid="A", now_ns=T0)
    with pytest.raises(ValueError, match="takes no price"):
        book.submit(*args, 1, OrderType.MARKET, D(1), TimeInForce.IOC, clordid="A", now_ns=T0)
    assert len(book) == 1


# =============================================================================================
# Illegal transitions: raised, recorded, and the order unchanged
# =============================================================================================


def snapshot(order: Order) -> dict[str, Any]:
    """Everything about an order except the record of attempts (history and flags)."""
    return {
        f.name: copy.deepcopy(getattr(order, f.name))
        for f in fields(order)
        if f.name not in ("history", "flags")
    }


def assert_illegal(
    book: Orders,
    order: Order,
    report: ExecutionReceived | CancelRejected,
    from_status: OrdStatus,
    event: OrderEvent,
) -> IllegalTransition:
    before = snapshot(order)
    attempts = order.flags.illegal_transitions
    history = len(order.history)
    with pytest.raises(IllegalTransition) as caught:
        if isinstance(report, ExecutionReceived):
            book.apply(report)
        else:
            book.apply_cancel_reject(report)
    err = caught.value
    assert (err.key, err.from_status, err.event, err.report) == (
        order.key,
        from_status,
        event,
        report,
    )
    assert snapshot(order) == before
    assert order.flags.illegal_transitions == attempts + 1
    assert len(order.history) == history + 1
    last = order.history[-1]
    assert (last.from_status, last.to_status, last.legal) == (from_status, None, False)
    assert event.name in last.cause
    return err


def test_illegal_fill_after_canceled(book: Orders) -> None:
    order = working_order(book)
    book.apply(er("X", ExecType.CANCELED, CANCELED))
    late = trade("X", 1, "560.00", cum=1, leaves=9, avg_px="560.00")
    assert_illegal(book, order, late, CANCELED, OrderEvent.PARTIAL_FILL)
    assert order.fills == [] and order.exec_ids.isdisjoint({late.exec_id})


def test_illegal_fill_after_rejected(book: Orders) -> None:
    order = send(book)
    book.apply(er("X", ExecType.REJECTED, REJECTED))
    late = trade("X", 10, "560.00", cum=10, leaves=0, avg_px="560.00")
    assert_illegal(book, order, late, REJECTED, OrderEvent.FULL_FILL)


def test_illegal_fill_after_expired(book: Orders) -> None:
    order = working_order(book)
    book.apply(er("X", ExecType.EXPIRED, EXPIRED))
    late = trade("X", 1, "560.00", cum=1, leaves=9, avg_px="560.00")
    assert_illegal(book, order, late, EXPIRED, OrderEvent.PARTIAL_FILL)


def test_illegal_new_after_filled(book: Orders) -> None:
    order = working_order(book)
    book.apply(trade("X", 10, "560.00", cum=10, leaves=0, avg_px="560.00"))
    assert_illegal(book, order, er("X", ExecType.NEW, NEW, leaves=10), FILLED, OrderEvent.NEW)


def test_illegal_replaced_without_pending_replace(book: Orders) -> None:
    order = working_order(book)
    report = er("Y", ExecType.REPLACED, NEW, leaves=8, qty=8, orig="X")
    assert_illegal(book, order, report, NEW, OrderEvent.REPLACED)
    assert order.qty == 10 and book.by_clordid("Y") is None


def test_illegal_replaced_from_filled_without_pending_replace(book: Orders) -> None:
    """Filled -> Replaced is a table row only for C.1.c; with no replace outstanding the
    precondition beside the table refuses it."""
    order = working_order(book)
    book.apply(trade("X", 10, "560.00", cum=10, leaves=0, avg_px="560.00"))
    report = er("X", ExecType.REPLACED, PF, cum=10, leaves=2, qty=12, orig="X")
    err = assert_illegal(book, order, report, FILLED, OrderEvent.REPLACED)
    assert "no REPLACE request" in err.reason


def test_illegal_pending_cancel_without_cancel_request(book: Orders) -> None:
    order = working_order(book)
    amend(book, order, "Y", 8)
    report = er("Y", ExecType.PENDING_CANCEL, PC, leaves=10, orig="X")
    assert_illegal(book, order, report, PR, OrderEvent.PENDING_CANCEL)


def test_illegal_fill_before_the_venue_acknowledged_the_order(book: Orders) -> None:
    """The matrices always acknowledge (New) before a fill; a fill on PendingNew is raised."""
    order = send(book)
    report = trade("X", 1, "560.00", cum=1, leaves=9, avg_px="560.00")
    assert_illegal(book, order, report, PN, OrderEvent.PARTIAL_FILL)


def test_illegal_fill_after_done_for_day(book: Orders) -> None:
    order = working_order(book)
    book.apply(er("X", ExecType.DONE_FOR_DAY, DFD, leaves=10))
    report = trade("X", 1, "560.00", cum=1, leaves=9, avg_px="560.00")
    assert_illegal(book, order, report, DFD, OrderEvent.PARTIAL_FILL)


def test_illegal_trade_without_last_qty_or_last_px(book: Orders) -> None:
    order = working_order(book)
    report = er("X", ExecType.TRADE, PF, cum=1, leaves=9, last_qty=1, last_px=None)
    err = assert_illegal(book, order, report, NEW, OrderEvent.PARTIAL_FILL)
    assert "LastPx" in err.reason


def test_illegal_cancel_reject_without_outstanding_request(book: Orders) -> None:
    order = working_order(book)
    err = assert_illegal(
        book, order, cxl_rej("Q", "X", CANCEL, NEW), NEW, OrderEvent.CANCEL_REJECTED
    )
    assert "no outstanding request" in err.reason


def test_illegal_cancel_reject_answering_the_wrong_kind_of_request(book: Orders) -> None:
    order = working_order(book)
    cancel(book, order, "Y")
    rej = cxl_rej("Y", "X", REPLACE, NEW)
    assert_illegal(book, order, rej, PC, OrderEvent.CANCEL_REJECTED)
    assert order.pending_clordid == "Y"


def test_illegal_local_cancel_of_a_filled_order(book: Orders) -> None:
    """The gateway's own requests go through the same table: no cancel of a Filled order."""
    order = working_order(book)
    book.apply(trade("X", 10, "560.00", cum=10, leaves=0, avg_px="560.00"))
    before = snapshot(order)
    with pytest.raises(IllegalTransition) as err:
        cancel(book, order, "Y")
    assert (err.value.from_status, err.value.event, err.value.report) == (
        FILLED,
        OrderEvent.REQUEST_CANCEL,
        None,
    )
    assert snapshot(order) == before and book.by_clordid("Y") is None
    assert order.history[-1] == Transition(
        FILLED, None, "REQUEST_CANCEL local: not in the transition table", legal=False
    )


def test_illegal_replace_while_cancel_pending(book: Orders) -> None:
    order = working_order(book)
    cancel(book, order, "Y")
    with pytest.raises(IllegalTransition):
        amend(book, order, "Z", 8)
    assert order.status is PC and order.pending_clordid == "Y"


# =============================================================================================
# The table itself
# =============================================================================================


@pytest.mark.parametrize("status", [s for s in OrdStatus if s in CLOSED and s not in (FILLED, DFD)])
def test_no_fill_new_or_replace_from_a_final_status(status: OrdStatus) -> None:
    """Canceled, Expired and Rejected accept no execution, ack, replace or request."""
    for event in (
        OrderEvent.PARTIAL_FILL,
        OrderEvent.FULL_FILL,
        OrderEvent.NEW,
        OrderEvent.REPLACED,
        OrderEvent.REQUEST_CANCEL,
        OrderEvent.REQUEST_REPLACE,
    ):
        assert (status, event) not in TRANSITIONS


def test_replaced_is_never_a_status_an_order_holds() -> None:
    """FIX 4.4: ExecType Replaced, but OrdStatus is New / PartiallyFilled / Filled after it."""
    assert OrdStatus.REPLACED not in TRANSITIONS.values()
    assert all(status is not OrdStatus.REPLACED for status, _ in TRANSITIONS)


def test_every_status_but_replaced_has_a_row() -> None:
    """No status is a dead end by accident: each has at least one way on (or a check)."""
    held = {status for status, _ in TRANSITIONS if status is not None}
    assert held == set(OrdStatus) - {OrdStatus.REPLACED}
