"""A liquidity provider: quotes on both sides around a fair value that wanders.

The fair value takes a seeded random step each refresh and is pulled back toward an anchor
(the previous close unless moved with ``set_anchor``), so a run is reproducible and the
market moves without running away. Quotes are ordinary orders in the book: clients trade
against them by the same matching rules as against anyone else.
"""

from __future__ import annotations

import random
from decimal import Decimal

from oms.enums import Side, TimeInForce
from sessions.simulator.config import LiquidityConfig
from sessions.simulator.matching import (
    Event,
    MatchingEngine,
    OrderState,
    Phase,
    entered_order,
)

OWNER = "liquidity-provider"


class LiquidityProvider:
    def __init__(self, engine: MatchingEngine, config: LiquidityConfig) -> None:
        self._engine = engine
        self.config = config
        self._rng = random.Random(config.seed)
        self.fair: dict[str, int] = {}
        self.anchor: dict[str, int] = {}
        for symbol, book in engine.books.items():
            inst = book.instrument
            start = inst.to_ticks(inst.prev_close) if inst.prev_close is not None else 0
            self.fair[symbol] = self.anchor[symbol] = start
        self._live: dict[str, list[int]] = {s: [] for s in engine.books}

    def set_anchor(self, symbol: str, price: Decimal) -> None:
        """Where the fair value drifts toward from now on (a scripted market move)."""
        self.anchor[symbol] = self._engine.books[symbol].instrument.to_ticks(price)

    def refresh(self) -> list[Event]:
        """Move every open book's fair value one step and replace the quotes around it."""
        out: list[Event] = []
        for symbol, book in self._engine.books.items():
            if book.phase is Phase.CLOSED:
                continue
            self._step(symbol)
            out += self._requote(symbol)
        return out

    def _step(self, symbol: str) -> None:
        cfg = self.config
        fair = self.fair[symbol]
        pull = round((self.anchor[symbol] - fair) * cfg.reversion)
        if pull == 0 and fair != self.anchor[symbol] and cfg.reversion > 0:
            pull = 1 if self.anchor[symbol] > fair else -1
        self.fair[symbol] = max(1, fair + pull + self._rng.randint(-cfg.step_ticks, cfg.step_ticks))

    def _requote(self, symbol: str) -> list[Event]:
        cfg = self.config
        engine = self._engine
        book = engine.books[symbol]
        inst = book.instrument
        band = inst.band_ticks()
        out: list[Event] = []
        for order_id in self._live[symbol]:
            if engine.orders[order_id].state is OrderState.WORKING:
                out += engine.cancel(order_id)
        live: list[int] = []
        size = max(inst.lot, cfg.size - cfg.size % inst.lot)
        fair = self.fair[symbol]
        for level in range(cfg.levels):
            offset = cfg.half_spread_ticks + level * cfg.level_step_ticks
            for side, px in ((Side.BUY, fair - offset), (Side.SELL, fair + offset)):
                if px <= 0 or (band is not None and not band[0] <= px <= band[1]):
                    continue
                events = engine.submit(
                    OWNER, symbol, side, size, inst.from_ticks(px), TimeInForce.DAY
                )
                out += events
                order = entered_order(events)
                if order.state is OrderState.WORKING:
                    live.append(order.order_id)
        self._live[symbol] = live
        return out
