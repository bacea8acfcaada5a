"""Spread pairs: the two legs of a cross-market trade and how they are kept in ratio.

A pair trades in units of (m inner lots, n outer lots), the ratio whose exposures match
(28 lots of 1,000 g against 9 lots of 100 troy oz). ``SpreadPair`` follows one such trade:
its two leg orders and how much of each has filled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from oms.enums import Side
from oms.instruments import Instrument
from oms.units import grams, leg_ratio


class LegRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    venue: str
    symbol: str


class PairConfig(BaseModel):
    """One tradable spread. Spreads and thresholds are in the outer leg's price units."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=32)
    inner: LegRef
    outer: LegRef
    fx_rate: Annotated[Decimal, Field(gt=0)] = Field(
        description="units of the inner currency one unit of the outer currency buys (CNY per USD)"
    )
    entry_spread: Annotated[Decimal, Field(gt=0)]
    exit_spread: Decimal = Decimal(0)
    ratio_tolerance: Annotated[Decimal, Field(gt=0, lt=1)] = Decimal("0.0005")
    max_position: int = Field(default=1, ge=1, description="open pair units allowed each way")
    units_per_trade: int = Field(default=1, ge=1, description="pair units in one spread trade")
    pay_up_ticks: int = Field(
        default=0,
        ge=0,
        description="ticks beyond the worst level a sweep needs that a leg's limit may go, so "
        "that a book that moves a little before the order lands still fills it",
    )

    @model_validator(mode="after")
    def _exit_below_entry(self) -> PairConfig:
        if self.exit_spread >= self.entry_spread:
            raise ValueError(
                f"exit_spread {self.exit_spread} must be below entry_spread {self.entry_spread}"
            )
        return self


class Direction(str, Enum):
    """Which way a spread trade goes, named for the inner leg."""

    BUY_INNER = "buy_inner_sell_outer"
    SELL_INNER = "sell_inner_buy_outer"

    @property
    def inner_side(self) -> Side:
        return Side.BUY if self is Direction.BUY_INNER else Side.SELL

    @property
    def outer_side(self) -> Side:
        return self.inner_side.opposite

    @property
    def sign(self) -> int:
        """+1 when the trade makes the pair longer in the inner leg."""
        return 1 if self is Direction.BUY_INNER else -1


@dataclass(frozen=True)
class PairSpec:
    """A pair with its instruments and the lot ratio worked out."""

    config: PairConfig
    inner: Instrument
    outer: Instrument
    inner_lots: int
    outer_lots: int

    @classmethod
    def build(cls, config: PairConfig, inner: Instrument, outer: Instrument) -> PairSpec:
        m, n = leg_ratio(
            inner.contract_size * grams(inner.contract_unit),
            outer.contract_size * grams(outer.contract_unit),
            tolerance=config.ratio_tolerance,
        )
        return cls(config, inner, outer, m, n)

    @property
    def id(self) -> str:
        return self.config.id


@dataclass(frozen=True)
class SpreadIntent:
    """The strategy's proposal: both legs, priced to fill their whole size now."""

    intent_id: str
    pair_id: str
    direction: Direction
    closing: bool
    inner_qty: int
    inner_limit: Decimal
    outer_qty: int
    outer_limit: Decimal
    spread: Decimal  # what the trade captures, in outer price units, from the books' VWAPs
    threshold: Decimal
    cause_ns: int  # receive time of the market data that triggered it


class PairStatus(str, Enum):
    WORKING = "working"
    DONE = "done"


@dataclass
class SpreadPair:
    """One spread trade in flight or done: its legs and their fills."""

    intent: SpreadIntent
    inner_key: str
    outer_key: str
    inner_filled: int = 0
    outer_filled: int = 0
    inner_done: bool = False
    outer_done: bool = False
    sent_ns: int = 0
    fills: list[tuple[str, int, Decimal, int]] = field(default_factory=list)  # leg, qty, px, ns

    @property
    def status(self) -> PairStatus:
        return PairStatus.DONE if self.inner_done and self.outer_done else PairStatus.WORKING

    def imbalance(self, spec: PairSpec) -> Decimal:
        """Inner lots filled beyond what the outer fills match, in inner lots (signed)."""
        matched_inner = Decimal(self.outer_filled * spec.inner_lots) / spec.outer_lots
        return Decimal(self.inner_filled) - matched_inner
