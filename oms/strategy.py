"""The first spread strategy: trade the converted spread when it passes a threshold.

For each pair it prices both directions at what the books would really give for the size
of one trade (the volume-weighted price of sweeping that many lots, converted into the
outer leg's currency and unit):

* buy inner, sell outer captures ``outer bid VWAP - converted inner ask VWAP``;
* sell inner, buy outer captures ``converted inner bid VWAP - outer ask VWAP``.

It enters when a direction captures more than ``entry_spread`` and the position allows,
and closes an open position when the spread back captures more than ``-exit_spread``
(that is, the dislocation has shrunk to ``exit_spread`` or less). It proposes; the OMS
decides and sends. Each leg's limit is the worst price its sweep needs, so an IOC at that
limit fills in full if the book has not moved.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from oms.market import Book, MarketView
from oms.pairs import Direction, PairSpec, SpreadIntent
from oms.units import convert_price


class SpreadStrategy:
    def __init__(self, spec: PairSpec) -> None:
        self.spec = spec
        self._ids = itertools.count(1)
        self.last_spreads: dict[Direction, Decimal | None] = {d: None for d in Direction}

    def _convert(self, price: Decimal) -> Decimal:
        spec = self.spec
        return convert_price(
            price,
            from_unit=spec.inner.contract_unit,
            to_unit=spec.outer.contract_unit,
            fx=spec.config.fx_rate,
        )

    def spread(
        self, direction: Direction, inner: Book, outer: Book, units: int
    ) -> tuple[Decimal, Decimal, Decimal] | None:
        """(captured spread, inner limit, outer limit) for ``units`` pair units, or None."""
        spec = self.spec
        inner_sweep = inner.sweep(direction is Direction.BUY_INNER, spec.inner_lots * units)
        outer_sweep = outer.sweep(direction is Direction.SELL_INNER, spec.outer_lots * units)
        if inner_sweep is None or outer_sweep is None:
            return None
        inner_vwap = self._convert(inner_sweep[0])
        outer_vwap = outer_sweep[0]
        if direction is Direction.BUY_INNER:
            captured = outer_vwap - inner_vwap
        else:
            captured = inner_vwap - outer_vwap
        pay_up = spec.config.pay_up_ticks
        inner_buy = direction is Direction.BUY_INNER
        inner_limit = inner_sweep[1] + (pay_up if inner_buy else -pay_up) * spec.inner.tick
        outer_limit = outer_sweep[1] + (-pay_up if inner_buy else pay_up) * spec.outer.tick
        return captured, inner_limit, outer_limit

    def evaluate(self, market: MarketView, position: int, cause_ns: int) -> SpreadIntent | None:
        """A trade to make now, or None. ``position`` is in pair units, + long inner."""
        spec = self.spec
        cfg = spec.config
        inner = market.books.get((cfg.inner.venue, cfg.inner.symbol))
        outer = market.books.get((cfg.outer.venue, cfg.outer.symbol))
        if inner is None or outer is None:
            return None
        units = cfg.units_per_trade
        for direction in Direction:
            priced = self.spread(direction, inner, outer, units)
            self.last_spreads[direction] = priced[0] if priced else None
            if priced is None:
                continue
            captured, inner_limit, outer_limit = priced
            closing = position * direction.sign < 0
            if closing:
                # Unwinding: worth it once the dislocation has come back to exit_spread.
                threshold = -cfg.exit_spread
                ok = captured >= threshold
                units_now = min(units, abs(position))
            else:
                threshold = cfg.entry_spread
                ok = (
                    captured > threshold
                    and abs(position + direction.sign * units) <= cfg.max_position
                )
                units_now = units
            if not ok:
                continue
            if units_now != units:
                repriced = self.spread(direction, inner, outer, units_now)
                if repriced is None:
                    continue
                captured, inner_limit, outer_limit = repriced
            return SpreadIntent(
                intent_id=f"{cfg.id}-{next(self._ids)}",
                pair_id=cfg.id,
                direction=direction,
                closing=closing,
                inner_qty=spec.inner_lots * units_now,
                inner_limit=inner_limit,
                outer_qty=spec.outer_lots * units_now,
                outer_limit=outer_limit,
                spread=captured,
                threshold=threshold,
                cause_ns=cause_ns,
            )
        return None
