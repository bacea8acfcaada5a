"""The spread strategy: trade a pair when its trigger's edge passes a threshold.

For each pair it prices both directions at what the books would really give for the size
of one trade (the volume-weighted price of sweeping that many lots, net of fees, converted
into the outer leg's currency and unit: ``oms.pricing``), turns those prices into each
direction's edge by the pair's trigger kind (cross price, mid spread or ratio:
``oms.triggers``), and proposes a ``SpreadIntent``:

* to enter, when a direction's edge is above the entry threshold, the trigger is armed
  (``rearm``) and the position allows;
* to close an open position, when the closing direction's edge is at least ``-exit``.

It proposes nothing on a book it cannot trust: one missing, stale (market data may have
been lost and no fresh snapshot has come yet), crossed, or older than ``max_book_age_ms``;
nor when a book holds less than ``min_size`` pair units on the side a trade would take.
Every evaluation, with what blocked it if anything, goes into the pair's live view
(``oms.pair_view``). It proposes; the OMS decides and sends. Each leg's limit is the worst
price its sweep needs (plus ``pay_up_ticks``), so an IOC at that limit fills in full if the
book has not moved.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from oms.clock import NS_PER_MS
from oms.market import Book, MarketView
from oms.pair_view import PairView, SpreadSample
from oms.pairs import Direction, PairSpec, SpreadIntent
from oms.pricing import FxRate, LegPricing
from oms.triggers import Edges, LegPrices, TriggerConfig, TriggerKind, edges


class SpreadStrategy:
    def __init__(self, spec: PairSpec, trigger: TriggerConfig | None = None) -> None:
        self.spec = spec
        cfg = spec.config
        # The pair's own trigger settings once its configuration carries them.
        found = trigger or getattr(cfg, "trigger", None)
        self.trigger: TriggerConfig = found if isinstance(found, TriggerConfig) else TriggerConfig()
        t = self.trigger
        self.entry = t.entry if t.entry is not None else cfg.entry_spread
        self.exit = t.exit if t.exit is not None else cfg.exit_spread
        if self.exit >= self.entry:
            raise ValueError(f"pair {cfg.id}: exit {self.exit} must be below entry {self.entry}")
        outer_unit = spec.outer.contract_unit
        self._inner = LegPricing.of(
            spec.inner.contract_size,
            spec.inner.contract_unit,
            outer_unit,
            fee_per_lot=t.inner_fees.per_lot,
            fee_rate=t.inner_fees.rate,
        )
        self._outer = LegPricing.of(
            spec.outer.contract_size,
            outer_unit,
            outer_unit,
            fee_per_lot=t.outer_fees.per_lot,
            fee_rate=t.outer_fees.rate,
        )
        self._parity = FxRate.parity()
        self._config_fx = FxRate(cfg.fx_rate)
        self._gross = t.kind is TriggerKind.SPREAD
        self._max_age_ns = (
            int(t.max_book_age_ms * NS_PER_MS) if t.max_book_age_ms is not None else None
        )
        self._armed = {d: True for d in Direction}
        self._ids = itertools.count(1)
        self.view = PairView(
            cfg.id,
            (cfg.inner.venue, cfg.inner.symbol),
            (cfg.outer.venue, cfg.outer.symbol),
            t.history,
        )
        self.last_spreads: dict[Direction, Decimal | None] = {d: None for d in Direction}

    # -- prices -----------------------------------------------------------------------------

    def _fx(self, market: MarketView) -> tuple[FxRate, FxRate] | str:
        """The rates for buying and for selling the inner leg, or why there are none."""
        source = self.trigger.fx
        if source is None:
            return self._config_fx, self._config_fx
        book = market.books.get((source.venue, source.symbol))
        if book is None:
            return f"no FX book {source.venue} {source.symbol}"
        if book.stale is not None:
            return f"FX book stale: {book.stale}"
        bid, ask = book.best_bid(), book.best_ask()
        if bid is None or ask is None or bid >= ask:
            return "FX book empty or crossed"
        if source.inverted:  # outer per inner: buying inner buys its currency at the ask
            return FxRate(ask, inverted=True), FxRate(bid, inverted=True)
        return FxRate(bid), FxRate(ask)

    def _leg(
        self,
        book: Book,
        pricing: LegPricing,
        lots: int,
        min_lots: int,
        fx_buy: FxRate,
        fx_sell: FxRate,
    ) -> tuple[LegPrices, Decimal | None, Decimal | None]:
        """The leg's prices for ``lots`` lots and the worst level each sweep needs."""
        sold = book.sweep_notional(False, lots)
        bought = book.sweep_notional(True, lots)
        bid = ask = bid_gross = ask_gross = None
        if sold is not None:
            if min_lots <= lots or book.side_qty(False) >= min_lots:
                bid = pricing.price(sold[0], lots, buy=False, fx=fx_sell)
            if self._gross:
                bid_gross = pricing.price(sold[0], lots, buy=False, fx=fx_sell, fees=False)
        if bought is not None:
            if min_lots <= lots or book.side_qty(True) >= min_lots:
                ask = pricing.price(bought[0], lots, buy=True, fx=fx_buy)
            if self._gross:
                ask_gross = pricing.price(bought[0], lots, buy=True, fx=fx_buy, fees=False)
        return (
            LegPrices(bid, ask, bid_gross, ask_gross),
            sold[1] if sold is not None else None,
            bought[1] if bought is not None else None,
        )

    def price(
        self, inner: Book, outer: Book, units: int, fx: tuple[FxRate, FxRate]
    ) -> tuple[LegPrices, LegPrices, Edges, dict[Direction, tuple[Decimal, Decimal] | None]]:
        """Both legs' prices for ``units`` pair units, each direction's edge, and each
        direction's (inner limit, outer limit), None where a book cannot fill the size."""
        spec = self.spec
        min_units = max(units, self.trigger.min_size or 0)
        inner_lots, outer_lots = spec.inner_lots * units, spec.outer_lots * units
        inner_prices, inner_bid_worst, inner_ask_worst = self._leg(
            inner, self._inner, inner_lots, spec.inner_lots * min_units, fx[0], fx[1]
        )
        outer_prices, outer_bid_worst, outer_ask_worst = self._leg(
            outer, self._outer, outer_lots, spec.outer_lots * min_units, self._parity, self._parity
        )
        pay_up = spec.config.pay_up_ticks
        inner_tick, outer_tick = pay_up * spec.inner.tick, pay_up * spec.outer.tick
        limits: dict[Direction, tuple[Decimal, Decimal] | None] = {
            Direction.BUY_INNER: (inner_ask_worst + inner_tick, outer_bid_worst - outer_tick)
            if inner_ask_worst is not None and outer_bid_worst is not None
            else None,
            Direction.SELL_INNER: (inner_bid_worst - inner_tick, outer_ask_worst + outer_tick)
            if inner_bid_worst is not None and outer_ask_worst is not None
            else None,
        }
        return inner_prices, outer_prices, edges(self.trigger, inner_prices, outer_prices), limits

    def spread(
        self, direction: Direction, inner: Book, outer: Book, units: int
    ) -> tuple[Decimal, Decimal, Decimal] | None:
        """(edge, inner limit, outer limit) of ``direction`` for ``units`` pair units at the
        pair's configured FX rate, or None where a book cannot fill the size."""
        _, _, found, limits = self.price(inner, outer, units, (self._config_fx, self._config_fx))
        edge = found.buy_inner if direction is Direction.BUY_INNER else found.sell_inner
        limit = limits[direction]
        if edge is None or limit is None:
            return None
        return edge, limit[0], limit[1]

    # -- deciding ---------------------------------------------------------------------------

    def _blocked(
        self, inner: Book | None, outer: Book | None, ages: tuple[int | None, int | None]
    ) -> str | None:
        max_age = self._max_age_ns
        for name, book, age in (("inner", inner, ages[0]), ("outer", outer, ages[1])):
            if book is None:
                return f"no {name} book yet"
            if book.stale is not None:
                return f"{name} book stale: {book.stale}"
            if book.crossed:
                return f"{name} book crossed"
            if max_age is not None and age is not None and age > max_age:
                return f"{name} book {age / NS_PER_MS:.3f} ms old, over {max_age / NS_PER_MS} ms"
        return None

    def evaluate(self, market: MarketView, position: int, cause_ns: int) -> SpreadIntent | None:
        """A trade to make now, or None. ``position`` is in pair units, + long inner."""
        spec = self.spec
        cfg = spec.config
        view = self.view
        now = market.clock()
        inner = market.books.get(view.inner_key)
        outer = market.books.get(view.outer_key)
        ages = (
            market.age_ns(inner, now) if inner is not None else None,
            market.age_ns(outer, now) if outer is not None else None,
        )
        blocked = self._blocked(inner, outer, ages)
        fx = self._fx(market) if blocked is None else blocked
        if isinstance(fx, str):
            self.last_spreads = {d: None for d in Direction}
            view.record(
                SpreadSample(
                    now, cause_ns, None, None, None, None, None, None, None, None, *ages, fx
                )
            )
            return None
        assert inner is not None and outer is not None
        units = cfg.units_per_trade
        inner_prices, outer_prices, found, limits = self.price(inner, outer, units, fx)
        entry, exit_, rearm = self.entry, self.exit, self.trigger.rearm
        by_direction = {
            Direction.BUY_INNER: found.buy_inner,
            Direction.SELL_INNER: found.sell_inner,
        }
        self.last_spreads = by_direction
        if rearm is not None:
            for direction, edge in by_direction.items():
                if edge is not None and edge <= entry - rearm:
                    self._armed[direction] = True
        intent: SpreadIntent | None = None
        for direction, edge in by_direction.items():
            limit = limits[direction]
            if edge is None or limit is None:
                continue
            closing = position * direction.sign < 0
            if closing:
                # Unwinding: worth it once the dislocation has come back to the exit.
                threshold = -exit_
                ok = edge >= threshold
                units_now = min(units, abs(position))
            else:
                threshold = entry
                ok = (
                    edge > threshold
                    and self._armed[direction]
                    and abs(position + direction.sign * units) <= cfg.max_position
                )
                units_now = units
            if not ok:
                continue
            if units_now != units:
                _, _, refound, relimits = self.price(inner, outer, units_now, fx)
                reedge = (
                    refound.buy_inner if direction is Direction.BUY_INNER else refound.sell_inner
                )
                relimit = relimits[direction]
                if reedge is None or relimit is None:
                    continue
                edge, limit = reedge, relimit
            if not closing and rearm is not None:
                self._armed[direction] = False
            intent = SpreadIntent(
                intent_id=f"{cfg.id}-{next(self._ids)}",
                pair_id=cfg.id,
                direction=direction,
                closing=closing,
                inner_qty=spec.inner_lots * units_now,
                inner_limit=limit[0],
                outer_qty=spec.outer_lots * units_now,
                outer_limit=limit[1],
                spread=edge,
                threshold=threshold,
                cause_ns=cause_ns,
            )
            break
        view.record(
            SpreadSample(
                now,
                cause_ns,
                found.buy_inner,
                found.sell_inner,
                inner_prices.bid,
                inner_prices.ask,
                outer_prices.bid,
                outer_prices.ask,
                fx[0].rate,
                fx[1].rate,
                *ages,
                None,
                intent.direction.value if intent is not None else None,
            )
        )
        return intent
