"""Order vocabulary shared by the OMS, the sessions and the venue simulator.

The values are the FIX 4.4 codes so that a codec can map them without a table, but nothing
here depends on FIX: they are simply the industry's names for these ideas.
"""

from __future__ import annotations

from enum import Enum


class Side(str, Enum):
    BUY = "1"
    SELL = "2"

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(str, Enum):
    MARKET = "1"
    LIMIT = "2"


class TimeInForce(str, Enum):
    """How long an order may rest. IOC and FOK never rest; DAY expires at the close."""

    DAY = "0"
    GTC = "1"
    IOC = "3"
    FOK = "4"
