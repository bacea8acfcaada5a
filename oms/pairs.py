"""Spread pairs: the two legs of a cross-market trade and how they are kept in ratio.

A pair trades in units of (m inner lots, n outer lots), the ratio whose exposures match
(28 lots of 1,000 g against 9 lots of 100 troy oz). ``SpreadPair`` follows one such trade:
its two leg orders and how much of each has filled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from oms.enums import Side
from oms.instruments import Instrument
from oms.triggers import TriggerConfig
from oms.units import grams, leg_ratio


class LegRef(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    venue: str
    symbol: str


class ExecutionPolicy(BaseModel):
    """How a spread trade's legs are sent and how an imbalance is repaired.

    A leg that lags (rejected, part-filled, cancelled) is *topped up*: re-sent for what it
    lacks as an IOC, each retry ``top_up_pay_up_ticks`` further than the last, never beyond
    ``max_slippage_ticks`` from the leg's first limit, at most ``max_top_ups`` times and
    within ``max_top_up_ms`` of the first fault. Past any of those bounds the leading leg is
    *unwound* back to the whole units both legs hold. Nothing is decided while an order of
    the trade is still working: a cancel may yet fill until the venue confirms it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Literal["simultaneous", "quote_and_hedge"] = Field(
        default="simultaneous",
        description="simultaneous: both legs at once; quote_and_hedge: rest a limit on "
        "quote_leg and hedge each of its fills on the other leg, in ratio",
    )
    leg_order: Literal["ioc", "limit"] = Field(
        default="ioc",
        description="simultaneous mode: ioc, or a day limit cancelled after leg_timeout_ms",
    )
    leg_timeout_ms: int = Field(default=250, ge=1, le=600_000)
    top_up_pay_up_ticks: int = Field(default=2, ge=0, le=1_000)
    max_slippage_ticks: int = Field(default=10, ge=0, le=10_000)
    max_top_ups: int = Field(default=3, ge=0, le=100)
    max_top_up_ms: int = Field(default=200, ge=1, le=600_000)
    unwind_pay_up_ticks: int = Field(default=5, ge=0, le=10_000)
    retry_after_ms: int = Field(
        default=20,
        ge=1,
        le=60_000,
        description="wait before retrying an unwind the book could not take",
    )
    quote_leg: Literal["inner", "outer"] = Field(
        default="inner", description="quote_and_hedge: the less liquid leg, where the quote rests"
    )
    quote_improve_ticks: int = Field(
        default=0,
        ge=0,
        le=1_000,
        description="rest the quote this many ticks better than the best price on its side "
        "(0 joins it); never so far that it would cross the other side",
    )
    quote_timeout_ms: int = Field(
        default=2_000, ge=1, le=3_600_000, description="cancel a quote still resting after this"
    )
    hedge_pay_up_ticks: int = Field(
        default=2,
        ge=0,
        le=1_000,
        description="a hedge is an IOC this many ticks past the level its size sweeps to",
    )
    hedge_rounding: Literal["nearest", "down"] = Field(
        default="nearest",
        description="a quote fill rarely maps to whole hedge lots (9/28 of a lot per lot for "
        "gold): hedge to the nearest lot (a half rounds up), or only whole lots already due",
    )
    imbalance_alert_ms: int = Field(
        default=1_000, ge=1, description="an imbalance this old raises an alert receipt"
    )
    imbalance_limit_ms: int = Field(
        default=5_000, ge=1, description="an imbalance this old is unwound, whatever else"
    )

    @model_validator(mode="after")
    def _limits_in_order(self) -> ExecutionPolicy:
        if self.imbalance_limit_ms < self.imbalance_alert_ms:
            raise ValueError(
                f"imbalance_limit_ms {self.imbalance_limit_ms} must not be below "
                f"imbalance_alert_ms {self.imbalance_alert_ms}: the alert comes first"
            )
        return self


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
    execution: ExecutionPolicy = ExecutionPolicy()
    trigger: TriggerConfig = TriggerConfig()

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


class TradeOutcome(str, Enum):
    """How a spread trade ended. Every outcome leaves the legs aligned on whole units."""

    FILLED = "filled"  # both legs filled as sent
    TOPPED_UP = "topped_up"  # a lagging leg was re-sent and the trade completed
    UNWOUND = "unwound"  # a leading leg was taken back to the whole units both legs held
    PARTIAL = "partial"  # both legs filled the same whole units, fewer than asked
    MISSED = "missed"  # neither leg filled: the book moved first; nothing held


@dataclass
class SpreadPair:
    """One spread trade in flight or done: every order it sent and where its legs stand.

    ``from_units`` / ``to_units`` are the pair's aligned position before the trade and the
    one it aims for. ``inner_filled`` and ``outer_filled`` are the lots each leg has moved
    in the trade's direction, net of top-ups and unwinds (so an unwound leg is back to 0).
    """

    intent: SpreadIntent
    inner_key: str
    outer_key: str
    from_units: int = 0
    to_units: int = 0
    inner_filled: int = 0
    outer_filled: int = 0
    orders: list[str] = field(default_factory=list)  # every order key, legs first
    leg_limits: dict[str, Decimal] = field(default_factory=dict)  # leg -> first limit
    top_ups: int = 0
    unwinds: int = 0
    unwinding: bool = False
    round_filled: int = 0  # lots filled since the last top-up or unwind was sent
    retry_booked: bool = False  # an unwind waits for its retry timer
    first_fault_ns: int | None = None
    balanced_ns: int | None = None
    alerted: bool = False
    peak_imbalance: Decimal = Decimal(0)  # largest |imbalance| at any moment, inner lots
    held_imbalance: Decimal = Decimal(0)  # largest |imbalance| with nothing in flight
    outcome: TradeOutcome | None = None
    sent_ns: int = 0
    quote_key: str | None = None  # quote_and_hedge: the resting quote's order key
    hedge_sent: int = 0  # quote_and_hedge: lots of hedges sent so far
    fills: list[tuple[str, int, Decimal, int]] = field(default_factory=list)  # leg, qty, px, ns

    @property
    def status(self) -> PairStatus:
        return PairStatus.WORKING if self.outcome is None else PairStatus.DONE

    @property
    def step(self) -> int:
        return 1 if self.to_units >= self.from_units else -1
