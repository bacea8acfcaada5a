"""Units of the underlying and the conversions between venues' price quotes.

An inner venue quotes gold in CNY per gram and an outer one in USD per troy ounce; the
spread only means something once both are in the same currency per the same unit.
Exact ``Decimal`` factors, from the international definitions of the units.
"""

from __future__ import annotations

from decimal import Decimal

GRAMS_PER_UNIT: dict[str, Decimal] = {
    "g": Decimal(1),
    "kg": Decimal(1000),
    "t": Decimal(1_000_000),
    "troy_oz": Decimal("31.1034768"),  # exactly, by definition of the troy ounce
    "lb": Decimal("453.59237"),  # exactly, by definition of the avoirdupois pound
}


class UnknownUnitError(ValueError):
    pass


def grams(unit: str) -> Decimal:
    try:
        return GRAMS_PER_UNIT[unit]
    except KeyError:
        known = ", ".join(GRAMS_PER_UNIT)
        raise UnknownUnitError(f"unknown unit {unit!r}; known units: {known}") from None


def convert_price(price: Decimal, *, from_unit: str, to_unit: str, fx: Decimal) -> Decimal:
    """A price per ``from_unit`` in currency A, as a price per ``to_unit`` in currency B.

    ``fx`` is how many A one B buys (7.25 for CNY per USD). 560 CNY/g is
    560 × 31.1034768 / 7.25 = 2402.4…  USD/troy oz.
    """
    return price * grams(to_unit) / grams(from_unit) / fx


def leg_ratio(
    size_a: Decimal, size_b: Decimal, *, tolerance: Decimal, max_lots: int = 1000
) -> tuple[int, int]:
    """The smallest whole numbers of lots (m of A, n of B) whose exposures match.

    ``size_a`` and ``size_b`` are one lot of each in the same unit (grams). The first
    (m, n), by increasing n, with ``|m·a − n·b| / max(m·a, n·b) <= tolerance`` wins:
    1000 g against 100 troy oz (3110.35 g) within 0.05 % is 28 : 9.
    """
    if size_a <= 0 or size_b <= 0:
        raise ValueError("lot sizes must be positive")
    for n in range(1, max_lots + 1):
        exposure_b = n * size_b
        m = max(1, int((exposure_b / size_a).to_integral_value()))
        if m > max_lots:
            break
        exposure_a = m * size_a
        if abs(exposure_a - exposure_b) / max(exposure_a, exposure_b) <= tolerance:
            return m, n
    raise ValueError(
        f"no ratio of at most {max_lots} lots matches {size_a} against {size_b} within "
        f"{tolerance:%}; widen the tolerance or raise max_lots"
    )
