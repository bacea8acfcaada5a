"""Health of the venues and strategies: ack latency, reject rates, clock offsets.

Why apart from the checks: these controls do not judge an order; they watch what comes back
(acknowledgements, rejects, clock calibration) and move a venue or a strategy to REDUCING or
HALTED when it misbehaves, alerting first where a warning is worth having. Each returns the
notices it caused, for the OMS to record; the state change itself goes through the engine,
so that every change is made, and reported, in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from oms.risk import verdicts as v
from oms.risk.books import StrategyBook, VenueBook
from oms.risk.states import (
    NO_NOTICES,
    Alert,
    Figures,
    Notice,
    Scope,
    StateChange,
    TradingState,
)
from oms.risk.throttle import RecentEvents

_HALTED: Final = TradingState.HALTED

ChangeState = Callable[
    [Scope, TradingState, str, str, int, str | None, Figures], StateChange | None
]
"""The engine's one way to change a state: (scope, state, who, why, now_ns, rule, figures)."""


class HealthMonitor:
    """Watches acknowledgements, rejects and clock offsets of every venue and strategy."""

    def __init__(
        self,
        venues: dict[str, VenueBook],
        strategy_book: Callable[[str], StrategyBook],
        change: ChangeState,
    ) -> None:
        self.venues = venues
        self._strategy_book = strategy_book
        self._change = change

    def ack(self, venue: str, latency_ns: int, now_ns: int) -> tuple[Notice, ...]:
        """An order acknowledged after ``latency_ns``: slow ones alert, a run of them halts."""
        vb = self.venues.get(venue)
        if vb is None or vb.ack_alert_ns is None:
            return NO_NOTICES
        vb.last_ack_ns = latency_ns
        if latency_ns <= vb.ack_alert_ns:
            vb.slow_acks = 0
            return NO_NOTICES
        vb.slow_acks += 1
        figures = {
            "latency_ns": latency_ns,
            "limit_ns": vb.ack_alert_ns,
            "slow_in_a_row": vb.slow_acks,
            "halt_after": vb.ack_halt_after,
        }
        alert = Alert(
            v.ACK_LATENCY,
            Scope.venue(venue),
            f"{venue} acknowledged an order in {latency_ns / 1e6:.3f} ms, over "
            f"{vb.ack_alert_ns / 1e6:g} ms ({vb.slow_acks} in a row; "
            f"{vb.ack_halt_after} halt the venue)",
            now_ns,
            figures,
        )
        if vb.slow_acks < vb.ack_halt_after or vb.state is _HALTED:
            return (alert,)
        change = self._change(
            Scope.venue(venue),
            _HALTED,
            "risk",
            f"{vb.slow_acks} order acknowledgements in a row slower than "
            f"{vb.ack_alert_ns / 1e6:g} ms",
            now_ns,
            v.ACK_LATENCY,
            figures,
        )
        return (alert, change) if change is not None else (alert,)

    def reject(self, venue: str, strategy: str | None, now_ns: int) -> tuple[Notice, ...]:
        """A venue refused an order: counted against the venue's and the strategy's breaker."""
        out: list[Notice] = []
        vb = self.venues.get(venue)
        if vb is not None and vb.rejects is not None:
            change = self._breaker(
                Scope.venue(venue), vb.rejects, vb.reject_action, vb.state, now_ns
            )
            if change is not None:
                out.append(change)
        if strategy is not None:
            sb = self._strategy_book(strategy)
            if sb.rejects is not None:
                change = self._breaker(
                    Scope.strategy(strategy), sb.rejects, sb.reject_action, sb.state, now_ns
                )
                if change is not None:
                    out.append(change)
        return tuple(out)

    def _breaker(
        self,
        scope: Scope,
        window: RecentEvents,
        action: TradingState,
        current: TradingState,
        now_ns: int,
    ) -> StateChange | None:
        seen = window.add(now_ns)
        if seen < window.count:
            return None
        window.clear()  # after a trip, count afresh: an operator's reset starts clean
        if current >= action:
            return None
        return self._change(
            scope,
            action,
            "risk",
            f"{seen} rejects within {window.window_ns / 1e9:g} s (limit {window.count})",
            now_ns,
            v.REJECT_RATE,
            {"rejects": seen, "limit": window.count, "window_ns": window.window_ns},
        )

    def clock_offset(self, venue: str, offset_ns: int, now_ns: int) -> tuple[Notice, ...]:
        """The venue's clock measured against ours: an alert when it leaves the tolerance and
        one when it comes back (not one per message)."""
        vb = self.venues.get(venue)
        if vb is None:
            return NO_NOTICES
        vb.clock_offset_ns = offset_ns
        tolerance = vb.clock_tolerance_ns
        if tolerance is None:
            return NO_NOTICES
        beyond = abs(offset_ns) > tolerance
        if beyond == vb.clock_alerted:
            return NO_NOTICES
        vb.clock_alerted = beyond
        figures = {"offset_ns": offset_ns, "tolerance_ns": tolerance}
        message = (
            f"{venue}'s clock is {offset_ns / 1e6:+.3f} ms from ours, beyond the tolerance of "
            f"{tolerance / 1e6:g} ms: its timestamps and latencies are not to be trusted"
            if beyond
            else f"{venue}'s clock is back within {tolerance / 1e6:g} ms of ours"
        )
        return (Alert(v.CLOCK_OFFSET, Scope.venue(venue), message, now_ns, figures),)
