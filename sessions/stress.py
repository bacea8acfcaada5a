"""The stress test of a running gateway: client orders at rising rates until a bound breaks.

Synthetic clients log on to the gateway's client acceptor, as an institution's FIX engine
would, and send limit IOC orders at a paced rate for a fixed time per step: 50 orders a
second, then 100, 200... Each order is timed from its send to the first execution report
that answers it (the acknowledgement, or the reject), on the client's own clock: the round
trip a client sees, through the acceptor, the OMS, risk, the venue and back. A step
*breaks* when its p99 round trip passes the bound, or when the share of orders rejected or
left unanswered passes its bound; the first step that breaks is where the gateway
saturates, and the step before it is what it sustains.

Orders alternate buy and sell (by default) at one price, so a run leaves no position
beyond one order's quantity. At a price inside the spread they rest nowhere (IOC) and fill
nothing: the load is the order path, not the market. Run it against a gateway set aside
for the test (a canary): its risk throttles, breakers and limits see every order, and are
what a step may well find first.

:class:`Tracker` and :func:`judge` are the measurement, free of FIX; :func:`run_steps`
drives them with clients the caller has logged on.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Final, Literal

from oms.audit.acceptance import percentile
from oms.clock import now_ns
from oms.enums import Side, TimeInForce
from sessions.fixengine import send_text
from sessions.fixwire import SOH, encode, utc_timestamp
from sessions.simulator.client import FixClient

MS: Final = 1_000_000
REJECT_EXEC_TYPE: Final = "8"

Sides = Literal["buy", "sell", "both"]


@dataclass(frozen=True)
class StressPlan:
    """What to send and when to call a step broken."""

    rates: tuple[int, ...]  # orders per second offered, one step each, rising
    step_s: float
    venue: str
    symbol: str
    price: Decimal
    qty: int = 1
    sides: Sides = "both"
    max_p99_ms: float = 50.0
    max_reject_pct: float = 1.0
    grace_s: float = 2.0  # after a step's last send, how long its answers may take
    stop_at_saturation: bool = True


@dataclass(frozen=True)
class StepResult:
    """One step: what was offered, sent and answered, how fast, and which bounds broke."""

    offered_per_s: int
    sent: int
    send_s: float  # from the first send to the last
    accepted: int
    rejected: int
    unanswered: int
    achieved_per_s: float  # accepted orders per second, first send to last answer
    rtts_ns: tuple[int, ...]  # every answered order's round trip, sorted
    broke: tuple[str, ...]  # the bounds passed, in words
    reasons: tuple[tuple[str, int], ...] = ()  # rejects by Text(58), most frequent first

    @property
    def sent_per_s(self) -> float:
        """The pace kept: intervals between sends per second (``n`` sends span ``n - 1``)."""
        return (self.sent - 1) / self.send_s if self.send_s > 0 else float(self.sent)

    @property
    def reject_share(self) -> float:
        return (self.rejected + self.unanswered) / self.sent if self.sent else 0.0

    @property
    def p50_ns(self) -> int | None:
        return percentile(self.rtts_ns, 50) if self.rtts_ns else None

    @property
    def p99_ns(self) -> int | None:
        return percentile(self.rtts_ns, 99) if self.rtts_ns else None

    def as_json(self) -> dict[str, Any]:
        p50, p99 = self.p50_ns, self.p99_ns
        return {
            "offered_per_s": self.offered_per_s,
            "sent": self.sent,
            "sent_per_s": round(self.sent_per_s, 3),
            "accepted": self.accepted,
            "rejected": self.rejected,
            "unanswered": self.unanswered,
            "achieved_per_s": round(self.achieved_per_s, 3),
            "p50_ms": None if p50 is None else p50 / MS,
            "p99_ms": None if p99 is None else p99 / MS,
            "max_ms": self.rtts_ns[-1] / MS if self.rtts_ns else None,
            "reject_pct": round(self.reject_share * 100, 4),
            "broke": list(self.broke),
            "reject_reasons": dict(self.reasons),
        }


@dataclass(frozen=True)
class StressResult:
    plan: StressPlan
    steps: tuple[StepResult, ...]

    @property
    def saturation(self) -> StepResult | None:
        """The first step that broke a bound."""
        return next((s for s in self.steps if s.broke), None)

    @property
    def sustained(self) -> StepResult | None:
        """The last step before saturation (the last step when none broke)."""
        good = None
        for step in self.steps:
            if step.broke:
                break
            good = step
        return good

    def as_json(self) -> dict[str, Any]:
        plan = self.plan
        saturated = self.saturation
        sustained = self.sustained
        return {
            "plan": {
                "rates_per_s": list(plan.rates),
                "step_s": plan.step_s,
                "venue": plan.venue,
                "symbol": plan.symbol,
                "price": str(plan.price),
                "qty": plan.qty,
                "sides": plan.sides,
                "max_p99_ms": plan.max_p99_ms,
                "max_reject_pct": plan.max_reject_pct,
            },
            "steps": [s.as_json() for s in self.steps],
            "saturation": None
            if saturated is None
            else {"offered_per_s": saturated.offered_per_s, "why": list(saturated.broke)},
            "sustained_per_s": None if sustained is None else sustained.offered_per_s,
        }


def judge(
    plan: StressPlan,
    offered_per_s: int,
    sent: dict[str, int],
    answers: dict[str, tuple[int, bool, str | None]],
    first_ns: int,
    last_send_ns: int,
) -> StepResult:
    """One step's figures: ``sent`` is ClOrdID -> send time, ``answers`` ClOrdID ->
    (answer time, rejected, Text) for the orders answered (others are unanswered)."""
    rtts: list[int] = []
    accepted = rejected = 0
    last_answer = first_ns
    reasons: Counter[str] = Counter()
    for clordid, sent_ns in sent.items():
        answer = answers.get(clordid)
        if answer is None:
            continue
        at, refused, text = answer
        rtts.append(at - sent_ns)
        last_answer = max(last_answer, at)
        if refused:
            rejected += 1
            reasons[_reason(text)] += 1
        else:
            accepted += 1
    rtts.sort()
    unanswered = len(sent) - accepted - rejected
    span_ns = last_answer - first_ns
    step = StepResult(
        offered_per_s=offered_per_s,
        sent=len(sent),
        send_s=(last_send_ns - first_ns) / 1e9,
        accepted=accepted,
        rejected=rejected,
        unanswered=unanswered,
        achieved_per_s=accepted / (span_ns / 1e9) if span_ns > 0 else float(accepted),
        rtts_ns=tuple(rtts),
        broke=(),
        reasons=tuple(reasons.most_common()),
    )
    broke = []
    p99 = step.p99_ns
    if p99 is not None and p99 > plan.max_p99_ms * MS:
        broke.append(f"p99 round trip {p99 / MS:,.1f} ms > {plan.max_p99_ms:g} ms")
    if step.reject_share * 100 > plan.max_reject_pct:
        broke.append(
            f"rejected or unanswered {step.reject_share * 100:.1f} % > {plan.max_reject_pct:g} %"
        )
    return replace(step, broke=tuple(broke))


def _reason(text: str | None) -> str:
    """A reject's Text, its figures left out, so that one cause counts as one reason."""
    if not text:
        return "(no text)"
    head = text.split(":", 1)[0] if "(" not in text else text.split(")", 1)[0] + ")"
    return head.strip()[:80]


@dataclass
class Tracker:
    """Send and answer times of one step's orders; answers come on quickfix's threads."""

    sent: dict[str, int] = field(default_factory=dict)
    answers: dict[str, tuple[int, bool, str | None]] = field(default_factory=dict)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def sending(self, clordid: str) -> None:
        with self.cond:
            self.sent[clordid] = now_ns()

    def answer(self, text: str) -> None:
        """One application message from the gateway: the first answer to an order counts."""
        recv = now_ns()
        if f"{SOH}35=8{SOH}" in text:
            clordid = _tag(text, "11")
            exec_type = _tag(text, "150")
            refused = exec_type == REJECT_EXEC_TYPE
        elif f"{SOH}35=j{SOH}" in text:  # a business reject names our ClOrdID in 379
            clordid, refused = _tag(text, "379"), True
        else:
            return
        if clordid is None:
            return
        with self.cond:
            if clordid in self.sent and clordid not in self.answers:
                self.answers[clordid] = (recv, refused, _tag(text, "58") if refused else None)
                self.cond.notify_all()

    def wait_all(self, timeout_s: float) -> None:
        with self.cond:
            self.cond.wait_for(lambda: len(self.answers) >= len(self.sent), timeout_s)

    def snapshot(self) -> tuple[dict[str, int], dict[str, tuple[int, bool, str | None]]]:
        with self.cond:
            return dict(self.sent), dict(self.answers)


def _tag(text: str, tag: str) -> str | None:
    start = text.find(f"{SOH}{tag}=")
    if start < 0:
        return None
    start += len(tag) + 2
    end = text.find(SOH, start)
    return text[start : end if end >= 0 else None]


class StressClient(FixClient):
    """A client that hands every application message to ``route`` (the running step's
    tracker) instead of keeping it: a step sends thousands."""

    def __init__(self, route: Callable[[str], None], **kw: Any) -> None:
        super().__init__(**kw)
        self._route = route

    def _receive(self, text: str, *, admin: bool) -> None:
        if admin:
            super()._receive(text, admin=True)  # logons and logouts, with their Text
        else:
            self._route(text)

    def send_text(self, text: str) -> bool:
        return send_text(text, self.session_id, self._dd)


def order_text(plan: StressPlan, clordid: str, side: Side) -> str:
    return encode(
        "D",
        [
            (11, clordid),
            (100, plan.venue),
            (55, plan.symbol),
            (54, side.value),
            (60, utc_timestamp(now_ns())),
            (38, plan.qty),
            (40, "2"),
            (44, plan.price),
            (59, TimeInForce.IOC.value),
        ],
    )


def run_step(
    plan: StressPlan,
    rate: int,
    senders: Sequence[Callable[[str], bool]],
    tracker: Tracker,
    ids: Callable[[], str],
) -> StepResult:
    """Send ``rate`` orders a second for ``plan.step_s``, spread over ``senders`` in turn;
    wait up to ``plan.grace_s`` for the last answers; judge the step."""
    count = max(1, round(rate * plan.step_s))
    interval = 1.0 / rate
    sides = (
        itertools.cycle((Side.BUY, Side.SELL))
        if plan.sides == "both"
        else itertools.repeat(Side.BUY if plan.sides == "buy" else Side.SELL)
    )
    first_ns = now_ns()
    start = time.perf_counter()
    last_send_ns = first_ns
    for i in range(count):
        delay = start + i * interval - time.perf_counter()
        if delay > 0.0002:
            time.sleep(delay)
        clordid = ids()
        text = order_text(plan, clordid, next(sides))
        tracker.sending(clordid)
        senders[i % len(senders)](text)
        last_send_ns = now_ns()
    tracker.wait_all(plan.grace_s)
    sent, answers = tracker.snapshot()
    return judge(plan, rate, sent, answers, first_ns, last_send_ns)


def run_steps(
    plan: StressPlan,
    senders: Sequence[Callable[[str], bool]],
    new_tracker: Callable[[], Tracker],
    ids: Callable[[], str],
    on_step: Callable[[StepResult], None] | None = None,
) -> StressResult:
    """Every step of ``plan`` in turn (stopping after the first that breaks, unless the
    plan says otherwise). ``new_tracker`` gives each step a tracker of its own, to which
    the clients' answers go while it runs."""
    steps: list[StepResult] = []
    for rate in plan.rates:
        step = run_step(plan, rate, senders, new_tracker(), ids)
        steps.append(step)
        if on_step is not None:
            on_step(step)
        if step.broke and plan.stop_at_saturation:
            break
    return StressResult(plan, tuple(steps))


def plot_png(result: StressResult, path: Any) -> None:
    """Round trips (p50, p99) and the reject share against the rate offered, with the
    bounds, and the rate achieved against the rate offered: one PNG."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plan = result.plan
    steps = result.steps
    offered = [s.offered_per_s for s in steps]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.0, 6.0), sharex=True)
    p50 = [(s.p50_ns or 0) / MS for s in steps]
    p99 = [(s.p99_ns or 0) / MS for s in steps]
    top.plot(offered, p50, marker="o", label="p50 round trip")
    top.plot(offered, p99, marker="s", label="p99 round trip")
    top.axhline(plan.max_p99_ms, color="#c44e52", linestyle="--", label=f"{plan.max_p99_ms:g} ms")
    top.set_ylabel("ms")
    top.set_yscale("log")
    top.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    top.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    top.yaxis.set_minor_formatter(NullFormatter())
    twin = top.twinx()
    twin.bar(
        offered,
        [s.reject_share * 100 for s in steps],
        width=[o * 0.25 for o in offered],
        color="#dd8452",
        alpha=0.35,
        label="rejected or unanswered",
    )
    twin.axhline(plan.max_reject_pct, color="#dd8452", linestyle=":")
    twin.set_ylabel("% rejected or unanswered")
    lines, labels = top.get_legend_handles_labels()
    more, more_labels = twin.get_legend_handles_labels()
    top.legend(lines + more, labels + more_labels, fontsize=7, loc="upper left")
    saturated = result.saturation
    title = (
        f"saturates at {saturated.offered_per_s:,} orders/s"
        if saturated is not None
        else f"no bound broken up to {offered[-1]:,} orders/s"
        if offered
        else "no step run"
    )
    top.set_title(f"gateway stress test: {title}", fontsize=10)
    bottom.plot(offered, offered, color="#999999", linestyle="--", label="offered")
    bottom.plot(offered, [s.achieved_per_s for s in steps], marker="o", label="achieved")
    bottom.set_xscale("log")
    bottom.set_xticks(offered, [f"{o:,}" for o in offered])
    bottom.minorticks_off()
    bottom.set_xlabel("orders/s offered")
    bottom.set_ylabel("orders/s")
    bottom.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
