"""Venue failover: a line lost, silent, slow or rejecting; orders reconciled; failback.

The first part checks the decisions alone (``oms.line_health``), and then the OMS fed typed
events (``tests.oms_harness``): what a switch makes it ask, what each answer means, what
waits meanwhile. The rest is real FIX over loopback: a gateway with a primary and a backup
line to each of two simulated venues, whose lines are one member's (``link_clients``), so
that the backup can ask after what the primary sent.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from oms.client_messages import ClientCancel, ClientCancelReject, ClientNewOrder, ClientReport
from oms.commands import SendOrder, StatusRequest, SwitchLine
from oms.core import Oms
from oms.enums import OrderType, Side, TimeInForce
from oms.events import (
    ExecType,
    ExecutionReceived,
    LineRole,
    LineState,
    LineStateChanged,
    OrdStatus,
)
from oms.line_health import ADVICE_HOLD_NS, Answer, LineHealth, LinePolicy, judge
from oms.pairs import Direction
from oms.receipts import Receipt, ReceiptStore
from sessions.demo import GW_BACKUP, GW_PRIMARY, gateway_config
from sessions.gateway import Gateway
from sessions.gateway_config import FailoverConfig, GatewayConfig
from sessions.simulator.client import FixClient
from sessions.simulator.venue import Venue
from tests.conftest import GATEWAY_CLIENTS, GOLD_INNER, GOLD_OUTER, venue_config, wait_until
from tests.oms_harness import Harness, orders

D = Decimal
MS = 1_000_000
P, B = LineRole.PRIMARY, LineRole.BACKUP


# -- (d) the decisions alone ----------------------------------------------------------------


def test_slow_acks_on_the_primary_advise_a_switch_only_when_they_come_in_a_row() -> None:
    health = LineHealth(LinePolicy("V", ack_latency_ms=100, slow_acks=3))
    assert health.ack(P, P, 150 * MS, 1) is None
    assert health.ack(P, P, 150 * MS, 2) is None
    assert health.ack(P, P, 100 * MS, 3) is None  # at the threshold is not slower: the run ends
    assert health.ack(P, P, 101 * MS, 4) is None
    assert health.ack(P, P, 300 * MS, 5) is None
    advice = health.ack(P, P, 120 * MS, 6)
    assert advice is not None
    assert (advice.venue, advice.away_from, advice.rule) == ("V", P, "ack_latency")
    assert advice.figures == {"slow_acks": 3, "last_ack_us": 120_000, "limit_ms": 100}
    assert "3 acknowledgement(s) in a row slower than 100 ms" in advice.reason
    # Asked once: not again until the line changes or the hold has passed.
    assert health.ack(P, P, 500 * MS, 7) is None
    assert health.ack(P, P, 500 * MS, 7 + ADVICE_HOLD_NS) is not None
    health.switched()
    assert health.ack(P, P, 500 * MS, 8 + ADVICE_HOLD_NS) is None  # counting starts afresh


def test_only_the_active_primary_is_judged_and_nothing_without_a_threshold() -> None:
    health = LineHealth(LinePolicy("V", ack_latency_ms=10, slow_acks=1, reject_count=1))
    assert health.ack(B, B, 900 * MS, 1) is None  # the backup is never switched away from
    assert health.ack(P, B, 900 * MS, 2) is None  # a late ack on a line already left
    assert health.reject(P, None, 3) is None
    assert health.ack(P, P, 900 * MS, 4) is not None
    off = LineHealth(LinePolicy("V"))
    assert off.ack(P, P, 10**12, 1) is None
    assert all(off.reject(P, P, t) is None for t in range(100))


def test_rejects_advise_a_switch_at_the_count_within_the_window() -> None:
    health = LineHealth(LinePolicy("V", reject_count=3, reject_window_s=2.0))
    s = 1_000_000_000
    assert health.reject(P, P, 0) is None
    assert health.reject(P, P, 1 * s) is None
    assert health.reject(P, P, 2 * s) is None  # the first fell out of the 2 s window
    advice = health.reject(P, P, 2 * s + 500 * MS)
    assert advice is not None and advice.rule == "reject_rate"
    assert advice.figures == {"rejects": 3, "window_s": "2", "limit": 3}
    slow = LineHealth(LinePolicy("V", reject_count=2, reject_window_s=1.0))
    assert [slow.reject(P, P, t * s) for t in range(5)] == [None] * 5  # one a second: fine


@pytest.mark.parametrize(
    ("ours", "filled", "venue", "cum", "order_id", "across", "expected"),
    [
        (OrdStatus.NEW, 0, OrdStatus.NEW, 0, "V-1", False, Answer.AGREES),
        (OrdStatus.PARTIALLY_FILLED, 2, OrdStatus.PARTIALLY_FILLED, 2, "V-1", False, Answer.AGREES),
        (OrdStatus.PENDING_CANCEL, 0, OrdStatus.NEW, 0, "V-1", False, Answer.AGREES),
        (OrdStatus.PENDING_NEW, 0, OrdStatus.NEW, 0, "V-1", False, Answer.AGREES),
        (OrdStatus.NEW, 0, OrdStatus.PARTIALLY_FILLED, 1, "V-1", True, Answer.DIFFERS),
        (OrdStatus.NEW, 0, OrdStatus.CANCELED, 0, "V-1", True, Answer.DIFFERS),
        (OrdStatus.PENDING_NEW, 0, OrdStatus.REJECTED, 0, "NONE", True, Answer.NEVER_ARRIVED),
        (OrdStatus.PENDING_NEW, 0, OrdStatus.REJECTED, 0, None, True, Answer.NEVER_ARRIVED),
        # Lines that keep their own orders: unknown on the new line proves nothing.
        (OrdStatus.PENDING_NEW, 0, OrdStatus.REJECTED, 0, "NONE", False, Answer.UNKNOWN),
        # Acknowledged once: the venue had it, so "unknown" is not "never arrived".
        (OrdStatus.NEW, 0, OrdStatus.REJECTED, 0, "NONE", True, Answer.UNKNOWN),
        # A rejected order the venue knows: the reject report settles it.
        (OrdStatus.PENDING_NEW, 0, OrdStatus.REJECTED, 0, "V-1", True, Answer.DIFFERS),
    ],
)
def test_what_a_status_answer_means(
    ours: OrdStatus,
    filled: int,
    venue: OrdStatus,
    cum: int,
    order_id: str | None,
    across: bool,
    expected: Answer,
) -> None:
    assert judge(ours, filled, venue, cum, order_id, across_lines=across) is expected


@pytest.mark.parametrize(
    ("ours", "acked_status", "expected"),
    [
        # Asked on the line it went out on, after everything sent there before: never
        # acknowledged and unknown means it never arrived, even where lines keep their own.
        (OrdStatus.PENDING_NEW, OrdStatus.REJECTED, Answer.NEVER_ARRIVED),
        # Acknowledged once on that line: the venue lost it, which is for an operator.
        (OrdStatus.NEW, OrdStatus.REJECTED, Answer.UNKNOWN),
    ],
)
def test_unknown_on_the_line_an_order_went_out_on_is_conclusive(
    ours: OrdStatus, acked_status: OrdStatus, expected: Answer
) -> None:
    answer = judge(ours, 0, acked_status, 0, "NONE", across_lines=False, on_its_line=True)
    assert answer is expected


# -- the OMS after a switch, fed typed events ---------------------------------------------------


def switch(h: Harness, venue: str, active: LineRole | None, line: LineRole = P) -> None:
    state = LineState.LOGGED_OUT if active is not line else LineState.LOGGED_ON
    h.oms.handle(LineStateChanged(venue, line, state, active, next(h.clock)))


def resting(h: Harness, side: Side, price: str, qty: int = 2) -> SendOrder:
    """A day order of the gateway's own on INNER, acknowledged by the venue."""
    order, why = h.oms.send_single(
        "INNER",
        "AU",
        side,
        qty,
        OrderType.LIMIT,
        D(price),
        TimeInForce.DAY,
        account=None,
        cause_ns=next(h.clock),
    )
    assert order is not None and why is None, why
    command = orders(h)[-1]
    h.reports(command, price, (ExecType.NEW, OrdStatus.NEW, 0, 0))
    return command


def answer(
    h: Harness,
    request: StatusRequest,
    status: OrdStatus,
    cum: int = 0,
    *,
    qty: int = 2,
    line: LineRole = B,
    known: bool = True,
) -> None:
    """The venue's ExecutionReport (150=I) to a status request."""
    h.oms.handle(
        ExecutionReceived(
            venue=request.venue,
            line=line,
            clordid=request.clordid,
            orig_clordid=None,
            venue_order_id=f"V-{request.clordid}" if known else "NONE",
            exec_id=f"S{next(h.clock)}",
            exec_type=ExecType.ORDER_STATUS,
            ord_status=status,
            symbol=request.symbol,
            side=request.side,
            order_qty=qty if known else None,
            last_qty=0,
            last_px=None,
            cum_qty=cum,
            leaves_qty=(qty - cum) if known and status not in (OrdStatus.REJECTED,) else 0,
            avg_px=D(0),
            transact_ns=None,
            sending_ns=None,
            recv_ns=next(h.clock),
        )
    )


def status_requests(h: Harness) -> list[StatusRequest]:
    return [c for c in h.sent if isinstance(c, StatusRequest)]


def kinds(h: Harness, prefix: str) -> list[Receipt]:
    return [r for r in h.receipts if r.kind.startswith(prefix)]


def test_a_switch_asks_after_every_working_order_and_holds_entries_until_all_are_answered() -> None:
    h = Harness()
    buy, sell = resting(h, Side.BUY, "558.00"), resting(h, Side.SELL, "562.00")
    switch(h, "OUTER", B)  # another venue's switch asks nothing of INNER's orders
    assert status_requests(h) == [] and h.oms.reconciling == set()  # OUTER has no orders
    switch(h, "INNER", B)
    asked = status_requests(h)
    assert [(r.venue, r.clordid, r.side, r.symbol) for r in asked] == [
        ("INNER", buy.clordid, Side.BUY, "AU"),
        ("INNER", sell.clordid, Side.SELL, "AU"),
    ]
    assert len({r.status_req_id for r in asked}) == 2
    assert h.oms.reconciling == {"INNER"}

    # Books that would fire the gold pair: nothing goes while INNER is reconciling.
    h.book("INNER", "AU", [("559.90", 50)], [("560.00", 50)])
    h.book("OUTER", "GC", [("2406.0", 20)], [("2410.0", 20)])
    refused = h.oms.engine.trade_now("GOLD", Direction.BUY_INNER, 1, next(h.clock))
    assert isinstance(refused, str) and "reconciling" in refused
    assert len(orders(h)) == 2

    answer(h, asked[0], OrdStatus.NEW)
    assert h.oms.reconciling == {"INNER"}
    answer(h, asked[1], OrdStatus.NEW)
    assert h.oms.reconciling == set()
    assert [r for r in kinds(h, "decision.reconcile") if r.venue == "OUTER"] == []
    start, done = [r for r in kinds(h, "decision.reconcile") if r.venue == "INNER"]
    assert (start.verdict, start.venue, start.line, start.data["orders"]) == (
        "start",
        "INNER",
        "backup",
        2,
    )
    assert done.verdict == "done"
    assert {k: done.data[k] for k in ("orders", "answered", "agrees", "unanswered")} == {
        "orders": 2,
        "answered": 2,
        "agrees": 2,
        "unanswered": 0,
    }
    assert [r.clordid for r in kinds(h, "command.status_request")] == [
        buy.clordid,
        sell.clordid,
    ]
    # The next market data may trade again.
    h.book("OUTER", "GC", [("2406.0", 20)], [("2410.0", 20)])
    assert [(o.venue, o.qty) for o in orders(h)[2:]] == [("INNER", 28), ("OUTER", 9)]


def test_a_switch_cut_short_and_a_line_back_after_none_was_up_reconcile_again() -> None:
    h = Harness()
    resting(h, Side.BUY, "558.00")
    switch(h, "INNER", P, line=B)  # the backup logs on: nothing changes for the orders
    switch(h, "INNER", B)
    first = status_requests(h)
    assert len(first) == 1 and h.oms.reconciling == {"INNER"}
    switch(h, "INNER", P, line=P)  # failback before the answer came: ask again, on the primary
    second = status_requests(h)[1:]
    assert len(second) == 1 and second[0].status_req_id != first[0].status_req_id
    answer(h, first[0], OrdStatus.NEW)  # the first request's answer, on the backup: not this one
    assert h.oms.reconciling == {"INNER"}
    answer(h, second[0], OrdStatus.NEW, line=P)
    assert h.oms.reconciling == set()
    # Both lines down, and the primary back: what we sent into it as it died is gone (a
    # venue's resend request is answered with a gap fill), so it is asked after too.
    switch(h, "INNER", None)
    assert len(status_requests(h)) == 2
    switch(h, "INNER", P, line=P)
    assert len(status_requests(h)) == 3 and h.oms.reconciling == {"INNER"}
    lines = [(r.verdict, r.line) for r in kinds(h, "decision.reconcile")]
    assert lines == [
        ("start", "backup"),
        ("start", "primary"),
        ("done", "primary"),
        ("start", "primary"),
    ]


def leg_trade(h: Harness) -> tuple[SendOrder, SendOrder]:
    h.book("INNER", "AU", [("559.90", 50)], [("560.00", 50)])
    h.book("OUTER", "GC", [("2406.0", 20)], [("2410.0", 20)])
    inner, outer = orders(h)
    h.fill_in_full(outer, "2406.0")  # the outer leg filled; the inner one is in the air
    return inner, outer


def test_a_leg_the_venue_never_got_is_rejected_and_topped_up_once_reconciled() -> None:
    h = Harness()
    h.oms.handle(LinePolicy("INNER", orders_across_lines=True))
    inner, _ = leg_trade(h)
    switch(h, "INNER", B)
    [request] = status_requests(h)
    assert request.clordid == inner.clordid
    assert len(orders(h)) == 2  # no top-up while the venue is being asked
    answer(h, request, OrdStatus.REJECTED, known=False)
    order = h.oms.orders.by_key(inner.clordid)
    assert order is not None and order.status is OrdStatus.REJECTED
    assert "lost with the line it went out on" in order.history[-1].cause
    top_up = orders(h)[2]
    assert (top_up.venue, top_up.side, top_up.qty) == ("INNER", Side.BUY, 28)
    assert top_up.clordid != inner.clordid  # a new order, never the same one again
    alert = kinds(h, "alert.reconcile")
    assert [(a.verdict, a.clordid) for a in alert] == [("never_arrived", inner.clordid)]
    done = kinds(h, "decision.reconcile")[-1]
    assert (done.data["never_arrived"], done.data["answered"]) == (1, 1)
    sent_kinds = [r.kind for r in h.receipts]
    assert sent_kinds.index("decision.top_up") > h.receipts.index(done)


def test_without_orders_kept_across_lines_an_unknown_leg_is_left_for_its_line_to_settle() -> None:
    h = Harness()
    inner, _ = leg_trade(h)
    switch(h, "INNER", B)
    [request] = status_requests(h)
    answer(h, request, OrdStatus.REJECTED, known=False)
    order = h.oms.orders.by_key(inner.clordid)
    assert order is not None and order.status is OrdStatus.PENDING_NEW
    assert [a.verdict for a in kinds(h, "alert.reconcile")] == ["unknown"]
    assert len(orders(h)) == 2 and h.oms.reconciling == set()
    # The primary comes back and the venue resends the leg's reports: the trade completes.
    h.fill_in_full(inner, "560.00")
    assert h.oms.pairs["GOLD"].working is None and h.oms.pairs["GOLD"].position == 1


def test_unanswered_status_requests_time_out_with_an_alert() -> None:
    h = Harness()
    h.oms.handle(LinePolicy("INNER", reconcile_timeout_ms=1, reconcile_retries=0))
    buy = resting(h, Side.BUY, "558.00")
    switch(h, "INNER", B)
    assert h.oms.reconciling == {"INNER"}
    time.sleep(0.005)
    h.oms._run_due_timers()  # the OMS thread's own timer loop, run by hand
    assert h.oms.reconciling == set()
    [alert] = kinds(h, "alert.reconcile_timeout")
    assert alert.data["unanswered"] == buy.clordid and "1 of 1" in (alert.reason or "")
    assert kinds(h, "decision.reconcile")[-1].verdict == "timed_out"


def test_slow_acks_make_the_oms_ask_the_sessions_to_switch() -> None:
    h = Harness()
    h.oms.handle(LinePolicy("INNER", ack_latency_ms=1, slow_acks=2))
    for price in ("558.00", "557.00"):
        order, _ = h.oms.send_single(
            "INNER",
            "AU",
            Side.BUY,
            1,
            OrderType.LIMIT,
            D(price),
            TimeInForce.DAY,
            account=None,
            cause_ns=None,
        )
        assert order is not None
        h.oms.handle(ack(orders(h)[-1], after_ns=5 * MS))  # 5 ms on the primary
    [switch_line] = [c for c in h.sent if isinstance(c, SwitchLine)]
    assert (switch_line.venue, switch_line.away_from) == ("INNER", P)
    [decision] = kinds(h, "decision.failover")
    assert decision.verdict == "ack_latency" and decision.data["slow_acks"] == 2
    assert "2 acknowledgement(s) in a row slower than 1 ms" in (decision.reason or "")


def ack(command: SendOrder, *, after_ns: int, line: LineRole = P) -> ExecutionReceived:
    return ExecutionReceived(
        venue=command.venue,
        line=line,
        clordid=command.clordid,
        orig_clordid=None,
        venue_order_id=f"V-{command.clordid}",
        exec_id=f"A-{command.clordid}",
        exec_type=ExecType.NEW,
        ord_status=OrdStatus.NEW,
        symbol=command.symbol,
        side=command.side,
        order_qty=command.qty,
        last_qty=0,
        last_px=None,
        cum_qty=0,
        leaves_qty=command.qty,
        avg_px=D(0),
        transact_ns=None,
        sending_ns=None,
        recv_ns=command.created_ns + after_ns,
    )


# -- real FIX over loopback -------------------------------------------------------------------


@pytest.fixture
def linked_venues() -> Iterator[tuple[Venue, Venue]]:
    """The gold venues (conftest's), each behind a fault relay, the gateway's two lines one
    member's there."""
    made: list[Venue] = []
    try:
        for venue_id, instrument in (("INNER", GOLD_INNER), ("OUTER", GOLD_OUTER)):
            config = venue_config(
                id=venue_id, comp_id=venue_id, clients=GATEWAY_CLIENTS, instruments=[instrument]
            )
            venue = Venue(config, relay=True)
            venue.start()
            made.append(venue)
            venue.link_clients(GW_PRIMARY, GW_BACKUP)
        yield made[0], made[1]
    finally:
        for venue in made:  # after the gateways and clients (asked for later, torn down first)
            venue.retire()


def start_gateway(
    gateways: list[Gateway], venues: tuple[Venue, Venue], work: Path, **inner: Any
) -> Gateway:
    """The demo's gateway against ``venues``; INNER's failover table gets ``inner``, on top
    of manual failback and orders kept across lines."""
    config: GatewayConfig = gateway_config(list(venues), work)
    config.venues[0].failover = FailoverConfig.model_validate(
        {"failback": "manual", "orders_across_lines": True, **inner}
    )
    risk = config.risk  # the books here change only when told to: no book is too old
    defaults = risk.defaults.model_copy(update={"stale_after_ms": None})
    config.risk = risk.model_copy(update={"defaults": defaults})
    gateway = Gateway(config)
    gateways.append(gateway)
    gateway.start()
    assert gateway.wait_ready(20), "the gateway did not log on to both venues"
    return gateway


def rest(client: FixClient, symbol: str, side: Side, qty: int, price: str) -> str:
    clordid = client.new_order(symbol, side, qty, D(price))
    client.wait_report(clordid, "0")
    return clordid


def market(make_client: Callable[..., FixClient], inner: Venue, outer: Venue) -> FixClient:
    """T1's books: the converted spread inside the entry either way (inner 559.90/560.00 is
    2402.046/2402.475 USD/oz against outer 2402.0/2410.0). Returns T1 on OUTER."""
    maker_in, maker_out = make_client(inner, "T1"), make_client(outer, "T1")
    rest(maker_in, "AU", Side.SELL, 30, "560.00")
    rest(maker_in, "AU", Side.BUY, 30, "559.90")
    rest(maker_out, "GC", Side.BUY, 10, "2402.0")
    rest(maker_out, "GC", Side.SELL, 10, "2410.0")
    return maker_out


def place(gateway: Gateway, side: Side, qty: int, price: str) -> str:
    """A day order of the gateway's own on INNER; its ClOrdID once the venue has it."""

    def send(o: Oms) -> tuple[Any, str | None]:
        return o.send_single(
            "INNER",
            "AU",
            side,
            qty,
            OrderType.LIMIT,
            D(price),
            TimeInForce.DAY,
            account=None,
            cause_ns=None,
        )

    order, why = gateway.oms.call(send)
    assert order is not None and why is None, why
    assert wait_until(lambda: status(gateway, order.key) is OrdStatus.NEW, 5)
    return str(order.key)


def status(gateway: Gateway, key: str) -> OrdStatus | None:
    def read(o: Oms) -> OrdStatus | None:  # on the OMS thread, which owns the order
        order = o.orders.by_key(key)
        return None if order is None else order.status

    return gateway.oms.call(read)


def filled(gateway: Gateway, key: str) -> int:
    def read(o: Oms) -> int:
        order = o.orders.by_key(key)
        return -1 if order is None else order.fill_qty

    return gateway.oms.call(read)


def settled_on(gateway: Gateway, venue: str, line: LineRole) -> bool:
    """The venue's orders go out on ``line`` and are reconciled there."""
    return gateway.sessions.active_lines()[venue] is line and gateway.oms.call(
        lambda o: venue not in o.reconciling and o.lines.active.get(venue) is line
    )


def receipts_of(gateway: Gateway, work: Path) -> list[Receipt]:
    gateway.stop()  # flushes the receipt writer
    with ReceiptStore(f"sqlite:///{work / 'receipts.sqlite'}") as store:
        return store.all()


def no_clordid_twice(gateway: Gateway, venue: Venue) -> dict[str, str]:
    """Every order the gateway made for ``venue``, by the CompID it reached the venue on:
    each exactly once, on one line, and the venue took no NewOrderSingle besides (T1's)."""
    ours = gateway.oms.call(
        lambda o: {x.key for x in o.orders.all() if x.venue == venue.id and x.acked}
    )
    on_primary = set(venue.filled_by_clordid(GW_PRIMARY))
    on_backup = set(venue.filled_by_clordid(GW_BACKUP))
    assert not on_primary & on_backup
    assert on_primary | on_backup == ours
    t1 = len(venue.filled_by_clordid("T1"))
    assert venue.call(lambda v: v.stats["orders"]) == t1 + len(ours)
    return {k: GW_PRIMARY for k in on_primary} | {k: GW_BACKUP for k in on_backup}


def trade_now(gateway: Gateway, direction: Direction) -> str:
    def go(o: Oms) -> Any:
        return o.engine.trade_now("GOLD", direction, 1, time.time_ns())

    trade = gateway.oms.call(go)
    assert not isinstance(trade, str), trade
    assert wait_until(lambda: trade.outcome is not None, 10), "the spread trade did not end"
    assert trade.outcome.value == "filled", trade.outcome
    return str(trade.inner_key)


@pytest.mark.fix
def test_primary_killed_mid_run_the_backup_reconciles_and_trades_and_failback_brings_it_back(
    linked_venues: tuple[Venue, Venue],
    gateways: list[Gateway],
    make_client: Callable[..., FixClient],
    tmp_path: Path,
) -> None:
    inner, outer = linked_venues
    maker_out = market(make_client, inner, outer)
    gateway = start_gateway(gateways, linked_venues, tmp_path)
    buy = place(gateway, Side.BUY, 1, "559.92")  # the best bid: a house sell hits it first
    sell = place(gateway, Side.SELL, 2, "563.00")
    assert {buy, sell} <= set(inner.filled_by_clordid(GW_PRIMARY))

    # The primary's connection is cut; at once, on the venue, our bid is hit: the fill
    # report goes to a line that is gone.
    assert inner.drop_session(GW_PRIMARY) is not None
    inner.house_order("AU", Side.SELL, 1, D("559.92"), TimeInForce.IOC)
    assert wait_until(lambda: settled_on(gateway, "INNER", B), 10), "INNER did not fail over"
    assert wait_until(lambda: status(gateway, buy) is OrdStatus.FILLED, 5)
    assert filled(gateway, buy) == 1 and status(gateway, sell) is OrdStatus.NEW

    # The next spread trade goes out on the backup: the outer bid moves up to 2406.0, 3.525
    # above the converted inner ask.
    rest(maker_out, "GC", Side.BUY, 10, "2406.0")

    def one_trade(o: Oms) -> bool:
        pair = o.pairs["GOLD"]
        return pair.working is None and len(pair.done) == 1

    assert wait_until(lambda: gateway.oms.call(one_trade), 10), "no spread trade on the backup"
    leg = gateway.oms.call(lambda o: o.pairs["GOLD"].done[0].inner_key)
    assert leg in inner.filled_by_clordid(GW_BACKUP)

    # Manual failback once the primary is back (the gateway reconnects it every second).
    primary = gateway.sessions.links["INNER"].lines[P]
    assert wait_until(lambda: primary.logged_on, 10), "the primary did not log on again"
    time.sleep(0.5)
    assert settled_on(gateway, "INNER", B)  # manual failback: it stays on the backup
    assert gateway.sessions.failback("INNER") is P
    assert wait_until(lambda: settled_on(gateway, "INNER", P), 10)
    closing = trade_now(gateway, Direction.SELL_INNER)
    assert closing in inner.filled_by_clordid(GW_PRIMARY)

    lines = no_clordid_twice(gateway, inner)
    assert lines[buy] == lines[sell] == GW_PRIMARY
    assert (lines[leg], lines[closing]) == (GW_BACKUP, GW_PRIMARY)
    assert inner.filled_by_clordid(GW_PRIMARY)[buy] == (1, 0)
    assert inner.filled_by_clordid(GW_PRIMARY)[sell] == (0, 2)
    no_clordid_twice(gateway, outer)

    receipts = receipts_of(gateway, tmp_path)
    kinds_ = [r.kind for r in receipts]
    lost = next(  # (the others are the gateway's stop)
        r
        for r in receipts
        if r.kind == "event.line_state" and r.venue == "INNER" and r.verdict == "logged_out"
    )
    assert (lost.line, lost.data["active"]) == ("primary", "backup")
    assert lost.reason == "primary line lost: failover to the backup line"
    runs = [r for r in receipts if r.kind == "decision.reconcile" and r.venue == "INNER"]
    assert [(r.verdict, r.line) for r in runs] == [
        ("start", "backup"),
        ("done", "backup"),
        ("start", "primary"),
        ("done", "primary"),
    ]
    assert runs[0].data["orders"] == 2 and runs[1].data["answered"] == 2
    assert runs[1].data["agrees"] == 2 and runs[1].data["unanswered"] == 0
    assert runs[2].data["orders"] == 1  # only the sell is left working
    asked = [r for r in receipts if r.kind == "command.status_request"]
    assert [(r.clordid, r.line) for r in asked] == [
        (buy, "backup"),
        (sell, "backup"),
        (sell, "primary"),
    ]
    # The spread trade's intent came after the reconciliation ended.
    intent = kinds_.index("decision.spread_intent")
    assert receipts.index(runs[1]) < intent
    # Our bid's one fill counted once, whichever line told of it first and however often.
    fills = [
        r
        for r in receipts
        if r.kind == "event.execution" and r.clordid == buy and r.data["exec_type"] == "F"
    ]
    assert len({r.exec_id for r in fills}) == 1
    assert [r.verdict for r in fills if r.verdict != "duplicate"] == ["0->2"]


@pytest.mark.fix
def test_a_silent_primary_is_found_by_the_test_request_and_the_fill_it_swallowed_counts_once(
    linked_venues: tuple[Venue, Venue],
    gateways: list[Gateway],
    make_client: Callable[..., FixClient],
    tmp_path: Path,
) -> None:
    inner, outer = linked_venues
    market(make_client, inner, outer)
    gateway = start_gateway(gateways, linked_venues, tmp_path, heartbeat_s=1)
    resent: list[ExecutionReceived] = []
    gateway.oms.hooks.append(
        lambda e, _: resent.append(e) if isinstance(e, ExecutionReceived) and e.poss_dup else None
    )
    buy = place(gateway, Side.BUY, 2, "559.92")

    assert inner.go_silent(GW_PRIMARY) == 1
    inner.house_order("AU", Side.SELL, 2, D("559.92"), TimeInForce.IOC)  # its report is lost
    assert wait_until(lambda: settled_on(gateway, "INNER", B), 10), "the silence was not found"
    # The backup asked after the bid and the venue told it of the fill.
    assert wait_until(lambda: status(gateway, buy) is OrdStatus.FILLED, 5)
    assert filled(gateway, buy) == 2

    # The primary speaks again: the gateway logs it on, and the venue resends what the
    # silence swallowed, the fill among it (PossDup): known by its ExecID, applied once.
    inner.go_silent(GW_PRIMARY, False)
    assert wait_until(lambda: any(e.clordid == buy for e in resent), 15), "nothing was resent"
    assert filled(gateway, buy) == 2
    assert gateway.sessions.active_lines()["INNER"] is B  # manual failback

    receipts = receipts_of(gateway, tmp_path)
    events = sorted(tmp_path.glob(f"fixlog/*{GW_PRIMARY}-{inner.config.comp_id}.event*.log"))
    assert events, "no FIX event log for INNER's primary line"
    log_text = events[0].read_text()
    sent_test_request = log_text.index("Sent test request TEST")
    assert log_text.index("Timed out waiting for heartbeat") > sent_test_request
    fills = [
        r
        for r in receipts
        if r.kind == "event.execution" and r.clordid == buy and r.data["exec_type"] == "F"
    ]
    assert [(r.line, r.verdict) for r in fills] == [
        ("backup", "0->2"),
        ("primary", "duplicate"),
    ]
    assert fills[0].exec_id == fills[1].exec_id
    [done] = [
        r
        for r in receipts
        if r.kind == "decision.reconcile" and r.verdict == "done" and r.venue == "INNER"
    ]
    assert (done.data["orders"], done.data["fills_learned"], done.data["agrees"]) == (1, 1, 1)


@pytest.mark.fix
def test_automatic_failback_once_the_primary_has_been_quiet(
    linked_venues: tuple[Venue, Venue],
    gateways: list[Gateway],
    make_client: Callable[..., FixClient],
    tmp_path: Path,
) -> None:
    inner, outer = linked_venues
    market(make_client, inner, outer)
    gateway = start_gateway(
        gateways, linked_venues, tmp_path, failback="auto", failback_after_s=1.5
    )
    sell = place(gateway, Side.SELL, 2, "563.00")
    assert inner.drop_session(GW_PRIMARY) is not None
    assert wait_until(lambda: settled_on(gateway, "INNER", B), 10), "INNER did not fail over"
    assert wait_until(lambda: settled_on(gateway, "INNER", P), 15), "no automatic failback"
    closing = trade_now(gateway, Direction.BUY_INNER)
    assert closing in inner.filled_by_clordid(GW_PRIMARY)
    no_clordid_twice(gateway, inner)

    receipts = receipts_of(gateway, tmp_path)
    changes = [
        r
        for r in receipts
        if r.kind == "event.line_state" and r.venue == "INNER" and r.reason is not None
    ]
    assert [r.data["active"] for r in changes] == ["backup", "primary"]
    assert (changes[1].reason or "").startswith("automatic failback: the primary line quiet for")
    runs = [r for r in receipts if r.kind == "decision.reconcile" and r.venue == "INNER"]
    assert [(r.verdict, r.line, r.data["orders"]) for r in runs] == [
        ("start", "backup", 1),
        ("done", "backup", 1),
        ("start", "primary", 1),
        ("done", "primary", 1),
    ]
    assert [r.clordid for r in receipts if r.kind == "command.status_request"] == [sell, sell]


@pytest.mark.fix
def test_slow_acknowledgements_on_the_primary_move_the_orders_to_the_backup(
    linked_venues: tuple[Venue, Venue],
    gateways: list[Gateway],
    make_client: Callable[..., FixClient],
    tmp_path: Path,
) -> None:
    inner, outer = linked_venues
    market(make_client, inner, outer)
    gateway = start_gateway(gateways, linked_venues, tmp_path, ack_latency_ms=100, slow_acks=2)
    inner.set_faults(ack_delay_ms=300)
    first = place(gateway, Side.BUY, 1, "559.00")
    second = place(gateway, Side.BUY, 1, "559.02")
    assert wait_until(lambda: settled_on(gateway, "INNER", B), 10), "no failover for slow acks"
    inner.set_faults(ack_delay_ms=0)
    third = place(gateway, Side.BUY, 1, "559.04")
    assert no_clordid_twice(gateway, inner) == {
        first: GW_PRIMARY,
        second: GW_PRIMARY,
        third: GW_BACKUP,
    }
    assert gateway.sessions.links["INNER"].lines[P].logged_on  # the primary stays up, unused

    receipts = receipts_of(gateway, tmp_path)
    [decision] = [r for r in receipts if r.kind == "decision.failover"]
    assert (decision.venue, decision.line, decision.verdict) == ("INNER", "primary", "ack_latency")
    assert decision.data["slow_acks"] == 2
    assert int(str(decision.data["last_ack_us"])) > 100_000  # the venue held each ack 300 ms
    switched = next(
        r
        for r in receipts
        if r.kind == "event.line_state" and r.venue == "INNER" and r.reason is not None
    )
    assert switched.data["active"] == "backup"
    assert (switched.reason or "").startswith("failover: 2 acknowledgement(s) in a row slower")
    assert receipts.index(decision) < receipts.index(switched)


@pytest.mark.fix
def test_a_refused_primary_leaves_the_orders_on_the_backup_until_failback(
    linked_venues: tuple[Venue, Venue],
    gateways: list[Gateway],
    make_client: Callable[..., FixClient],
    tmp_path: Path,
) -> None:
    inner, outer = linked_venues
    market(make_client, inner, outer)
    inner.set_faults(refuse_logons=[GW_PRIMARY])
    gateway = start_gateway(gateways, linked_venues, tmp_path)
    link = gateway.sessions.links["INNER"]
    assert wait_until(lambda: link.faulted_from is P, 10), "the refusal was not taken as a fault"
    assert settled_on(gateway, "INNER", B)
    sell = place(gateway, Side.SELL, 2, "563.00")
    inner.set_faults(refuse_logons=[])
    assert wait_until(lambda: link.lines[P].logged_on, 10), "the primary did not log on"
    time.sleep(0.5)
    assert settled_on(gateway, "INNER", B)  # a primary that logs on is not taken back at once
    assert gateway.sessions.failback("INNER") is P
    assert wait_until(lambda: settled_on(gateway, "INNER", P), 10)
    assert no_clordid_twice(gateway, inner) == {sell: GW_BACKUP}

    receipts = receipts_of(gateway, tmp_path)
    refused = next(
        r
        for r in receipts
        if r.kind == "event.line_state" and r.venue == "INNER" and r.reason is not None
    )
    assert (refused.line, refused.data["active"]) == ("primary", "backup")
    assert refused.reason == "primary line could not log on: failover to the backup line"
    runs = [r for r in receipts if r.kind == "decision.reconcile" and r.venue == "INNER"]
    assert [(r.verdict, r.line, r.data["orders"]) for r in runs] == [
        ("start", "primary", 1),
        ("done", "primary", 1),
    ]


def test_a_leg_unknown_on_its_own_line_is_rejected_after_an_unanswered_round() -> None:
    h = Harness()
    h.oms.handle(LinePolicy("INNER", reconcile_timeout_ms=1))
    inner, _ = leg_trade(h)  # sent on the primary
    switch(h, "INNER", B)
    [on_backup] = status_requests(h)
    answer(h, on_backup, OrdStatus.REJECTED, known=False)  # the backup cannot tell
    switch(h, "INNER", P)
    # The request sent on the primary is lost in the venue's resend: nobody answers it.
    time.sleep(0.005)
    h.oms._run_due_timers()
    assert h.oms.reconciling == {"INNER"}  # asked again, and its pairs still wait
    assert len(orders(h)) == 2
    again = status_requests(h)[-1]
    assert again.clordid == inner.clordid and again.status_req_id.endswith("-1")
    [timeout] = kinds(h, "alert.reconcile_timeout")
    assert "asking again (round 2)" in (timeout.reason or "")
    # Asked on the line it went out on, the venue does not know it: it never arrived.
    answer(h, again, OrdStatus.REJECTED, line=P, known=False)
    order = h.oms.orders.by_key(inner.clordid)
    assert order is not None and order.status is OrdStatus.REJECTED
    alerts = [a.verdict for a in kinds(h, "alert.reconcile") if a.kind == "alert.reconcile"]
    assert alerts == ["unknown", "never_arrived"]
    top_up = orders(h)[2]
    assert (top_up.venue, top_up.side, top_up.qty) == ("INNER", Side.BUY, 28)
    assert kinds(h, "decision.reconcile")[-1].data["round"] == 2


def test_a_leg_is_asked_after_on_its_own_line_when_that_line_is_back_but_not_active() -> None:
    h = Harness()
    inner, _ = leg_trade(h)  # sent on the primary
    switch(h, "INNER", B)
    [on_backup] = status_requests(h)
    answer(h, on_backup, OrdStatus.REJECTED, known=False)  # the backup cannot tell
    assert h.oms.reconciling == set()
    # The primary logs on again; the backup stays active until failback.
    h.oms.handle(LineStateChanged("INNER", P, LineState.LOGGED_ON, B, next(h.clock)))
    [probe] = status_requests(h)[1:]
    assert (probe.clordid, probe.line) == (inner.clordid, P)  # asked there, not on the backup
    assert len(orders(h)) == 2
    answer(h, probe, OrdStatus.REJECTED, line=P, known=False)
    order = h.oms.orders.by_key(inner.clordid)
    assert order is not None and order.status is OrdStatus.REJECTED
    [top_up] = orders(h)[2:]
    assert (top_up.venue, top_up.side, top_up.qty) == ("INNER", Side.BUY, 28)
    [asked] = [r for r in kinds(h, "command.status_request") if r.data["own_line"]]
    assert asked.line == "primary" and asked.clordid == inner.clordid


def test_an_order_acknowledged_on_its_own_line_is_not_rejected_by_a_late_unknown() -> None:
    h = Harness()
    inner, _ = leg_trade(h)
    switch(h, "INNER", B)
    [on_backup] = status_requests(h)
    answer(h, on_backup, OrdStatus.REJECTED, known=False)
    h.oms.handle(LineStateChanged("INNER", P, LineState.LOGGED_ON, B, next(h.clock)))
    [probe] = status_requests(h)[1:]
    # The venue's resend on the primary brings the leg's fill before the answer.
    h.fill_in_full(inner, "560.00")
    answer(h, probe, OrdStatus.FILLED, 28, qty=28, line=P)
    order = h.oms.orders.by_key(inner.clordid)
    assert order is not None and order.status is OrdStatus.FILLED
    assert h.oms.pairs["GOLD"].working is None and h.oms.pairs["GOLD"].position == 1


def test_a_clients_order_that_never_arrived_is_reported_rejected_with_its_cancel_refused() -> None:
    h = Harness()
    h.oms.clients.handle(
        ClientNewOrder(
            "FUND-A",
            "A-1",
            "INNER",
            "AU",
            Side.BUY,
            2,
            OrderType.LIMIT,
            D("558.00"),
            TimeInForce.DAY,
            None,
            False,
            next(h.clock),
        )
    )
    h.oms.clients.handle(ClientCancel("FUND-A", "A-2", "A-1", "AU", Side.BUY, next(h.clock)))
    [sent, cancel] = h.sent
    assert isinstance(sent, SendOrder) and not isinstance(cancel, SendOrder)
    switch(h, "INNER", B)
    [on_backup] = status_requests(h)
    answer(h, on_backup, OrdStatus.REJECTED, known=False)
    h.oms.handle(LineStateChanged("INNER", P, LineState.LOGGED_ON, B, next(h.clock)))
    [probe] = status_requests(h)[1:]
    answer(h, probe, OrdStatus.REJECTED, line=P, known=False)
    refused = [m for m in h.to_clients if isinstance(m, ClientCancelReject)]
    assert [(r.client, r.clordid, r.orig_clordid) for r in refused] == [("FUND-A", "A-2", "A-1")]
    # Only the reject: the venue's answers to the gateway's own status requests stay here.
    [report] = [m for m in h.to_clients if isinstance(m, ClientReport) and m.client == "FUND-A"]
    assert (report.clordid, report.exec_type, report.ord_status) == (
        "A-1",
        ExecType.REJECTED,
        OrdStatus.REJECTED,
    )
    assert "lost with the line it went out on" in (report.text or "")
    order = h.oms.orders.by_key(sent.clordid)
    assert order is not None and order.status is OrdStatus.REJECTED and order.pending_kind is None


def test_an_order_left_unanswered_is_asked_after_on_its_line_and_rejected_if_unknown() -> None:
    h = Harness()
    h.oms.handle(LinePolicy("INNER", ack_timeout_ms=1))
    inner, _ = leg_trade(h)  # the outer leg filled; the venue never answers the inner one
    assert status_requests(h) == []
    time.sleep(0.005)
    h.oms._run_due_timers()
    [probe] = status_requests(h)
    assert (probe.clordid, probe.line) == (inner.clordid, P)
    [alert] = kinds(h, "alert.unacknowledged")
    assert alert.clordid == inner.clordid and alert.line == "primary"
    answer(h, probe, OrdStatus.REJECTED, line=P, known=False)
    order = h.oms.orders.by_key(inner.clordid)
    assert order is not None and order.status is OrdStatus.REJECTED
    [top_up] = orders(h)[2:]
    assert (top_up.venue, top_up.side, top_up.qty) == ("INNER", Side.BUY, 28)


def test_an_acknowledged_order_is_not_asked_after() -> None:
    h = Harness()
    h.oms.handle(LinePolicy("INNER", ack_timeout_ms=1))
    resting(h, Side.BUY, "558.00")  # acknowledged at once
    time.sleep(0.005)
    h.oms._run_due_timers()
    assert status_requests(h) == [] and kinds(h, "alert.unacknowledged") == []
