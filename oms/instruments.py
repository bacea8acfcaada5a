"""Instruments: what a venue trades and the arithmetic of its price grid.

Prices are ``Decimal`` at every boundary. Inside a matching engine they are whole numbers of
ticks, which is exact and fast; ``to_ticks`` and ``from_ticks`` are the only crossings.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

PositiveDecimal = Annotated[Decimal, Field(gt=0)]


class OffTickError(ValueError):
    """A price that is not a whole number of ticks."""


class InstrumentSpec(BaseModel):
    """A contract as a venue lists it, before it is tied to the venue.

    ``contract_size`` and ``contract_unit`` say how much of the underlying one lot delivers
    (1000 g of gold, 100 troy oz), which is what the spread arithmetic needs to compare two
    venues. ``price_band_pct`` is the daily limit-up/limit-down around ``prev_close``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str = Field(min_length=1, max_length=32)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    tick: PositiveDecimal
    lot: int = Field(
        default=1, ge=1, description="orders must be a whole multiple of this many contracts"
    )
    contract_size: PositiveDecimal = Decimal(1)
    contract_unit: str = Field(default="contract", min_length=1)
    prev_close: PositiveDecimal | None = None
    price_band_pct: Annotated[Decimal, Field(gt=0, lt=100)] | None = None
    max_order_qty: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _prev_close_on_tick(self) -> InstrumentSpec:
        if self.prev_close is not None and self.prev_close % self.tick != 0:
            raise ValueError(
                f"prev_close {self.prev_close} is not a multiple of tick {self.tick}; "
                f"use a price such as {self.round_to_tick(self.prev_close, up=False)}"
            )
        if self.price_band_pct is not None and self.prev_close is None:
            raise ValueError("price_band_pct needs prev_close: the band is measured from it")
        return self

    def to_ticks(self, price: Decimal) -> int:
        """Whole ticks in ``price``; raises ``OffTickError`` if it is off the grid."""
        if price % self.tick != 0:
            raise OffTickError(f"price {price} is not a multiple of the tick size {self.tick}")
        return int(price / self.tick)

    def from_ticks(self, ticks: int) -> Decimal:
        return self.tick * ticks

    def round_to_tick(self, price: Decimal, *, up: bool) -> Decimal:
        steps = (price / self.tick).to_integral_value(rounding=ROUND_CEILING if up else ROUND_FLOOR)
        return steps * self.tick

    def band_ticks(self) -> tuple[int, int] | None:
        """The lowest and highest price, in ticks, that the daily band allows."""
        if self.price_band_pct is None or self.prev_close is None:
            return None
        width = self.prev_close * self.price_band_pct / Decimal(100)
        low = self.round_to_tick(self.prev_close - width, up=True)
        high = self.round_to_tick(self.prev_close + width, up=False)
        return self.to_ticks(low), self.to_ticks(high)


class Instrument(InstrumentSpec):
    """One tradable contract on one venue."""

    venue: str = Field(min_length=1)

    @classmethod
    def listed(cls, venue: str, spec: InstrumentSpec) -> Instrument:
        return cls(venue=venue, **spec.model_dump())
