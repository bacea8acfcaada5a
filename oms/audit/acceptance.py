"""The acceptance figures: what the product guide promises, measured from one run's receipts.

The guide states its figures for a running system (market data within 30 ms, 97 % of
spread trades completed, top-ups within 50 ms...). Before a gateway is accepted, each is
measured from the receipts of a trial run, and each is judged: *met*, *not met*, or *not
exercised* when the run did nothing that measures it (no failover happened, no top-up was
needed), since a figure nothing put to the test has not been shown to hold.

Everything here is pure: receipts in, :class:`Figure` values out. The receipts come one
at a time in ``seq`` order (:meth:`Measurer.add_row` takes the store's scan rows,
:meth:`Measurer.add` a :class:`Receipt`), and what is kept is a few integers per receipt
(its seq, a latency) and per order sent, never the receipts themselves. Latencies are
integer ns; shares are exact fractions (numerator and denominator), judged exactly against
their bound.

Each figure's :attr:`Figure.definition` is the sentence that says what was measured and
from which receipts: the report prints it beside the verdict, so a reader can check the
figure against the trail without reading this code.
"""

from __future__ import annotations

import json
import math
from array import array
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Final, Literal

from oms.receipts import Receipt

MS: Final = 1_000_000
S: Final = 1_000_000_000

Verdict = Literal["met", "not met", "not exercised"]

SUCCESS_OUTCOMES: Final = frozenset({"filled", "topped_up"})
"""How a spread trade ends when both legs filled what it asked (``decision.pair_done``)."""
REPAIR_PURPOSES: Final = frozenset({"top_up", "unwind"})
"""``command.send_order`` purposes that answer a leg gone wrong."""
TRADE_DECISIONS: Final = frozenset(
    {
        "decision.spread_intent",
        "decision.repair",
        "decision.top_up",
        "decision.unwind",
        "decision.hedge",
    }
)
"""The decisions that make a spread trade send orders, under its pair id."""
RECONCILE_END: Final = frozenset({"done", "timed_out"})
TRIGGER_WINDOW_NS: Final = 5 * S
PAPER_FAMILY: Final = "shadow"
"""Receipts of the shadow stage's paper orders and trades (``shadow.<kind>``): never real, so
left out of every figure, and counted for the report's stage line."""
STAGE_KINDS: Final = frozenset({"stage.start", "operator.stage"})
"""The stage a gateway started in, and each operator's change of it (verdict: the stage)."""
"""How long after the event that caused it an order's receipt can come (as ``cmc audit
trace`` looks back)."""


@dataclass(frozen=True, slots=True)
class Promise:
    """One figure of the product guide and how it is judged."""

    id: str
    title: str
    promise: str  # as the guide says it
    kind: Literal["latency", "share_min", "share_max", "duration"]
    bound: Fraction  # ns for latencies and durations; a fraction of 1 for shares
    definition: str


PROMISES: Final = (
    Promise(
        "market_data_sync",
        "market data sync latency",
        "≤ 30 ms",
        "latency",
        Fraction(30 * MS),
        "For every market data message applied to a venue's books (event.market_data), the "
        "time from the venue's SendingTime(52) (data.sending_ns) to the receipt (ts_ns): "
        "from the venue stamping a quote to the book holding it beside the other venue's. "
        "Met when the p99 is within 30 ms. The venue's clock is taken as it stamps: a venue "
        "whose clock runs apart from ours shifts this figure by the difference.",
    ),
    Promise(
        "execution_success",
        "synchronised-execution success",
        "≥ 97 %",
        "share_min",
        Fraction(97, 100),
        "Of the spread trades that ended in the range (decision.pair_done), the share whose "
        "outcome is filled or topped_up: both legs traded what the trade asked, at once or "
        "after a top-up. Unwound, partial and missed trades count against it; trades still "
        "working when the range ends are left out.",
    ),
    Promise(
        "top_up_cancel",
        "top-up / cancel time",
        "≤ 50 ms",
        "latency",
        Fraction(50 * MS),
        "For every top-up or unwind order (command.send_order with purpose top_up or "
        "unwind) and every cancel of a spread trade's order made in answer to a venue "
        "report (command.cancel_order with a pair id and a cause), the time from the "
        "receipt of the report that left a leg short (its cause_ns) to the order or cancel "
        "going out (latency_ns). Met when the p99 is within 50 ms.",
    ),
    Promise(
        "risk_exposure",
        "risk exposure",
        "≤ 5 %",
        "share_max",
        Fraction(5, 100),
        "For every spread trade that ended (decision.pair_done), the imbalance its legs "
        "were left with (data.imbalance_inner_lots: inner lots not matched by the outer leg "
        "in ratio) as a share of the inner lots the trade asked for (its "
        "decision.spread_intent's data.inner_qty). Met when the worst trade is within 5 %. "
        "The imbalance held while a top-up or unwind was being decided (decision.top_up / "
        "decision.unwind data.imbalance_inner_lots) and the peak with legs in flight "
        "(data.peak_imbalance_inner_lots) are shown beside it: they last milliseconds, "
        "until the repair fills.",
    ),
    Promise(
        "risk_response",
        "risk response",
        "≤ 50 ms",
        "latency",
        Fraction(50 * MS),
        "For every risk verdict with a cause (decision.risk: a spread trade, an order, a "
        "cancel or a replace passed or refused), the time from the event that called for it "
        "(market data, a venue report, a client's request: cause_ns) to the verdict "
        "(latency_ns). Met when the p99 is within 50 ms; refusals and trading-state changes "
        "(risk.state, risk.kill) are counted beside it.",
    ),
    Promise(
        "failover_time",
        "abnormal channel handled (failover time)",
        "≤ 100 ms",
        "latency",
        Fraction(100 * MS),
        "For every line that failed while it carried a venue's orders (event.line_state "
        "whose reason says 'failover to the ... line', or 'failover: ' after the OMS "
        "advised it, decision.failover), the time from the OMS learning of the fault (the "
        "line state's cause_ns, or the advice's) to orders flowing again on the other line: "
        "the end of the reconciliation the switch started (decision.reconcile done or "
        "timed_out), or the line state's own receipt when no order was working to reconcile. "
        "Met when the p99 is within 100 ms.",
    ),
    Promise(
        "switch_success",
        "line switch success",
        "≥ 99.9 %",
        "share_min",
        Fraction(999, 1000),
        "Of every switch of a venue's active line from one line to the other "
        "(event.line_state data.active; moved by a fault, the OMS's advice, a failback or an "
        "operator: the line state gives a reason, or the active line logged out; the "
        "primary logging on after the backup when the gateway starts is no switch), plus "
        "every loss of the active line with no other line to "
        "take over (active none, the gateway still running: a line logs on again later in "
        "the range), the share that reached the other line and whose reconciliation ended "
        "with every working order answered (decision.reconcile done, or none needed).",
    ),
    Promise(
        "receipt_coverage",
        "receipt coverage",
        "100 %",
        "share_min",
        Fraction(1),
        "Of the FIX messages that the reconciliations of the range with quickfix's message "
        "log compared (audit.reconcile, recorded when the gateway next starts: data.matched "
        "and data.unreceipted), the share that had their receipt. A message found without "
        "one is recorded then as fix.unrecorded. Not exercised while no reconciliation "
        "covers the range.",
    ),
    Promise(
        "traceability",
        "traceability",
        "100 %",
        "share_min",
        Fraction(1),
        "Of every order sent (command.send_order, sent) and every venue report "
        "(event.execution), the share whose chain is whole in the range: an order of a "
        "spread trade has its trade's decisions (decision.spread_intent, top_up, unwind, "
        "hedge, repair) under its pair id, the first of them caused by an event receipt "
        "(market data, a report, a client's request: same cause_ns), and a venue's answer; "
        "any other order has its causing event and an answer; a report names a ClOrdID "
        "that one of our commands sent.",
    ),
    Promise(
        "audit_report_time",
        "audit report time",
        "≤ 2 min",
        "duration",
        Fraction(120 * S),
        "The time this report took to read every receipt of the range from the store and "
        "work out every figure above, timed by the command that made it: the whole of an "
        "audit over the range. Met within 2 minutes.",
    ),
)
PROMISE_BY_ID: Final = {p.id: p for p in PROMISES}


@dataclass(frozen=True)
class Figure:
    """One row of the report: a promise, what was measured, and the verdict."""

    promise: Promise
    verdict: Verdict
    count: int  # samples measured (latencies, trades, switches, messages, links)
    summary: str  # the measured figure in words: "p99 3.2 ms", "31 of 32 (96.9 %)"
    detail: str  # what else the receipts say about it
    numerator: int | None = None  # shares: what met the promise ...
    denominator: int | None = None  # ... of how many
    p50_ns: int | None = None  # latencies and durations
    p99_ns: int | None = None
    max_ns: int | None = None
    worst: Fraction | None = None  # share_max: the worst share found
    samples: Sequence[int] = ()  # latencies (ns) for the plots
    shares: Sequence[Fraction] = ()  # share_max: one per trade, for the plots
    held_shares: Sequence[Fraction] = ()  # risk exposure: held while repairing, per trade
    breakdown: Mapping[str, int] = field(default_factory=dict)  # counts by category

    @property
    def value(self) -> float | None:
        """The headline: a latency's p99 in ms, a share in percent."""
        p = self.promise
        if p.kind in ("latency", "duration"):
            return None if self.p99_ns is None else self.p99_ns / MS
        if p.kind == "share_max":
            return None if self.worst is None else float(self.worst * 100)
        if not self.denominator:
            return None
        return float(Fraction(self.numerator or 0, self.denominator) * 100)

    def as_json(self) -> dict[str, Any]:
        p = self.promise
        unit = "ms" if p.kind in ("latency", "duration") else "%"
        bound = p.bound / MS if unit == "ms" else p.bound * 100
        return {
            "id": p.id,
            "figure": p.title,
            "promise": p.promise,
            "bound": float(bound),
            "unit": unit,
            "verdict": self.verdict,
            "value": None if self.value is None else round(self.value, 6),
            "summary": self.summary,
            "count": self.count,
            "numerator": self.numerator,
            "denominator": self.denominator,
            "p50_ns": self.p50_ns,
            "p99_ns": self.p99_ns,
            "max_ns": self.max_ns,
            "p50_ms": None if self.p50_ns is None else self.p50_ns / MS,
            "p99_ms": None if self.p99_ns is None else self.p99_ns / MS,
            "max_ms": None if self.max_ns is None else self.max_ns / MS,
            "definition": p.definition,
            "detail": self.detail,
        }


def percentile(ordered: Sequence[int], q: float) -> int:
    """Nearest rank: the smallest value with at least ``q`` % of ``ordered`` at or below it."""
    if not ordered:
        raise ValueError("no values")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return int(ordered[min(rank, len(ordered)) - 1])


def _ms(ns: int) -> str:
    return f"{ns / MS:,.3f} ms"


def _pct(share: Fraction) -> str:
    return f"{float(share * 100):.2f} %".replace(".00 %", " %")


def _lots(value: object) -> Fraction | None:
    """A Decimal-as-string quantity of lots, exactly, or None."""
    if value is None:
        return None
    try:
        return abs(Fraction(Decimal(str(value))))
    except (InvalidOperation, ValueError):
        return None


@dataclass
class _Episode:
    """A switch of a venue's active line, followed until orders flow on the new line."""

    venue: str
    cause_ns: int  # when the OMS learnt of it (or of the advice that asked for it)
    line_cause_ns: int  # the line state's own cause: its reconciliation names it
    end_ns: int  # the line state's receipt, unless a reconciliation follows
    abnormal: bool
    switch: bool  # counted in the switch success (the active line moved)
    reached: bool  # a line took over
    awaiting: bool = False  # a reconciliation started for it and has not ended yet
    ok: bool = True


@dataclass
class _Order:
    pair_id: str | None
    cause_ns: int | None
    cause_found: bool
    answered: bool = False


@dataclass
class Measurer:
    """Receipts in (``seq`` order), :class:`Figure` values out (:meth:`figures`)."""

    receipts: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    first_ns: int | None = None
    last_ns: int | None = None
    kinds: Counter[str] = field(default_factory=Counter)
    _seqs: array[int] = field(default_factory=lambda: array("q"))
    # market data
    _md: array[int] = field(default_factory=lambda: array("q"))
    _md_by_venue: dict[str, array[int]] = field(default_factory=dict)
    # spread trades
    _intent_qty: dict[str, int] = field(default_factory=dict)
    _outcomes: dict[str, str] = field(default_factory=dict)
    _residual: dict[str, Fraction] = field(default_factory=dict)
    _held: dict[str, Fraction] = field(default_factory=dict)
    _peak: dict[str, Fraction] = field(default_factory=dict)
    _fault_to_balanced: array[int] = field(default_factory=lambda: array("q"))
    _rounds: Counter[str] = field(default_factory=Counter)
    _repairs: array[int] = field(default_factory=lambda: array("q"))
    # risk
    _risk: array[int] = field(default_factory=lambda: array("q"))
    _refused: Counter[str] = field(default_factory=Counter)
    _risk_checks: int = 0
    # lines
    _active: dict[str, str | None] = field(default_factory=dict)
    _advice: dict[str, int] = field(default_factory=dict)  # venue -> cause_ns of its advice
    _episodes: list[_Episode] = field(default_factory=list)
    _pending_loss: dict[str, int] = field(default_factory=dict)  # venue -> cause_ns
    _failed_losses: int = 0
    _advices: int = 0
    # coverage
    _reconciliations: dict[int, Mapping[str, Any]] = field(default_factory=dict)
    _unrecorded: int = 0
    # stages: what the range ran in, and the paper it holds
    _stages: list[str] = field(default_factory=list)
    paper_receipts: int = 0
    paper_trades: int = 0
    # traceability
    _orders: dict[str, _Order] = field(default_factory=dict)
    _commanded: set[str] = field(default_factory=set)
    _reports: int = 0
    _reports_unmatched: int = 0
    _trade_root: dict[str, tuple[int | None, bool]] = field(default_factory=dict)
    _recent: deque[tuple[int, int]] = field(default_factory=deque)  # (ts_ns, cause_ns)
    _recent_causes: Counter[int] = field(default_factory=Counter)
    _wanted: dict[int, list[Any]] = field(default_factory=dict)  # cause_ns -> waiting

    # -- input -------------------------------------------------------------------------------

    def add_row(self, r: Sequence[Any]) -> None:
        """One ``ReceiptStore.scan`` / ``scan_tuples`` row (id, then ROW_COLUMNS); ``data``
        is parsed only for the kinds whose figures read it."""
        kind = r[2]
        text = r[16]
        data = json.loads(text) if kind in _DATA_KINDS and text else {}
        self._take(r[1], kind, r[3], r[4], r[5], r[6], r[7], r[9], r[12], r[13], r[14], data)

    def add(self, seq: int, receipt: Receipt) -> None:
        r = receipt
        self._take(
            seq,
            r.kind,
            r.ts_ns,
            r.cause_ns,
            r.latency_ns,
            r.venue,
            r.line,
            r.clordid,
            r.pair_id,
            r.verdict,
            r.reason,
            r.data,
        )

    def add_reconciliation(self, seq: int, data: Mapping[str, Any]) -> None:
        """An ``audit.reconcile`` receipt from outside the range (the next start's, which
        compared the range's messages with the FIX log)."""
        self._reconciliations[seq] = data

    def _take(
        self,
        seq: int,
        kind: str,
        ts_ns: int,
        cause_ns: int | None,
        latency_ns: int | None,
        venue: str | None,
        line: str | None,
        clordid: str | None,
        pair_id: str | None,
        verdict: str | None,
        reason: str | None,
        data: Mapping[str, Any],
    ) -> None:
        self.receipts += 1
        if self.first_seq is None:
            self.first_seq, self.first_ns = seq, ts_ns
        self.last_seq, self.last_ns = seq, ts_ns
        self._seqs.append(seq)
        self.kinds[kind] += 1
        family = kind.partition(".")[0]
        if family == "event":
            self._event(kind, ts_ns, cause_ns, venue, line, clordid, verdict, reason, data)
        elif kind == "command.send_order":
            self._send_order(ts_ns, cause_ns, latency_ns, clordid, pair_id, verdict, data)
        elif family == "command":
            if clordid is not None:
                self._commanded.add(clordid)
            if kind == "command.cancel_order" and pair_id is not None and latency_ns is not None:
                self._repairs.append(latency_ns)
        elif family == "decision":
            self._decision(kind, ts_ns, cause_ns, latency_ns, venue, pair_id, verdict, data)
        elif kind in ("risk.state", "risk.kill"):
            self._rounds[kind] += 1
        elif kind == "audit.reconcile":
            self._reconciliations[seq] = data
        elif kind == "fix.unrecorded":
            self._unrecorded += 1
        elif family == PAPER_FAMILY:
            self.paper_receipts += 1
            if kind == "shadow.decision.pair_done":
                self.paper_trades += 1
        elif kind in STAGE_KINDS and verdict and (not self._stages or self._stages[-1] != verdict):
            self._stages.append(verdict)

    def _event(
        self,
        kind: str,
        ts_ns: int,
        cause_ns: int | None,
        venue: str | None,
        line: str | None,
        clordid: str | None,
        verdict: str | None,
        reason: str | None,
        data: Mapping[str, Any],
    ) -> None:
        if cause_ns is not None:
            self._saw_cause(ts_ns, cause_ns)
        if kind == "event.market_data":
            sending = data.get("sending_ns")
            if isinstance(sending, int):
                age = ts_ns - sending
                self._md.append(age)
                if venue is not None:
                    self._md_by_venue.setdefault(venue, array("q")).append(age)
        elif kind == "event.execution":
            self._reports += 1
            order = self._orders.get(clordid) if clordid is not None else None
            if order is not None:
                order.answered = True
            elif clordid is None or clordid not in self._commanded:
                self._reports_unmatched += 1
        elif kind == "event.line_state" and venue is not None:
            self._line_state(ts_ns, cause_ns, venue, line, verdict, reason, data)

    def _saw_cause(self, ts_ns: int, cause_ns: int) -> None:
        """An event receipt: what it caused can be traced to it."""
        waiting = self._wanted.pop(cause_ns, None)
        if waiting is not None:
            for thing in waiting:
                if isinstance(thing, _Order):
                    thing.cause_found = True
                else:
                    cause, _ = self._trade_root[thing]
                    self._trade_root[thing] = (cause, True)
        recent = self._recent
        recent.append((ts_ns, cause_ns))
        self._recent_causes[cause_ns] += 1
        while recent and recent[0][0] < ts_ns - TRIGGER_WINDOW_NS:
            _, old = recent.popleft()
            left = self._recent_causes[old] - 1
            if left:
                self._recent_causes[old] = left
            else:
                del self._recent_causes[old]

    def _cause_seen(self, cause_ns: int | None, thing: Any) -> bool:
        """Whether an event receipt with ``cause_ns`` came already; if not, ``thing`` waits
        for one (a receipt can follow what it caused by a little)."""
        if cause_ns is None:
            return False
        if cause_ns in self._recent_causes:
            return True
        self._wanted.setdefault(cause_ns, []).append(thing)
        return False

    def _send_order(
        self,
        ts_ns: int,
        cause_ns: int | None,
        latency_ns: int | None,
        clordid: str | None,
        pair_id: str | None,
        verdict: str | None,
        data: Mapping[str, Any],
    ) -> None:
        if clordid is not None:
            self._commanded.add(clordid)
        if data.get("purpose") in REPAIR_PURPOSES and latency_ns is not None:
            self._repairs.append(latency_ns)
        if verdict != "sent" or clordid is None:
            return
        order = _Order(pair_id, cause_ns, False)
        if pair_id is None:
            order.cause_found = self._cause_seen(cause_ns, order)
        self._orders[clordid] = order

    def _decision(
        self,
        kind: str,
        ts_ns: int,
        cause_ns: int | None,
        latency_ns: int | None,
        venue: str | None,
        pair_id: str | None,
        verdict: str | None,
        data: Mapping[str, Any],
    ) -> None:
        if pair_id is not None and kind in TRADE_DECISIONS and pair_id not in self._trade_root:
            self._trade_root[pair_id] = (cause_ns, False)
            if self._cause_seen(cause_ns, pair_id):
                self._trade_root[pair_id] = (cause_ns, True)
        if kind == "decision.spread_intent" and pair_id is not None:
            qty = data.get("inner_qty")
            if isinstance(qty, int) and qty > 0:
                self._intent_qty[pair_id] = qty
        elif kind == "decision.pair_done" and pair_id is not None and verdict is not None:
            self._outcomes[pair_id] = verdict
            residual = _lots(data.get("imbalance_inner_lots"))
            if residual is not None:
                self._residual[pair_id] = residual
            peak = _lots(data.get("peak_imbalance_inner_lots"))
            if peak is not None:
                self._peak[pair_id] = peak
            waited = data.get("fault_to_balanced_ns")
            if isinstance(waited, int):
                self._fault_to_balanced.append(waited)
        elif kind in ("decision.top_up", "decision.unwind") and pair_id is not None:
            self._rounds[kind] += 1
            held = _lots(data.get("imbalance_inner_lots"))
            if held is not None and held > self._held.get(pair_id, Fraction(0)):
                self._held[pair_id] = held
        elif kind == "decision.risk":
            self._risk_checks += 1
            if latency_ns is not None:
                self._risk.append(latency_ns)
            if verdict == "refused":
                check = data.get("check")
                self._refused[str(check) if check is not None else "?"] += 1
        elif kind == "decision.failover" and venue is not None:
            self._advices += 1
            if cause_ns is not None:
                self._advice[venue] = cause_ns
        elif kind == "decision.reconcile" and venue is not None:
            if verdict == "start":
                for episode in self._episodes:
                    if episode.venue == venue and episode.line_cause_ns == cause_ns:
                        episode.awaiting = True
            elif verdict in RECONCILE_END:
                for episode in self._episodes:
                    if episode.venue == venue and episode.awaiting:
                        episode.awaiting = False
                        episode.end_ns = ts_ns
                        episode.ok = verdict == "done"

    def _line_state(
        self,
        ts_ns: int,
        cause_ns: int | None,
        venue: str,
        line: str | None,
        verdict: str | None,
        reason: str | None,
        data: Mapping[str, Any],
    ) -> None:
        before = self._active.get(venue)
        after = data.get("active")
        after = after if isinstance(after, str) else None
        self._active[venue] = after
        text = reason or ""
        if verdict == "logged_on" and venue in self._pending_loss:
            # A line is back while the gateway runs: the earlier loss had no line to go to.
            del self._pending_loss[venue]
            self._failed_losses += 1
        abnormal = ": failover to the " in text or text.startswith("failover: ")
        # A move with no reason and no line lost is the preferred line logging on (the
        # backup may log on first when the gateway starts): no switch was asked for.
        moved = (
            before is not None
            and after is not None
            and after != before
            and (bool(text) or (verdict == "logged_out" and line == before))
        )
        if before is not None and after is None and verdict == "logged_out" and line == before:
            if cause_ns is not None:
                self._pending_loss[venue] = cause_ns
            return
        if not (moved or abnormal) or cause_ns is None:
            return
        start = cause_ns
        if text.startswith("failover: ") and venue in self._advice:
            start = min(start, self._advice.pop(venue))
        self._episodes.append(
            _Episode(venue, start, cause_ns, ts_ns, abnormal, moved, after is not None)
        )

    # -- output ------------------------------------------------------------------------------

    def figures(self, *, report_ns: int | None = None) -> list[Figure]:
        """Every promise's figure, in :data:`PROMISES` order. ``report_ns`` is how long
        the caller took to read the range and measure it (the audit report's time)."""
        return [
            self._market_data(),
            self._execution(),
            self._top_up(),
            self._exposure(),
            self._risk_response(),
            self._failover(),
            self._switches(),
            self._coverage(),
            self._traceability(),
            self._report_time(report_ns),
        ]

    def _latency(self, promise_id: str, values: Iterable[int], detail: str) -> Figure:
        promise = PROMISE_BY_ID[promise_id]
        ordered = sorted(values)
        if not ordered:
            return Figure(promise, "not exercised", 0, "nothing measured", detail)
        p50, p99 = percentile(ordered, 50), percentile(ordered, 99)
        verdict: Verdict = "met" if p99 <= promise.bound else "not met"
        return Figure(
            promise,
            verdict,
            len(ordered),
            f"p99 {_ms(p99)} (p50 {_ms(p50)}, max {_ms(ordered[-1])}) over {len(ordered):,}",
            detail,
            p50_ns=p50,
            p99_ns=p99,
            max_ns=ordered[-1],
            samples=ordered,
        )

    def _share(self, promise_id: str, good: int, total: int, detail: str) -> Figure:
        promise = PROMISE_BY_ID[promise_id]
        if total == 0:
            return Figure(promise, "not exercised", 0, "nothing measured", detail, good, total)
        share = Fraction(good, total)
        verdict: Verdict = "met" if share >= promise.bound else "not met"
        return Figure(
            promise, verdict, total, f"{good:,} of {total:,} ({_pct(share)})", detail, good, total
        )

    def _market_data(self) -> Figure:
        parts = []
        for venue, ages in sorted(self._md_by_venue.items()):
            ordered = sorted(ages)
            parts.append(
                f"{venue}: {len(ordered):,} message(s), p50 {_ms(percentile(ordered, 50))}, "
                f"p99 {_ms(percentile(ordered, 99))}"
            )
        detail = "; ".join(parts) if parts else "no market data applied in the range"
        return self._latency("market_data_sync", self._md, detail)

    @property
    def stages(self) -> list[str]:
        """The stages the range ran in, in order (``shadow`` too when paper receipts show it
        though no stage receipt is in the range)."""
        stages = list(self._stages)
        if self.paper_receipts and "shadow" not in stages:
            stages.append("shadow")
        return stages

    def stage_line(self) -> str:
        """What the report says of the stages: paper is never measured as real."""
        stages = self.stages
        if not stages:
            return "stage: no stage receipt in the range (live, unless a stage was set before it)"
        text = "stage: " + " -> ".join(stages)
        if self.paper_receipts:
            text += (
                f"; {self.paper_receipts:,} paper (shadow) receipt(s), {self.paper_trades:,} paper "
                "spread trade(s), left out of every figure"
            )
        elif stages == ["live"]:
            text += " (real orders only)"
        return text

    def _execution(self) -> Figure:
        outcomes = Counter(self._outcomes.values())
        good = sum(n for outcome, n in outcomes.items() if outcome in SUCCESS_OUTCOMES)
        working = len(set(self._intent_qty) - set(self._outcomes))
        detail = ", ".join(f"{n:,} {outcome}" for outcome, n in sorted(outcomes.items()))
        if not detail:
            detail = "no spread trade ended in the range"
        if working:
            detail += f"; {working:,} trade(s) had not ended by the range's end (left out)"
        if self.paper_trades:
            detail += f"; {self.paper_trades:,} paper (shadow) trade(s) left out"
        figure = self._share("execution_success", good, len(self._outcomes), detail)
        return replace(figure, breakdown=dict(sorted(outcomes.items())))

    def _top_up(self) -> Figure:
        faults = sorted(self._fault_to_balanced)
        detail = (
            f"{self._rounds['decision.top_up']:,} top-up round(s), "
            f"{self._rounds['decision.unwind']:,} unwind round(s)"
        )
        if faults:
            detail += (
                f"; first fault to pair balanced (decision.pair_done data."
                f"fault_to_balanced_ns): p50 {_ms(percentile(faults, 50))}, "
                f"p99 {_ms(percentile(faults, 99))} over {len(faults):,} trade(s)"
            )
        return self._latency("top_up_cancel", self._repairs, detail)

    def _exposure(self) -> Figure:
        promise = PROMISE_BY_ID["risk_exposure"]
        shares: list[Fraction] = []
        held: list[Fraction] = []
        peak: list[Fraction] = []
        unsized = 0
        for pair_id in self._outcomes:
            qty = self._intent_qty.get(pair_id)
            if not qty:
                unsized += 1
                continue
            shares.append(self._residual.get(pair_id, Fraction(0)) / qty)
            held.append(self._held.get(pair_id, Fraction(0)) / qty)
            peak.append(self._peak.get(pair_id, Fraction(0)) / qty)
        parts = []
        if held:
            parts.append(
                f"held while a repair was decided: worst {_pct(max(held))} of its trade "
                f"({sum(1 for h in held if h):,} trade(s) held any)"
            )
            parts.append(f"peak with legs in flight: worst {_pct(max(peak))}")
        if unsized:
            parts.append(f"{unsized:,} trade(s) without an intent in the range (left out)")
        detail = "; ".join(parts) if parts else "no spread trade ended in the range"
        if not shares:
            return Figure(promise, "not exercised", 0, "nothing measured", detail)
        worst = max(shares)
        ordered = sorted(shares)
        verdict: Verdict = "met" if worst <= promise.bound else "not met"
        return Figure(
            promise,
            verdict,
            len(shares),
            f"worst {_pct(worst)} (p50 {_pct(ordered[math.ceil(len(ordered) / 2) - 1])}) "
            f"over {len(shares):,} trade(s)",
            detail,
            worst=worst,
            shares=shares,
            held_shares=held,
        )

    def _risk_response(self) -> Figure:
        refused = sum(self._refused.values())
        by_check = ", ".join(
            f"{check} {n:,}" for check, n in sorted(self._refused.items()) if n and check
        )
        detail = (
            f"{self._risk_checks:,} verdict(s), {refused:,} refused"
            + (f" ({by_check})" if by_check else "")
            + f"; {self._rounds['risk.state']:,} trading-state change(s), "
            f"{self._rounds['risk.kill']:,} kill(s)"
        )
        return self._latency("risk_response", self._risk, detail)

    def _failover(self) -> Figure:
        episodes = [e for e in self._episodes if e.abnormal]
        finished = [e for e in episodes if not e.awaiting]
        detail = (
            f"{len(episodes):,} line fault(s) moved to the other line, "
            f"{self._advices:,} switch advice(s) from the OMS (decision.failover)"
        )
        unfinished = len(episodes) - len(finished)
        if unfinished:
            detail += f"; {unfinished:,} reconciliation(s) not ended by the range's end"
        return self._latency("failover_time", (e.end_ns - e.cause_ns for e in finished), detail)

    def _switches(self) -> Figure:
        switches = [e for e in self._episodes if e.switch]
        good = sum(1 for e in switches if e.reached and e.ok and not e.awaiting)
        total = len(switches) + self._failed_losses
        detail = (
            f"{len(switches):,} switch(es) between lines, {self._failed_losses:,} loss(es) of "
            "the active line with no line to take over"
        )
        timed_out = sum(1 for e in switches if not e.ok)
        if timed_out:
            detail += f"; {timed_out:,} reconciliation(s) timed out"
        return self._share("switch_success", good, total, detail)

    def _coverage(self) -> Figure:
        first, last = self.first_seq, self.last_seq
        covering = (
            {
                seq: data
                for seq, data in self._reconciliations.items()
                if isinstance(data.get("after_seq"), int)
                and data["after_seq"] < last
                and seq > first
            }
            if first is not None and last is not None
            else {}
        )
        matched = sum(int(d.get("matched") or 0) for d in covering.values())
        unreceipted = sum(int(d.get("unreceipted") or 0) for d in covering.values())
        unlogged = sum(int(d.get("unlogged") or 0) for d in covering.values())
        if not covering:
            detail = (
                "no reconciliation with the FIX log covers the range yet: the gateway makes "
                "one when it next starts (`cmc audit reconcile` checks without recording)"
            )
            if self._unrecorded:
                detail += f"; {self._unrecorded:,} fix.unrecorded receipt(s) in the range"
            return self._share("receipt_coverage", 0, 0, detail)
        low = min(int(d["after_seq"]) for d in covering.values()) + 1
        high = max(covering) - 1
        inside = bisect_right(self._seqs, high) - bisect_right(self._seqs, low - 1)
        detail = (
            f"reconciled seq {low:,} to {high:,} ({inside:,} of the range's "
            f"{self.receipts:,} receipts); {unreceipted:,} message(s) logged without a "
            f"receipt, {unlogged:,} receipt(s) without a logged message; "
            f"{self._unrecorded:,} fix.unrecorded receipt(s) in the range"
        )
        return self._share("receipt_coverage", matched, matched + unreceipted, detail)

    def _traceability(self) -> Figure:
        traced = 0
        no_cause = no_answer = 0
        for order in self._orders.values():
            if order.pair_id is not None:
                root = self._trade_root.get(order.pair_id)
                caused = root is not None and root[1]
            else:
                caused = order.cause_found
            if not caused:
                no_cause += 1
            if not order.answered:
                no_answer += 1
            if caused and order.answered:
                traced += 1
        reports_ok = self._reports - self._reports_unmatched
        total = len(self._orders) + self._reports
        detail = (
            f"{len(self._orders):,} order(s) sent, {self._reports:,} venue report(s); "
            f"{no_cause:,} order(s) without their cause, {no_answer:,} without an answer, "
            f"{self._reports_unmatched:,} report(s) for no order of ours"
        )
        return self._share("traceability", traced + reports_ok, total, detail)

    def _report_time(self, report_ns: int | None) -> Figure:
        detail = f"{self.receipts:,} receipt(s) read"
        if report_ns is None:
            return Figure(
                PROMISE_BY_ID["audit_report_time"], "not exercised", 0, "not timed", detail
            )
        promise = PROMISE_BY_ID["audit_report_time"]
        verdict: Verdict = "met" if report_ns <= promise.bound else "not met"
        return Figure(
            promise,
            verdict,
            1,
            f"{report_ns / S:,.2f} s",
            detail,
            p50_ns=report_ns,
            p99_ns=report_ns,
            max_ns=report_ns,
        )


_DATA_KINDS: Final = frozenset(
    {
        "event.market_data",
        "event.line_state",
        "command.send_order",
        "decision.spread_intent",
        "decision.pair_done",
        "decision.top_up",
        "decision.unwind",
        "decision.risk",
        "audit.reconcile",
    }
)
"""The kinds whose ``data`` some figure reads."""


def measure(
    receipts: Iterable[tuple[int, Receipt]],
    *,
    reconciliations: Iterable[tuple[int, Mapping[str, Any]]] = (),
    report_ns: int | None = None,
) -> list[Figure]:
    """Every figure from ``(seq, receipt)`` pairs in ``seq`` order; ``reconciliations`` are
    ``audit.reconcile`` receipts' ``(seq, data)`` from after the range."""
    m = Measurer()
    for seq, data in reconciliations:
        m.add_reconciliation(seq, data)
    for seq, receipt in receipts:
        m.add(seq, receipt)
    return m.figures(report_ns=report_ns)


def report_json(
    figures: Sequence[Figure], measurer: Measurer, *, store: str, selection: str, generated_ns: int
) -> dict[str, Any]:
    """The report as one JSON object: where it comes from, then one row per promise."""
    from oms.audit.timerange import utc_text

    verdicts = Counter(f.verdict for f in figures)
    return {
        "title": "acceptance report",
        "store": store,
        "selection": selection,
        "generated_utc": utc_text(generated_ns),
        "receipts": measurer.receipts,
        "first_utc": None if measurer.first_ns is None else utc_text(measurer.first_ns),
        "last_utc": None if measurer.last_ns is None else utc_text(measurer.last_ns),
        "first_seq": measurer.first_seq,
        "last_seq": measurer.last_seq,
        "stage": {
            "stages": measurer.stages,
            "paper_receipts": measurer.paper_receipts,
            "paper_trades": measurer.paper_trades,
            "line": measurer.stage_line(),
        },
        "summary": {
            "met": verdicts["met"],
            "not_met": verdicts["not met"],
            "not_exercised": verdicts["not exercised"],
        },
        "rows": [f.as_json() for f in figures],
    }
