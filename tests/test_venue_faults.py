"""The venue simulator's fault injection, over real FIX 4.4 through quickfix on loopback.

Each test starts a venue with the fault it needs (``make_venue(faults={...})``) or switches
faults at run time with ``Venue.set_faults``, and checks what a client sees on the wire.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

import pytest

from oms.clock import now_ns
from oms.enums import Side, TimeInForce
from sessions.simulator.client import FixClient, Received
from sessions.simulator.venue import Venue

from .test_venue_fix import check, ers

pytestmark = pytest.mark.fix

D = Decimal
BUY, SELL = Side.BUY, Side.SELL
MS = 1_000_000


def index_of(client: FixClient, msg: Received) -> int:
    return next(i for i, m in enumerate(client.received) if m is msg)


def rest(client: FixClient, side: Side, qty: int, price: str) -> str:
    clordid = client.new_order("AU", side, qty, D(price))
    client.wait_report(clordid, "0")
    return clordid


def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """For state no message announces (a dropped connection): poll it briefly."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def logon_after(client: FixClient, start: int, timeout: float = 5.0) -> Received:
    """The venue's Logon answer after ``start``, and the session logged on (onLogon follows
    the Logon message by a moment; an order sent in between would wait for a resend)."""
    logon = client.wait_for(lambda m: m.msg_type == "A", timeout, start=start)
    until(lambda: client.is_logged_on, timeout)
    return logon


def test_refused_logons_keep_that_client_out_until_the_fault_is_lifted(make_venue, make_client):
    venue: Venue = make_venue(faults={"refuse_logons": ["T1"]})
    t2 = make_client(venue, "T2")  # not refused
    t1 = make_client(venue, "T1", wait_logon_s=None)
    refusal = t1.wait_msg("5")
    assert "logon refused for T1" in refusal[58]
    assert not t1.is_logged_on and t2.is_logged_on
    assert f"{venue.config.comp_id}->T1" not in venue.logged_on

    seen = len(t1.received)
    venue.set_faults(refuse_logons=[])  # at run time: the next attempt (1 s later) gets in
    logon_after(t1, seen)
    order = rest(t1, BUY, 1, "559.00")
    assert t1.wait_report(order, "0")[39] == "0"
    assert venue.application.callback_errors == 0


def test_injected_rejects_apply_from_the_next_order_when_switched_at_run_time(
    make_venue, make_client
):
    venue = make_venue(faults={"reject_rate": 1.0})
    t1 = make_client(venue, "T1")
    first = t1.new_order("AU", BUY, 1, D("559.00"))
    m = t1.wait_report(first, "8")
    check(m, t39="8", t103="99", t58="rejected by fault injection", t14="0", t151="0")

    venue.set_faults(reject_rate=0.0)
    second = t1.new_order("AU", BUY, 1, D("559.00"))
    assert t1.wait_report(second, "0")[39] == "0"
    venue.set_faults(reject_rate=1.0)
    third = t1.new_order("AU", BUY, 1, D("559.00"))
    assert t1.wait_report(third, "8")[58] == "rejected by fault injection"
    assert venue.book("AU")["bids"] == [(D("559.00"), 1, 1)]  # only the second order rests
    assert venue.application.callback_errors == 0


def test_forced_partial_fill_of_an_ioc_cancels_the_remainder(make_venue, make_client):
    venue = make_venue(faults={"partial_fill_rate": 1.0})
    t1, t2 = make_client(venue, "T1"), make_client(venue, "T2")
    rest(t2, SELL, 50, "560.00")  # ample liquidity at one price

    ioc = t1.new_order("AU", BUY, 10, D("560.00"), TimeInForce.IOC)
    ack, fill, cancel = ers(t1, ioc, 3)
    assert (ack[150], fill[150], cancel[150]) == ("0", "F", "4")
    filled = int(fill[32])
    assert 1 <= filled <= 9
    check(fill, t39="1", t14=filled, t151=10 - filled, t31=D("560.00"))
    check(cancel, t39="4", t14=filled, t151="0")
    assert "immediate-or-cancel" in cancel[58]
    assert venue.book("AU")["asks"] == [(D("560.00"), 50 - filled, 1)]

    venue.set_faults(partial_fill_rate=0.0)
    full = t1.new_order("AU", BUY, 10, D("560.00"), TimeInForce.IOC)
    assert t1.wait_report(full, "F")[39] == "2"
    assert venue.book("AU")["asks"] == [(D("560.00"), 40 - filled, 1)]


def test_delayed_acks_arrive_after_the_delay_and_hold_back_what_follows_on_the_session(
    make_venue, make_client
):
    venue = make_venue(faults={"ack_delay_ms": 200})
    t1, t2 = make_client(venue, "T1"), make_client(venue, "T2")
    sell = rest(t2, SELL, 5, "560.00")

    sent_ns = now_ns()
    buy = t1.new_order("AU", BUY, 5, D("560.00"))
    ack, fill = ers(t1, buy, 2)
    # A behaviour check of the injected delay with a generous upper bound, not a speed test.
    assert 200 * MS <= ack.recv_ns - sent_ns < 3000 * MS
    assert (ack[150], fill[150], fill[39]) == ("0", "F", "2")
    assert index_of(t1, ack) < index_of(t1, fill) and int(ack[34]) + 1 == int(fill[34])
    assert fill.recv_ns >= ack.recv_ns
    # Fills are not delayed: the maker heard of the trade before the taker's ack went out.
    maker_fill = t2.wait_report(sell, "F")
    assert maker_fill.recv_ns < ack.recv_ns


def test_delayed_cancel_reports_pending_then_a_fill_during_the_delay_then_the_cancel(
    make_venue, make_client
):
    venue = make_venue(faults={"cancel_delay_ms": 300, "pending_reports": True})
    t1, t2 = make_client(venue, "T1"), make_client(venue, "T2")
    bid = rest(t1, BUY, 10, "560.00")
    order_id = t1.wait_report(bid, "0")[37]

    cxl = t1.cancel(bid, "AU", BUY)
    pending = t1.wait_report(cxl, "6")
    check(pending, t39="6", t11=cxl, t41=bid, t37=order_id, t14="0", t151="10")
    sell = t2.new_order("AU", SELL, 4, D("560.00"))  # trades while the cancel waits
    assert t2.wait_report(sell, "F")[39] == "2"
    fill = t1.wait_report(bid, "F")
    check(fill, t39="6", t11=bid, t32="4", t14="4", t151="6", t37=order_id)  # still pending
    done = t1.wait_report(cxl, "4")
    check(done, t39="4", t11=cxl, t41=bid, t14="4", t151="0", t37=order_id)
    assert index_of(t1, pending) < index_of(t1, fill) < index_of(t1, done)
    assert venue.book("AU") == {"bids": [], "asks": []}
    assert venue.application.callback_errors == 0


def test_dropped_connection_logs_back_on_and_recovers_a_report_sent_while_down(
    make_venue, make_client
):
    venue = make_venue()
    t1, t2 = make_client(venue, "T1"), make_client(venue, "T2")  # ReconnectInterval 1 s
    bid = rest(t1, BUY, 5, "559.00")

    venue.set_faults(refuse_logons=["T1"])  # keep T1 out while its fill happens
    t1_seen, t2_seen = len(t1.received), len(t2.received)
    assert venue.drop_connections() == 2
    until(lambda: not t1.is_logged_on)
    logon_after(t2, t2_seen)  # T2 is back
    sell = t2.new_order("AU", SELL, 5, D("559.00"))
    assert t2.wait_report(sell, "F")[39] == "2"
    assert not t1.is_logged_on and len(t1.reports(bid)) == 1  # T1's fill waits in the store

    venue.set_faults(refuse_logons=[])
    logon_after(t1, t1_seen)
    recovered = t1.wait_for(lambda m: m.get(11) == bid and m.get(150) == "F", start=t1_seen)
    check(recovered, t43="Y", t39="2", t32="5", t31=D("559.00"))
    assert recovered.get(122) is not None  # OrigSendingTime, as a resend carries
    after = rest(t1, BUY, 1, "558.00")  # and the session works on
    assert t1.wait_report(after, "0")[39] == "0"
    assert len([m for m in t1.reports(bid) if m.get(150) == "F"]) == 1
    assert venue.application.callback_errors == 0 and t1.app.callback_errors == 0


def skip_then_order(venue: Venue, t1: FixClient, timeout: float) -> tuple[int, str, Received]:
    """Skip three outgoing sequence numbers, then send an order; its ack comes after the gap."""
    first = rest(t1, BUY, 1, "559.00")
    last_seq = int(t1.wait_report(first, "0")[34])
    venue.skip_sequence(3, "T1")
    second = t1.new_order("AU", BUY, 1, D("558.00"))
    return last_seq, second, t1.wait_report(second, "0", timeout=timeout)


def test_a_sequence_gap_from_the_venue_is_recovered_and_the_session_works_on(
    make_venue, make_client, tmp_path
):
    venue = make_venue(store_dir=tmp_path / "venue")  # FileStore, as in production
    t1 = make_client(venue, "T1")
    seen = len(t1.received)
    last_seq, second, ack = skip_then_order(venue, t1, 5.0)
    # T1 saw seq last+4 while expecting last+1, asked for a resend and got a gap fill for the
    # three skipped numbers; the ack itself was delivered once (its PossDup resend ignored).
    gap_fill = t1.wait_for(lambda m: m.msg_type == "4", start=seen)
    check(gap_fill, t123="Y", t34=last_seq + 1, t36=last_seq + 4)
    assert int(ack[34]) == last_seq + 4
    assert len(t1.reports(second)) == 1
    third = t1.new_order("AU", BUY, 1, D("557.00"))
    assert int(t1.wait_report(third, "0")[34]) == last_seq + 5
    assert t1.is_logged_on
    assert [p for p, _, _ in venue.book("AU")["bids"]] == [D("559.00"), D("558.00"), D("557.00")]
    assert venue.application.callback_errors == 0 and t1.app.callback_errors == 0


@pytest.mark.xfail(
    strict=True,
    raises=TimeoutError,
    reason=(
        "quickfix 1.16 MemoryStore::get starts at find(begin): a resend range that begins at a "
        "skipped number returns nothing, so the venue gap-fills over the ack sent after the skip"
    ),
)
def test_a_sequence_gap_with_the_in_memory_store_loses_no_message(make_venue, make_client):
    venue = make_venue()  # store_dir left out: quickfix's MemoryStore
    t1 = make_client(venue, "T1")
    skip_then_order(venue, t1, 1.5)
