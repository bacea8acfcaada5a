"""Fault injection: the venue misbehaving on purpose, from config and changed at run time."""

from __future__ import annotations

import random
from typing import Any

import quickfix as fix

from sessions.fixengine import owned_session_id
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


class MarketDataLoss:
    """Market-data messages lost on the wire, on purpose, to test gap repair.

    A lost message is one the venue believes it sent: it uses its MsgSeqNum and later
    updates are computed against it, but it never arrives. The counterparty sees the gap at
    the next message and asks for a resend; the venue has nothing stored under that number
    and answers with a SequenceReset-GapFill, which is what venues do with market data
    (they do not replay it). Losses are counted per session (``"SIM->T1"``) or for any.
    Only the venue thread uses this.
    """

    def __init__(self) -> None:
        self._pending: dict[str | None, int] = {}
        self.lost = 0

    def lose(self, count: int, session: str | None = None) -> None:
        """Lose the next ``count`` market-data messages to ``session`` (to any when None)."""
        if count < 0:
            raise ValueError("count must not be negative")
        self._pending[session] = self._pending.get(session, 0) + count

    def roll(self, session: str) -> bool:
        """Whether the message about to go to ``session`` is lost (and one loss used)."""
        if not self._pending:
            return False
        for key in (session, None):
            left = self._pending.get(key, 0)
            if left > 0:
                if left == 1:
                    del self._pending[key]
                else:
                    self._pending[key] = left - 1
                self.lost += 1
                return True
        return False


def burn_sequence_number(session: str) -> bool:
    """Use up the next outgoing MsgSeqNum of ``session`` (``"SENDER->TARGET"``) without
    sending anything: what a message lost on the wire looks like to the counterparty."""
    sender, _, target = session.partition("->")
    found = fix.Session.lookupSession(owned_session_id(sender, target))
    if found is None:
        return False
    found.setNextSenderMsgSeqNum(found.getExpectedSenderNum() + 1)
    return True
