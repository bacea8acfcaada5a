"""When a pair's prices make a trade worth doing: the trigger's configuration and arithmetic.

A trigger looks at both books through the prices a trade of the intended size would really
get (``oms.pricing``: the sweep's volume-weighted price, net of fees, in the outer leg's
currency and unit) and reduces them, for each direction, to one *edge*: how far past fair
the trade would be, so that bigger is always better and every kind compares it with the
same thresholds. ``A`` is the inner leg's price, ``B`` the outer's, ``mA``/``mB`` their
multipliers, ``c`` the fair level (``center``):

* ``cross`` (the default): what we would actually pay and receive, buying at one venue's
  ask and selling at the other's bid. Buying inner: ``c - (mA A_ask - mB B_bid)``; selling
  inner: ``(mA A_bid - mB B_ask) - c``. In outer price units (USD per troy oz).
* ``spread``: the spread ``mA A - mB B`` between the two books' mid prices for the size,
  against ``c``, less what the fees of the direction take. In outer price units.
* ``ratio``: ``mA A / (mB B)`` at the executable prices, as a fraction past ``c``: buying
  inner ``c mB B_bid / (mA A_ask) - 1``, selling inner ``mA A_bid / (mB B_ask c) - 1``
  (0.001 is 0.1 %).

An entry fires when a direction's edge is above ``entry``; a position is closed when the
closing direction's edge is at least ``-exit``. Between the two nothing fires: that is the
hysteresis between opening and closing. ``rearm`` adds one to entries: after an entry in a
direction, the next one waits until that edge has come back to ``entry - rearm`` or below,
so that an edge hovering at the threshold does not fire on every flicker.

This module imports nothing of ``oms.pairs``, so that the pair configuration can hold a
``TriggerConfig``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

ONE = Decimal(1)
TWO = Decimal(2)


class TriggerKind(str, Enum):
    SPREAD = "spread"
    CROSS = "cross"
    RATIO = "ratio"


class LegFees(BaseModel):
    """What a venue charges on one leg: per lot, in the leg's currency, and a share of the
    notional (0.0001 is one basis point)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_lot: Annotated[Decimal, Field(ge=0)] = Decimal(0)
    rate: Annotated[Decimal, Field(ge=0, lt=Decimal("0.1"))] = Decimal(0)


class MarketFx(BaseModel):
    """An FX rate read from a market-data instrument instead of the pair's ``fx_rate``.

    The book quotes the inner currency per unit of the outer one (CNY per USD), or the
    reverse with ``inverted``. Each direction converts at the rate it would really get:
    buying inner spends inner currency bought at the FX bid, selling inner sells it at the
    ask. The FX book must be fresh like the legs' books.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    venue: str = Field(min_length=1)
    symbol: str = Field(min_length=1)
    inverted: bool = False


class TriggerConfig(BaseModel):
    """How a pair decides to trade. With every default it trades the cross price at the
    pair's ``entry_spread`` / ``exit_spread``, at the pair's ``fx_rate``, with no fees."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: TriggerKind = TriggerKind.CROSS
    entry: Decimal | None = Field(
        default=None,
        description="edge above which an entry fires; the pair's entry_spread when left out "
        "(required for kind ratio, whose edge is a fraction, not a price)",
    )
    exit: Decimal | None = Field(
        default=None,
        description="a position closes once the closing edge reaches -exit; the pair's "
        "exit_spread when left out (required for kind ratio)",
    )
    center: Decimal | None = Field(
        default=None,
        description="the fair level of mA*A - mB*B (spread, cross: 0 when left out) or of "
        "mA*A / (mB*B) (ratio: 1 when left out)",
    )
    inner_multiplier: Annotated[Decimal, Field(gt=0)] = Decimal(1)
    outer_multiplier: Annotated[Decimal, Field(gt=0)] = Decimal(1)
    rearm: Annotated[Decimal, Field(ge=0)] | None = Field(
        default=None,
        description="after an entry, the edge must come back to entry - rearm before the next "
        "entry that way; none: every evaluation past entry may fire, up to max_position",
    )
    inner_fees: LegFees = LegFees()
    outer_fees: LegFees = LegFees()
    min_size: int | None = Field(
        default=None,
        ge=1,
        description="pair units each book must hold on the side a trade takes; none: one "
        "trade's size",
    )
    fx: MarketFx | None = None
    max_book_age_ms: Annotated[Decimal, Field(gt=0)] | None = Field(
        default=None,
        description="no trigger on a book whose state the venue stamped longer ago than this "
        "(on our clock, corrected for the venue's clock offset)",
    )
    history: int = Field(
        default=1_000, ge=1, le=1_000_000, description="spread samples kept in the pair's view"
    )

    @model_validator(mode="after")
    def _thresholds(self) -> TriggerConfig:
        if self.kind is TriggerKind.RATIO and (self.entry is None or self.exit is None):
            raise ValueError(
                "a ratio trigger needs its own entry and exit (fractions such as 0.001): "
                "the pair's entry_spread and exit_spread are prices"
            )
        if self.entry is not None and self.exit is not None and self.exit >= self.entry:
            raise ValueError(f"exit {self.exit} must be below entry {self.entry}")
        if self.kind is TriggerKind.RATIO and self.center is not None and self.center <= 0:
            raise ValueError("a ratio's center must be above 0")
        return self

    def fair(self) -> Decimal:
        if self.center is not None:
            return self.center
        return ONE if self.kind is TriggerKind.RATIO else Decimal(0)


@dataclass(frozen=True, slots=True)
class LegPrices:
    """One leg's prices for one size, in outer units: what a sell gets and a buy pays, net
    of fees, and the same before fees (for mid prices). None: the book is too thin."""

    bid: Decimal | None
    ask: Decimal | None
    bid_gross: Decimal | None
    ask_gross: Decimal | None


@dataclass(frozen=True, slots=True)
class Edges:
    """How far past fair each direction's trade is, in the trigger kind's units."""

    buy_inner: Decimal | None
    sell_inner: Decimal | None


def edges(config: TriggerConfig, inner: LegPrices, outer: LegPrices) -> Edges:
    """Each direction's edge from both legs' prices (see the module's docstring)."""
    ma, mb, c = config.inner_multiplier, config.outer_multiplier, config.fair()
    kind = config.kind
    buy = sell = None
    if kind is TriggerKind.CROSS:
        if inner.ask is not None and outer.bid is not None:
            buy = c - (ma * inner.ask - mb * outer.bid)
        if inner.bid is not None and outer.ask is not None:
            sell = ma * inner.bid - mb * outer.ask - c
    elif kind is TriggerKind.RATIO:
        if inner.ask is not None and outer.bid is not None:
            buy = c * mb * outer.bid / (ma * inner.ask) - ONE
        if inner.bid is not None and outer.ask is not None:
            sell = ma * inner.bid / (mb * outer.ask * c) - ONE
    else:
        if None in (inner.bid_gross, inner.ask_gross, outer.bid_gross, outer.ask_gross):
            return Edges(None, None)
        assert inner.bid_gross is not None and inner.ask_gross is not None
        assert outer.bid_gross is not None and outer.ask_gross is not None
        spread = (
            ma * (inner.bid_gross + inner.ask_gross) - mb * (outer.bid_gross + outer.ask_gross)
        ) / TWO
        if inner.ask is not None and outer.bid is not None:
            fees = ma * (inner.ask - inner.ask_gross) + mb * (outer.bid_gross - outer.bid)
            buy = c - spread - fees
        if inner.bid is not None and outer.ask is not None:
            fees = ma * (inner.bid_gross - inner.bid) + mb * (outer.ask - outer.ask_gross)
            sell = spread - c - fees
    return Edges(buy, sell)
