"""When a venue's orders should leave its active line, and putting them right after a switch.

The sessions move a venue's orders between its primary and backup lines by themselves when
a line ends: a lost connection, a refused logon, a heartbeat that quickfix's TestRequest
found missing. Two things only the OMS can see are decided here, on the OMS thread:

* **Health** (``LineHealth``): acknowledgements slower than the venue's ``ack_latency_ms``
  (``slow_acks`` of them in a row), or ``reject_count`` rejects within ``reject_window_s``,
  on the primary while it is the active line, advise a switch to the backup. The OMS hands
  the advice to the sessions as a ``SwitchLine`` command and never waits for it: it hears
  of the switch as a ``LineStateChanged``, like any other. The backup is never switched
  away from for its health: only back, by the failback policy, once the primary is sound.
* **Reconciliation** (``Reconciliation``, ``judge``): after any switch, every order working
  on the venue is asked after on the new line (OrderStatusRequest). Until each has been
  answered, or the time-out has passed, the venue is *reconciling*: its pairs take no new
  entry and no top-up or unwind, because a fill may have happened on the line that went
  away. Fills are learned from the execution reports the venue sends (on the new line, or
  again on the old one when it comes back), never from an answer's CumQty alone, so each
  counts once, by its ExecID, at its own price.

``LineHealth``, ``Reconciliation`` and ``judge`` are pure: facts in, decisions out, no clock
of their own. ``LineWatch`` wires them to the OMS (``LineDesk``): it sends the status
requests and switch advice, applies what the answers mean and leaves the receipts.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from oms.commands import Command, StatusRequest, SwitchLine
from oms.events import ExecutionReceived, LineRole, LineState, LineStateChanged, OrdStatus
from oms.orders import CLOSED, Applied, Order, OrderEvent, Orders
from oms.receipts import Receipt

_MS = 1_000_000
_S = 1_000_000_000

ADVICE_HOLD_NS = 5 * _S
"""After advising a switch, how long before advising again if the line did not change (the
backup was not logged on, say): the sessions refuse a switch to a line that is down."""


@dataclass(frozen=True, slots=True)
class LinePolicy:
    """A venue's failover thresholds as the OMS applies them. The sessions post one per venue
    when they start (from its ``[venues.failover]`` table); a venue without one has no
    thresholds and reconciles with the defaults below."""

    venue: str
    ack_latency_ms: int | None = None
    slow_acks: int = 3
    reject_count: int | None = None
    reject_window_s: float = 10.0
    reconcile_timeout_ms: int = 2000
    ack_timeout_ms: int = 3000
    """An order the venue has not answered this long after it went out is asked after on
    its line: an order (or its answer) lost without the line ever seeming to drop, on a
    machine too busy to notice, would otherwise hold its pair for good."""
    reconcile_retries: int = 3
    """Status requests still unanswered at the time-out are asked again, this many rounds,
    before the venue's pairs trade without the answers: a request sent just after a logon
    can be lost in the venue's resend (answered with a gap fill), like an order."""
    orders_across_lines: bool = False
    """The venue keeps one member's orders across its lines: an order sent on one line is
    known when asked after on the other. Only then does "unknown order" from the new line
    mean that an order never arrived."""


@dataclass(frozen=True, slots=True)
class SwitchAdvice:
    """Why the active line should be left: which rule, in words, and the figures compared."""

    venue: str
    away_from: LineRole
    rule: str  # ack_latency, reject_rate
    reason: str
    figures: dict[str, int | str]


class LineHealth:
    """One venue's primary line, as its acknowledgements and rejects show it.

    Only reports that arrive on the primary while it is the active line count: acks still
    trickling in on a line already left say nothing about the line in use.
    """

    def __init__(self, policy: LinePolicy) -> None:
        self.policy = policy
        self._slow = 0  # acks in a row above the threshold
        self._rejects: deque[int] = deque()  # times of recent rejects, oldest first
        self._advised_ns: int | None = None

    def switched(self) -> None:
        """The active line changed: what was counted belonged to the old one."""
        self._slow = 0
        self._rejects.clear()
        self._advised_ns = None

    def ack(
        self, line: LineRole, active: LineRole | None, latency_ns: int, now_ns: int
    ) -> SwitchAdvice | None:
        limit = self.policy.ack_latency_ms
        if limit is None or not self._watched(line, active):
            return None
        if latency_ns <= limit * _MS:
            self._slow = 0
            return None
        self._slow += 1
        if self._slow < self.policy.slow_acks:
            return None
        return self._advise(
            now_ns,
            "ack_latency",
            f"{self._slow} acknowledgement(s) in a row slower than {limit} ms on the primary "
            f"line (the last {latency_ns / _MS:.1f} ms)",
            {"slow_acks": self._slow, "last_ack_us": latency_ns // 1000, "limit_ms": limit},
        )

    def reject(self, line: LineRole, active: LineRole | None, now_ns: int) -> SwitchAdvice | None:
        count = self.policy.reject_count
        if count is None or not self._watched(line, active):
            return None
        window_ns = int(self.policy.reject_window_s * _S)
        rejects = self._rejects
        rejects.append(now_ns)
        while rejects and rejects[0] <= now_ns - window_ns:
            rejects.popleft()
        if len(rejects) < count:
            return None
        return self._advise(
            now_ns,
            "reject_rate",
            f"{len(rejects)} reject(s) within {self.policy.reject_window_s:g} s on the primary "
            f"line (limit {count})",
            {
                "rejects": len(rejects),
                "window_s": f"{self.policy.reject_window_s:g}",
                "limit": count,
            },
        )

    @staticmethod
    def _watched(line: LineRole, active: LineRole | None) -> bool:
        return line is LineRole.PRIMARY and active is LineRole.PRIMARY

    def _advise(
        self, now_ns: int, rule: str, reason: str, figures: dict[str, int | str]
    ) -> SwitchAdvice | None:
        if self._advised_ns is not None and now_ns - self._advised_ns < ADVICE_HOLD_NS:
            return None  # asked already; the line has not changed yet
        self._advised_ns = now_ns
        return SwitchAdvice(self.policy.venue, LineRole.PRIMARY, rule, reason, figures)


class Answer(Enum):
    """What one status answer says about an order, as ``judge`` reads it."""

    AGREES = "agrees"
    """Working or not, and filled as much, as the OMS has it."""
    NEVER_ARRIVED = "never_arrived"
    """Never acknowledged, and unknown to the venue where it would be known: on the line it
    went out on, or on any line of a venue that keeps orders across lines. It was lost with
    the line (the gateway answers a resend request with a gap fill, never an old order). The
    OMS rejects it, so that its pair can repair."""
    UNKNOWN = "unknown"
    """Unknown to the venue, but it may be held by the other line (orders not kept across
    lines) or it was acknowledged once: an alert, and the order stays as it is."""
    DIFFERS = "differs"
    """Known, but not where the OMS has it (working, or filled): an alert; the venue's
    reports, on the new line or resent on the old, settle it."""


def _heard_of(order: Order) -> bool:
    """Whether the venue ever answered the order (an ack, a fill, or an OrderID in any
    report): then it arrived, whatever a later status answer says."""
    return order.acked or order.venue_order_id is not None


def judge(
    ours: OrdStatus,
    our_filled: int,
    venue_status: OrdStatus,
    venue_cum: int,
    venue_order_id: str | None,
    *,
    across_lines: bool,
    on_its_line: bool = False,
    acked: bool | None = None,
) -> Answer:
    """What the venue's answer (OrdStatus, CumQty, OrderID) means for an order the OMS has in
    ``ours`` with ``our_filled`` lots filled; ``on_its_line`` when the answer came on the
    line the order went out on. A venue answers a status request for an order it does not
    know with OrdStatus Rejected and no OrderID ("NONE").

    On the line an order went out on, the venue has read every message sent before the
    status request, in sequence: if it does not know the order then, it never will.
    ``acked`` tells whether the venue ever acknowledged the order (when left out: only a
    PendingNew order was not; one with a cancel or replace in flight may not have been
    either)."""
    unknown = venue_status is OrdStatus.REJECTED and venue_order_id in (None, "", "NONE")
    never_acked = ours is OrdStatus.PENDING_NEW if acked is None else not acked
    if unknown and ours is not OrdStatus.REJECTED:
        if never_acked and our_filled == 0 and (across_lines or on_its_line):
            return Answer.NEVER_ARRIVED
        return Answer.UNKNOWN
    if (venue_status in CLOSED) == (ours in CLOSED) and venue_cum == our_filled:
        return Answer.AGREES
    return Answer.DIFFERS


@dataclass(frozen=True, slots=True)
class Probe:
    """A status request for one unacknowledged order on the line it went out on."""

    line: LineRole
    req_id: str
    round: int


@dataclass
class Reconciliation:
    """One venue's orders being checked on its new line: what is awaited and what was found."""

    venue: str
    line: LineRole
    number: int  # the gateway's reconciliations so far: a late time-out names its own
    started_ns: int
    round: int = 1  # 2 and on: asking again what a time-out left unanswered
    orders: int = 0
    awaited: dict[str, str] = field(default_factory=dict)  # order key -> OrdStatusReqID
    answers: dict[Answer, int] = field(default_factory=dict)
    unsent: int = 0  # status requests no line took
    fills: int = 0  # fills applied while reconciling, each once by its ExecID

    @property
    def complete(self) -> bool:
        return not self.awaited

    def expect(self, key: str, status_req_id: str) -> None:
        self.orders += 1
        self.awaited[key] = status_req_id

    def answer(self, key: str, verdict: Answer) -> bool:
        """Count an answer; False when ``key`` was not awaited (asked already, or not ours)."""
        if self.awaited.pop(key, None) is None:
            return False
        self.answers[verdict] = self.answers.get(verdict, 0) + 1
        return True

    def figures(self, now_ns: int) -> dict[str, int | str]:
        return {
            "line": self.line.value,
            "round": self.round,
            "orders": self.orders + self.unsent,
            "answered": sum(self.answers.values()),
            **{a.value: self.answers.get(a, 0) for a in Answer},
            "unanswered": len(self.awaited),
            "unsent": self.unsent,
            "fills_learned": self.fills,
            "took_us": (now_ns - self.started_ns) // 1000,
        }


# -- wiring: what the OMS gives the watch, and what the watch does ---------------------------


class LineDesk(Protocol):
    """What ``LineWatch`` needs from the OMS: its orders, clock, timers, receipts and sends."""

    orders: Orders
    reconciling: set[str]

    def now(self) -> int: ...

    def after(self, delay_ns: int, action: Callable[[], None]) -> None: ...

    def record(self, receipt: Receipt) -> None: ...

    def send_command(self, command: Command) -> bool:
        """Hand a command to the sessions: whether a line took it."""
        ...

    def order_gone(self, order: Order, why: str, now_ns: int) -> None:
        """An order the venue never received: Rejected here, its pair and risk told."""
        ...

    def reconciled(self, venue: str, cause_ns: int | None) -> None:
        """The venue's orders are reconciled: its pairs may trade and repair again."""
        ...


class LineWatch:
    """Every venue's line health and reconciliation, on the OMS thread."""

    def __init__(self, desk: LineDesk) -> None:
        self.desk = desk
        self.policies: dict[str, LinePolicy] = {}
        self.health: dict[str, LineHealth] = {}
        self.active: dict[str, LineRole | None] = {}
        self.running: dict[str, Reconciliation] = {}
        self.finished: list[Reconciliation] = []  # the latest few, for operators and tests
        self._last: dict[str, LineRole] = {}  # the last line each venue's orders went out on
        self._numbers = itertools.count(1)
        self._up: set[tuple[str, LineRole]] = set()  # (venue, line) logged on
        self._probes: dict[str, Probe] = {}  # order key -> its question on its own line

    def configure(self, policy: LinePolicy) -> None:
        self.policies[policy.venue] = policy
        self.health[policy.venue] = LineHealth(policy)

    def policy(self, venue: str) -> LinePolicy:
        return self.policies.get(venue) or LinePolicy(venue)

    # -- events --------------------------------------------------------------------------

    def on_line_state(self, event: LineStateChanged) -> None:
        """A line changed: if the venue's orders now go out on another line than before, or
        on one that comes back after no line was up, or a reconciliation was cut short by
        the change, check them all on the line now active. (A line that comes back is asked
        too: the venue resends what we missed, but what we sent into a dying line is gone,
        since the gateway answers a venue's resend request with a gap fill, never an old
        order.)"""
        venue, active = event.venue, event.active
        if event.state is LineState.LOGGED_ON:
            self._up.add((venue, event.line))
        else:
            self._up.discard((venue, event.line))
        was = self.active.get(venue)
        self.active[venue] = active
        if active is None:
            return  # nothing can be asked; the next line up reconciles
        last = self._last.get(venue)
        self._last[venue] = active
        if (last is not None and (last is not active or was is None)) or venue in self.running:
            health = self.health.get(venue)
            if health is not None:
                health.switched()
            self._start(venue, active, event.recv_ns, event.text)
        if event.state is LineState.LOGGED_ON and event.line is not active:
            for order in self.desk.orders.working():
                if order.venue == venue and order.line is event.line and not order.acked:
                    self._probe(order, event.line, event.recv_ns)

    def on_execution(self, applied: Applied, event: ExecutionReceived) -> None:
        """After the OMS applied a (first-seen) report: answers, fills, acks and rejects."""
        order = applied.order
        if order is None:
            return
        venue = order.venue
        run = self.running.get(venue)
        if run is not None:
            if applied.fill is not None and not applied.fill.busted:
                run.fills += 1
            if applied.event is OrderEvent.ORDER_STATUS:
                self._answer(run, order, event)
        if applied.event is OrderEvent.ORDER_STATUS and order.key in self._probes:
            self._probe_answer(order, event)
        health = self.health.get(venue)
        if health is None:
            return
        advice = None
        if applied.event is OrderEvent.REJECTED:
            advice = health.reject(event.line, self.active.get(venue), event.recv_ns)
        elif applied.previous is OrdStatus.PENDING_NEW and applied.status is not (
            OrdStatus.PENDING_NEW
        ):
            latency = event.recv_ns - order.created_ns
            advice = health.ack(event.line, self.active.get(venue), latency, event.recv_ns)
        if advice is not None:
            self._advise(advice, event.recv_ns)

    # -- reconciliation --------------------------------------------------------------------

    def reconcile(self, venue: str, line: LineRole, cause_ns: int, why: str) -> int | None:
        """Ask after the venue's working orders on ``line`` now: for a gateway restarted
        from its receipts, whose orders went out before it knew of any line. The
        reconciliation's number (its end calls the desk's ``reconciled`` as after a
        switch), or None when nothing works there."""
        if not any(o.venue == venue for o in self.desk.orders.working()):
            return None
        self._last[venue] = line
        self._start(venue, line, cause_ns, why)
        run = self.running.get(venue)
        return None if run is None else run.number

    def _start(
        self, venue: str, line: LineRole, cause_ns: int, why: str | None, round_: int = 1
    ) -> None:
        desk = self.desk
        working = [o for o in desk.orders.working() if o.venue == venue]
        if not working and venue not in self.running:
            return  # nothing to check (a gateway starting, say): no receipts either
        now = desk.now()
        run = Reconciliation(venue, line, next(self._numbers), now, round_)
        self.running[venue] = run
        desk.reconciling.add(venue)
        desk.record(
            Receipt.of(
                "decision.reconcile",
                ts_ns=now,
                cause_ns=cause_ns,
                venue=venue,
                line=line.value,
                verdict="start",
                reason=(
                    f"orders now go out on the {line.value} line" + (f" ({why})" if why else "")
                    if round_ == 1
                    else f"round {round_}: the last round's status requests went unanswered"
                )
                + f": asking the venue after {len(working)} working order(s) before its "
                "pairs trade again",
                data={"orders": len(working), "reconciliation": run.number, "round": round_},
            )
        )
        for i, order in enumerate(working, 1):
            req_id = f"{venue}-R{run.number}-{i}"
            if self._ask(order, line, req_id, cause_ns, own_line=False):
                run.expect(order.key, req_id)
            else:
                run.unsent += 1
        if not working:
            self._finish(run, "done", cause_ns)
            return
        timeout = self.policy(venue).reconcile_timeout_ms
        desk.after(timeout * _MS, lambda: self._time_out(run))

    def _ask(
        self, order: Order, line: LineRole, req_id: str, cause_ns: int | None, *, own_line: bool
    ) -> bool:
        """Send one status request (on ``line`` itself when ``own_line``, else on the venue's
        active line) and its receipt: whether a line took it."""
        desk = self.desk
        request = StatusRequest(
            venue=order.venue,
            clordid=order.clordid,
            venue_order_id=order.venue_order_id,
            symbol=order.symbol,
            side=order.side,
            status_req_id=req_id,
            created_ns=desk.now(),
            cause_ns=cause_ns,
            line=line if own_line else None,
        )
        sent = desk.send_command(request)
        desk.record(
            Receipt.of(
                "command.status_request",
                ts_ns=desk.now(),
                cause_ns=cause_ns,
                venue=order.venue,
                line=line.value,
                symbol=order.symbol,
                clordid=order.clordid,
                venue_order_id=order.venue_order_id,
                pair_id=order.pair_id,
                verdict="sent" if sent else "not sent",
                data={"status_req_id": req_id, "ours": order.status.value, "own_line": own_line},
            )
        )
        return sent

    # -- an unacknowledged order asked after on the line it went out on -------------------

    def sent(self, order: Order) -> None:
        """A new order went out: if the venue has not answered it by the ack time-out, it
        is asked after on its line."""
        timeout = self.policy(order.venue).ack_timeout_ms
        self.desk.after(timeout * _MS, lambda: self._ack_overdue(order))

    def _ack_overdue(self, order: Order) -> None:
        line = order.line
        if _heard_of(order) or not order.working:
            return
        if line is None or order.key in self._probes or (order.venue, line) not in self._up:
            return  # asked already, or its line is down: its return asks after it
        self.desk.record(
            Receipt.of(
                "alert.unacknowledged",
                ts_ns=self.desk.now(),
                venue=order.venue,
                line=line.value,
                symbol=order.symbol,
                clordid=order.clordid,
                pair_id=order.pair_id,
                verdict="asking",
                reason=f"no answer from the venue {self.policy(order.venue).ack_timeout_ms} ms "
                f"after the order went out on the {line.value} line: asking after it there",
            )
        )
        self._probe(order, line, None)

    def _probe(self, order: Order, line: LineRole, cause_ns: int | None, round_: int = 1) -> None:
        """Ask after an unacknowledged order on its own line (up, but not the active one):
        only there can the venue's "unknown" mean that it never arrived. Asked again after
        the reconcile time-out while unanswered, as a reconciliation is."""
        if _heard_of(order) or not order.working:
            return
        probe = Probe(line, f"{order.venue}-Q{next(self._numbers)}", round_)
        if not self._ask(order, line, probe.req_id, cause_ns, own_line=True):
            return
        self._probes[order.key] = probe
        timeout = self.policy(order.venue).reconcile_timeout_ms
        self.desk.after(timeout * _MS, lambda: self._probe_time_out(order, probe))

    def _probe_answer(self, order: Order, event: ExecutionReceived) -> None:
        probe = self._probes[order.key]
        if event.line is not probe.line:
            return
        del self._probes[order.key]
        self._conclude(order, self._judged(order, event), probe.line, event)

    def _probe_time_out(self, order: Order, probe: Probe) -> None:
        if self._probes.get(order.key) is not probe:
            return  # answered, or asked again since
        del self._probes[order.key]
        if probe.round <= self.policy(order.venue).reconcile_retries and (
            (order.venue, probe.line) in self._up
        ):
            self._probe(order, probe.line, None, probe.round + 1)

    def _answer(self, run: Reconciliation, order: Order, event: ExecutionReceived) -> None:
        if order.key not in run.awaited or event.line is not run.line:
            # Only an answer on the new line comes after the reports the venue sends there.
            return
        verdict = self._judged(order, event)
        run.answer(order.key, verdict)
        self._conclude(order, verdict, run.line, event)
        if (
            verdict is Answer.UNKNOWN
            and order.line is not None
            and order.line is not run.line
            and (run.venue, order.line) in self._up
        ):
            self._probe(order, order.line, event.recv_ns)
        if run.complete:
            self._finish(run, "done", event.recv_ns)

    def _judged(self, order: Order, event: ExecutionReceived) -> Answer:
        """``judge`` of a status answer that came on ``event.line``."""
        return judge(
            order.status,
            order.fill_qty,
            event.ord_status,
            event.cum_qty,
            event.venue_order_id,
            across_lines=self.policy(order.venue).orders_across_lines,
            on_its_line=order.line is event.line,
            acked=_heard_of(order),
        )

    def _conclude(
        self, order: Order, verdict: Answer, line: LineRole, event: ExecutionReceived
    ) -> None:
        """What a status answer on ``line`` settles: an alert unless it agrees, and an order
        that never arrived is rejected here."""
        if verdict is not Answer.AGREES:
            if verdict is Answer.NEVER_ARRIVED:
                why = (
                    f"the venue does not know it on the {line.value} line: it was lost "
                    "with the line it went out on, and is rejected here"
                )
            else:
                why = (
                    f"the venue has it {event.ord_status.name} with {event.cum_qty} filled; "
                    f"we have it {order.status.name} with {order.fill_qty} filled"
                    + (
                        ": it may be held on the other line, whose reports settle it when "
                        "that line is back"
                        if verdict is Answer.UNKNOWN
                        else ": the venue's reports settle it; check with `cmc orders`"
                    )
                )
            self.desk.record(
                Receipt.of(
                    "alert.reconcile",
                    ts_ns=self.desk.now(),
                    cause_ns=event.recv_ns,
                    venue=order.venue,
                    line=line.value,
                    symbol=order.symbol,
                    clordid=order.clordid,
                    pair_id=order.pair_id,
                    verdict=verdict.value,
                    reason=why,
                )
            )
            if verdict is Answer.NEVER_ARRIVED:
                self.desk.order_gone(order, why, event.recv_ns)

    def _time_out(self, run: Reconciliation) -> None:
        if self.running.get(run.venue) is not run:
            return  # finished, or replaced by a later switch
        policy = self.policy(run.venue)
        still = [
            o
            for o in (self.desk.orders.by_key(k) for k in run.awaited)
            if o is not None and o.working
        ]
        line = self.active.get(run.venue)
        again = bool(still) and line is not None and run.round <= policy.reconcile_retries
        self.desk.record(
            Receipt.of(
                "alert.reconcile_timeout",
                ts_ns=self.desk.now(),
                venue=run.venue,
                line=run.line.value,
                verdict="timed_out",
                reason=f"{len(run.awaited) + run.unsent} of {run.orders + run.unsent} status "
                f"request(s) unanswered after {policy.reconcile_timeout_ms} ms"
                + (
                    f"; asking again (round {run.round + 1})"
                    if again
                    else "; the venue's pairs trade again; check the orders with "
                    "`cmc orders --working`"
                ),
                data={"unanswered": ",".join(run.awaited), "round": run.round},
            )
        )
        if again and line is not None:
            del self.running[run.venue]  # the venue stays reconciling: its pairs still wait
            self.finished = [*self.finished[-15:], run]
            self._start(run.venue, line, self.desk.now(), None, run.round + 1)
            return
        self._finish(run, "timed_out", None)

    def _finish(self, run: Reconciliation, verdict: str, cause_ns: int | None) -> None:
        desk = self.desk
        now = desk.now()
        del self.running[run.venue]
        desk.reconciling.discard(run.venue)
        self.finished = [*self.finished[-15:], run]
        figures = run.figures(now)
        desk.record(
            Receipt.of(
                "decision.reconcile",
                ts_ns=now,
                cause_ns=cause_ns,
                venue=run.venue,
                line=run.line.value,
                verdict=verdict,
                reason=f"{figures['answered']} of {figures['orders']} order(s) answered on the "
                f"{run.line.value} line ({figures['agrees']} as we had them, "
                f"{figures['never_arrived']} never arrived, {figures['differs']} differ, "
                f"{figures['unknown']} unknown), {run.fills} fill(s) learned",
                data={**figures, "reconciliation": run.number},
            )
        )
        desk.reconciled(run.venue, cause_ns)

    # -- health --------------------------------------------------------------------------

    def _advise(self, advice: SwitchAdvice, cause_ns: int) -> None:
        desk = self.desk
        sent = desk.send_command(
            SwitchLine(advice.venue, advice.away_from, advice.reason, desk.now(), cause_ns)
        )
        desk.record(
            Receipt.of(
                "decision.failover",
                ts_ns=desk.now(),
                cause_ns=cause_ns,
                venue=advice.venue,
                line=advice.away_from.value,
                verdict=advice.rule,
                reason=advice.reason
                + ("" if sent else "; the request could not reach the sessions"),
                data=dict(advice.figures),
            )
        )
