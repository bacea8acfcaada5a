"""Fault injection: the venue misbehaving on purpose, from config and changed at run time."""

from __future__ import annotations

import random
from typing import Any

from sessions.simulator.config import FaultConfig


class Faults:
    """The live fault settings of one venue and the seeded dice they are rolled with.

    Only the venue thread rolls the dice; ``refuses_logon`` is also read from quickfix's
    thread, which is safe because it only reads a list that is replaced, never mutated.
    """

    def __init__(self, config: FaultConfig) -> None:
        self.config = config
        self._rng = random.Random(config.seed)

    def update(self, **changes: Any) -> FaultConfig:
        """Change some settings; the result is validated like the config file is."""
        self.config = FaultConfig.model_validate({**self.config.model_dump(), **changes})
        return self.config

    def refuses_logon(self, comp_id: str) -> bool:
        refused = self.config.refuse_logons
        return "*" in refused or comp_id in refused

    def roll_reject(self) -> bool:
        rate = self.config.reject_rate
        return rate > 0 and self._rng.random() < rate

    def roll_partial_cap(self, qty: int, lot: int) -> int | None:
        """A cap below ``qty`` (whole lots, at least one) on what may fill, or None."""
        rate = self.config.partial_fill_rate
        if rate <= 0 or qty <= lot or self._rng.random() >= rate:
            return None
        return self._rng.randint(1, qty // lot - 1) * lot
