"""Trading states, their scopes, and the typed notices a risk call reports back to the OMS.

Why three states and three scopes: a problem is usually local (one venue rejecting, one
strategy misbehaving), so the engine stops only what it must; an operator or a rule can also
stop everything. ``ACTIVE`` lets every order through the checks, ``REDUCING`` only orders that
bring a contract's position (counting working orders) toward zero, ``HALTED`` only cancels.
An order is held to the strictest state among the global one, its venue's and its
strategy's.

Every change of state and every alert is a small frozen value returned to the caller, never a
side effect hidden in the engine: the OMS turns each into a receipt (``kind`` and ``data``
below are ready for :meth:`oms.receipts.Receipt.of`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum, IntEnum
from typing import ClassVar, Final


class TradingState(IntEnum):
    """How much trading a scope allows; a larger value allows less.

    An ``IntEnum`` so that "the strictest of three" is ``max`` in C on the hot path.
    """

    ACTIVE = 0
    REDUCING = 1
    HALTED = 2

    @property
    def label(self) -> str:
        return self._name_.lower()

    @classmethod
    def parse(cls, text: str) -> TradingState:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(
                f"unknown trading state {text!r}; use active, reducing or halted"
            ) from None


class ScopeKind(str, Enum):
    GLOBAL = "global"
    VENUE = "venue"
    STRATEGY = "strategy"


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a trading state applies: everything, one venue, or one strategy."""

    kind: ScopeKind
    name: str | None = None

    def __post_init__(self) -> None:
        if (self.kind is ScopeKind.GLOBAL) != (self.name is None):
            raise ValueError("the global scope has no name; a venue or strategy scope needs one")

    def __str__(self) -> str:
        return self.kind.value if self.name is None else f"{self.kind.value}:{self.name}"

    @classmethod
    def venue(cls, name: str) -> Scope:
        return cls(ScopeKind.VENUE, name)

    @classmethod
    def strategy(cls, name: str) -> Scope:
        return cls(ScopeKind.STRATEGY, name)

    @classmethod
    def parse(cls, text: str) -> Scope:
        """``global``, ``venue:SHFE-SIM`` or ``strategy:GOLD``, as an operator types them."""
        kind, _, name = text.strip().partition(":")
        try:
            scope_kind = ScopeKind(kind.lower())
        except ValueError:
            raise ValueError(
                f"unknown scope {text!r}; use global, venue:NAME or strategy:NAME"
            ) from None
        if scope_kind is ScopeKind.GLOBAL:
            if name:
                raise ValueError("the global scope takes no name")
            return GLOBAL
        if not name:
            raise ValueError(f"scope {kind} needs a name: {kind}:NAME")
        return cls(scope_kind, name)


GLOBAL: Final = Scope(ScopeKind.GLOBAL)

Figures = Mapping[str, str | int | Decimal | None]
"""The numbers a decision compared, by name: exact values, ready for a receipt's ``data``."""


@dataclass(frozen=True, slots=True)
class StateChange:
    """A scope moved from one trading state to another, by a rule or by an operator.

    ``rule`` names the control that moved it (``reject_rate``, ``ack_latency``,
    ``daily_loss``, ``repeated_execution``, ``kill``) or is None for an operator's change.
    """

    scope: Scope
    previous: TradingState
    state: TradingState
    who: str
    why: str
    at_ns: int
    rule: str | None = None
    figures: Figures = field(default_factory=dict, hash=False)

    kind: ClassVar[str] = "risk.state"

    @property
    def data(self) -> dict[str, str | int | Decimal | None]:
        return {
            "scope": str(self.scope),
            "previous": self.previous.label,
            "state": self.state.label,
            "who": self.who,
            "rule": self.rule,
            **self.figures,
        }


@dataclass(frozen=True, slots=True)
class Alert:
    """Something an operator should know that did not, by itself, change a state."""

    check: str
    scope: Scope
    message: str
    at_ns: int
    figures: Figures = field(default_factory=dict, hash=False)

    kind: ClassVar[str] = "risk.alert"

    @property
    def data(self) -> dict[str, str | int | Decimal | None]:
        return {"scope": str(self.scope), "check": self.check, **self.figures}


Notice = StateChange | Alert
NO_NOTICES: Final[tuple[Notice, ...]] = ()


@dataclass(frozen=True, slots=True)
class KillOrder:
    """The kill switch's decision: what the OMS must now cancel, and who asked and why.

    The engine does not know the orders (the OMS owns them); it has set the scope to HALTED so
    that nothing new passes, and hands back this value. The OMS then cancels every working
    order on ``venue`` (every venue when None), passing ``kill=True`` to ``check_cancel`` so
    that no throttle holds a cancel back, and records a receipt for this value and each cancel.
    """

    venue: str | None
    who: str
    why: str
    at_ns: int
    change: StateChange | None

    kind: ClassVar[str] = "risk.kill"

    @property
    def scope(self) -> Scope:
        return GLOBAL if self.venue is None else Scope.venue(self.venue)

    def covers(self, venue: str) -> bool:
        """Whether a working order on ``venue`` must be cancelled."""
        return self.venue is None or self.venue == venue

    @property
    def data(self) -> dict[str, str | int | Decimal | None]:
        return {"scope": str(self.scope), "who": self.who}
