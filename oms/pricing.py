"""What a leg would really pay or receive, per unit of the outer leg's price, in one rounding.

Two venues quote the same metal in different currencies and units (CNY per gram against USD
per troy ounce; CNY per tonne against USD per pound) and charge different fees. To compare
them, each leg's price for the size of one trade is taken at the volume-weighted price of
sweeping the book for it, made net of fees (a buy pays them on top, a sell receives less)
and converted into the outer leg's currency and unit.

Done step by step, every division would round. Here the whole of it is one fraction whose
numerator and denominator are products of short decimals (exact in ``Decimal``), divided
once: the result is the exact rational value rounded once, to the context's 28 significant
digits, whatever the size or the fees. For a leg of ``L`` lots swept for a notional ``N``
(the sum of price x lots), contract size ``cs``, fee ``f`` per lot and ``r`` of notional:

    per unit, buying:   (N (1 + r) cs + f L) / (L cs)
    per unit, selling:  (N (1 - r) cs - f L) / (L cs)
    converted:          x  g(to) / (g(from) fx)      (fx: leg currency per outer currency)
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from oms.units import grams

ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class FxRate:
    """How many units of a leg's currency one unit of the outer currency buys.

    ``inverted`` holds a quote the other way round (outer currency per unit of the leg's),
    which is multiplied rather than divided by, so that it, too, costs no rounding.
    """

    rate: Decimal
    inverted: bool = False

    @classmethod
    def parity(cls) -> FxRate:
        return cls(ONE)


@dataclass(frozen=True, slots=True)
class LegPricing:
    """The constants of one leg's conversion into the outer leg's currency and unit."""

    contract_size: Decimal
    grams_from: Decimal  # grams in the leg's price unit
    grams_to: Decimal  # grams in the outer leg's price unit
    fee_per_lot: Decimal = Decimal(0)  # in the leg's currency
    fee_rate: Decimal = Decimal(0)  # share of the notional

    @classmethod
    def of(
        cls,
        contract_size: Decimal,
        unit: str,
        to_unit: str,
        *,
        fee_per_lot: Decimal = Decimal(0),
        fee_rate: Decimal = Decimal(0),
    ) -> LegPricing:
        return cls(contract_size, grams(unit), grams(to_unit), fee_per_lot, fee_rate)

    def price(
        self, notional: Decimal, lots: int, *, buy: bool, fx: FxRate, fees: bool = True
    ) -> Decimal:
        """The per-unit price of a sweep of ``lots`` lots worth ``notional``, in the outer
        currency per outer unit: net of fees (unless ``fees`` is False), divided once."""
        cs = self.contract_size
        if fees:
            if buy:
                gross = notional * (ONE + self.fee_rate) * cs + self.fee_per_lot * lots
            else:
                gross = notional * (ONE - self.fee_rate) * cs - self.fee_per_lot * lots
        else:
            gross = notional * cs
        numerator = gross * self.grams_to
        denominator = lots * cs * self.grams_from
        if fx.inverted:
            numerator *= fx.rate
        else:
            denominator *= fx.rate
        return numerator / denominator


def convert(price: Decimal, *, from_unit: str, to_unit: str, fx: FxRate) -> Decimal:
    """One price per ``from_unit`` in a leg's currency, per ``to_unit`` in the outer one,
    divided once: 560 CNY/g at 7.25 CNY/USD is 560 x 31.1034768 / 7.25 USD per troy oz."""
    return LegPricing(ONE, grams(from_unit), grams(to_unit)).price(
        price, 1, buy=True, fx=fx, fees=False
    )
