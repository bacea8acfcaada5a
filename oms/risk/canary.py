"""Canary caps: the hard limits on a gateway's first live orders.

Why caps of their own: in the canary stage the strategy trades for real, but small, so that
a fault costs little while the run shows the whole path works. The risk limits are a desk's
standing limits; the canary's are far tighter and temporary, and they are lifted by a stage
change (``cmc stage set live``), not by editing the risk table.

The caps bound what the canary *opens*: each order's lots and notional, the spread trades
(pairs) started in a day, and the day's notional. An order that reduces a position, a
spread trade that closes one, and the top-ups, hedges and unwinds that repair a pair already
on the market are never refused by them (holding a repair back would leave a leg unhedged),
but their notional counts toward the day's all the same. The day is the UTC day of the
engine's clock. Notional is the risk engine's own (quantity x price x contract size x fx, in
the base currency), so a cap reads like the ``max_notional`` limit it sits beside.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field

from oms.risk import verdicts as v
from oms.risk.books import ZERO
from oms.risk.refusals import no
from oms.risk.states import Figures
from oms.risk.verdicts import Verdict

DAY_NS: Final = 86_400 * 1_000_000_000

COUNTED_NOTIONAL: Final = "canary_notional"
"""The figure a passing verdict carries when the canary counted its notional toward the
day's: what a restarted gateway adds up again (:meth:`Canary.resume`)."""

COUNTED_PAIR: Final = "canary_pair"
"""The figure a passing intent verdict carries when the canary counted it as a pair opened."""


class CanaryCaps(BaseModel):
    """The ``[stage.canary]`` table: each cap is off when left out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_lots_per_order: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="lots (contracts) in any one order that opens exposure"
    )
    max_pairs_per_day: Annotated[int, Field(ge=1)] | None = Field(
        default=None, description="spread trades that open a position, per UTC day"
    )
    max_order_notional: Annotated[Decimal, Field(gt=0)] | None = Field(
        default=None, description="per order, base currency: qty x price x contract size x fx"
    )
    max_day_notional: Annotated[Decimal, Field(gt=0)] | None = Field(
        default=None, description="every order sent in the UTC day, base currency"
    )

    @property
    def any(self) -> bool:
        """Whether at least one cap is set (a canary with none would be live)."""
        return any(
            value is not None
            for value in (
                self.max_lots_per_order,
                self.max_pairs_per_day,
                self.max_order_notional,
                self.max_day_notional,
            )
        )


class Canary:
    """Today's canary figures and the caps they are held to. For the OMS thread only."""

    def __init__(self, caps: CanaryCaps, base_currency: str) -> None:
        self.caps = caps
        self.currency = base_currency
        self.day: int | None = None
        self.pairs = 0
        self.notional = ZERO

    def _today(self, now_ns: int) -> None:
        day = now_ns // DAY_NS
        if day != self.day:
            self.day, self.pairs, self.notional = day, 0, ZERO

    def reset(self) -> None:
        """A new trading day by the operator's word (the risk engine's ``start_day``)."""
        self.day, self.pairs, self.notional = None, 0, ZERO

    # -- checks: None passes ----------------------------------------------------------------

    def check_order(
        self, qty: int, notional: Decimal, now_ns: int, *, adds: Decimal | None = None
    ) -> Verdict | None:
        """One order that opens exposure: its lots, its notional, and the day's after it
        (``adds``, when it adds less than its whole notional: a replace's increase)."""
        self._today(now_ns)
        return (
            self._lots(qty, None)
            or self._order_notional(notional, None)
            or self._day_notional(notional if adds is None else adds)
        )

    def check_intent(self, legs: Sequence[tuple[str, int, Decimal]], now_ns: int) -> Verdict | None:
        """A spread trade that opens a position: one more pair today, each leg's lots and
        notional (``(leg name, lots, notional)``), and the day's notional after both."""
        self._today(now_ns)
        caps = self.caps
        limit = caps.max_pairs_per_day
        if limit is not None and self.pairs >= limit:
            return no(
                v.CANARY_PAIRS,
                f"canary: {self.pairs} spread trade(s) opened today, the cap of {limit} a "
                "day; more wait for tomorrow or for `cmc stage set live`",
                {"cap": "max_pairs_per_day", "pairs_today": self.pairs, "limit": limit},
            )
        for name, lots, notional in legs:
            refusal = self._lots(lots, name) or self._order_notional(notional, name)
            if refusal is not None:
                return refusal
        return self._day_notional(sum((n for _, _, n in legs), ZERO))

    def _lots(self, qty: int, leg: str | None) -> Verdict | None:
        limit = self.caps.max_lots_per_order
        if limit is None or qty <= limit:
            return None
        figures: Figures = {"cap": "max_lots_per_order", "qty": qty, "limit": limit}
        return no(
            v.CANARY_LOTS,
            f"canary: {_leg(leg)}{qty} lots is above the cap of {limit} lots per order",
            {**figures, "leg": leg} if leg else figures,
        )

    def _order_notional(self, notional: Decimal, leg: str | None) -> Verdict | None:
        limit = self.caps.max_order_notional
        if limit is None or notional <= limit:
            return None
        figures: Figures = {"cap": "max_order_notional", "notional": notional, "limit": limit}
        return no(
            v.CANARY_ORDER_NOTIONAL,
            f"canary: {_leg(leg)}notional {notional:.2f} {self.currency} is above the cap of "
            f"{limit} per order",
            {**figures, "leg": leg} if leg else figures,
        )

    def _day_notional(self, more: Decimal) -> Verdict | None:
        limit = self.caps.max_day_notional
        if limit is None:
            return None
        after = self.notional + more
        if after <= limit:
            return None
        return no(
            v.CANARY_DAY_NOTIONAL,
            f"canary: today's notional would be {after:.2f} {self.currency} "
            f"({self.notional:.2f} sent, {more:.2f} more), above the cap of {limit} a day",
            {
                "cap": "max_day_notional",
                "day_notional": self.notional,
                "notional": more,
                "limit": limit,
            },
        )

    # -- what passed ------------------------------------------------------------------------

    def count_order(self, notional: Decimal, now_ns: int) -> None:
        """An order passed (any order: repairs and reductions count too)."""
        self._today(now_ns)
        self.notional += notional

    def count_pair(self, now_ns: int) -> None:
        """A spread trade that opens a position passed."""
        self._today(now_ns)
        self.pairs += 1

    def resume(self, counted: Iterable[Mapping[str, object]], now_ns: int) -> None:
        """Take up today's figures after a restart, from the figures of the verdicts that
        passed risk earlier in the day (their receipts' ``data``): what the canary counted
        then is marked :data:`COUNTED_NOTIONAL` and :data:`COUNTED_PAIR`. Without this, a
        gateway restarted in the canary stage would start the day afresh, and one that
        restarts often could open its day's cap of pairs again each time."""
        self._today(now_ns)
        for figures in counted:
            notional = figures.get(COUNTED_NOTIONAL)
            if notional is not None:
                try:
                    self.notional += Decimal(str(notional))
                except InvalidOperation:
                    continue
            if figures.get(COUNTED_PAIR):
                self.pairs += 1

    def day_start_ns(self, now_ns: int) -> int:
        """When the canary's day that holds ``now_ns`` began (UTC midnight)."""
        return now_ns // DAY_NS * DAY_NS

    def status(self, now_ns: int) -> dict[str, str | int | None]:
        """Today's figures beside the caps, for operators."""
        self._today(now_ns)
        caps = self.caps
        return {
            "pairs_today": self.pairs,
            "notional_today": str(self.notional),
            "currency": self.currency,
            "max_lots_per_order": caps.max_lots_per_order,
            "max_pairs_per_day": caps.max_pairs_per_day,
            "max_order_notional": _text(caps.max_order_notional),
            "max_day_notional": _text(caps.max_day_notional),
        }


def _leg(name: str | None) -> str:
    return f"{name} leg: " if name else ""


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)
