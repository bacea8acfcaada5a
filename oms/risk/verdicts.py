"""What the OMS asks the risk engine about, and the verdict it gets back.

Why plain slotted values: the OMS asks on its own thread for every order it would send, so
a question must cost nothing to build (the OMS's own ``SendOrder`` is accepted as it is) and
an answer nothing to return. A verdict names the one check that decided it, says why in words
an operator understands, and carries the figures compared as exact values (``Decimal`` and
``int``), which :meth:`oms.receipts.Receipt.of` writes as exact strings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import ClassVar, Final, Protocol

from oms.enums import Side
from oms.risk.states import NO_NOTICES, Figures, Notice

# -- the name of every control, as it appears in a verdict's ``check`` -------------------------
PASSED: Final = "passed"
UNKNOWN_INSTRUMENT: Final = "unknown_instrument"
UNKNOWN_VENUE: Final = "unknown_venue"
INSTRUMENT_DISABLED: Final = "instrument_disabled"
STRATEGY_DISABLED: Final = "strategy_disabled"
ACCOUNT_DISABLED: Final = "account_disabled"
SESSION_CLOSED: Final = "session_closed"
HALTED: Final = "halted"
REDUCING_ONLY: Final = "reducing_only"
DUPLICATE_CLORDID: Final = "duplicate_clordid"
UNKNOWN_ORDER: Final = "unknown_order"
LOT: Final = "lot"
TICK: Final = "tick"
PRECISION: Final = "precision"
MIN_QTY: Final = "min_qty"
MAX_QTY: Final = "max_qty"
NO_REFERENCE_PRICE: Final = "no_reference_price"
PRICE_COLLAR: Final = "price_collar"
MAX_NOTIONAL: Final = "max_notional"
MAX_OPEN_ORDERS: Final = "max_open_orders"
MAX_NET_POSITION: Final = "max_net_position"
MAX_GROSS_POSITION: Final = "max_gross_position"
MAX_POSITION_NOTIONAL: Final = "max_position_notional"
MAX_GROSS_NOTIONAL: Final = "max_gross_notional"
MARGIN: Final = "margin"
DAILY_LOSS: Final = "daily_loss"
ORDERS_PER_S: Final = "orders_per_s"
CANCELS_PER_S: Final = "cancels_per_s"
REPLACES_PER_S: Final = "replaces_per_s"
REPEATED_EXECUTION: Final = "repeated_execution"
STALE_MARKET_DATA: Final = "stale_market_data"
MAX_SLIPPAGE: Final = "max_slippage"
MAX_PAY_UP: Final = "max_pay_up"
MAX_TOP_UP_RETRIES: Final = "max_top_up_retries"
INVALID_INTENT: Final = "invalid_intent"
# the canary stage's caps (oms.risk.canary)
CANARY_LOTS: Final = "canary_max_lots_per_order"
CANARY_PAIRS: Final = "canary_max_pairs_per_day"
CANARY_ORDER_NOTIONAL: Final = "canary_max_order_notional"
CANARY_DAY_NOTIONAL: Final = "canary_max_day_notional"
# alerts and rules that move states
REJECT_RATE: Final = "reject_rate"
ACK_LATENCY: Final = "ack_latency"
CLOCK_OFFSET: Final = "clock_offset"
KILL: Final = "kill"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The engine's answer about one order, cancel, replace or intent.

    ``check`` is the control that refused it (``max_notional``, ``price_collar``...) or
    ``passed``; ``reason`` is the sentence for the receipt; ``figures`` the values compared
    (for a pass, the exposure the order leaves). ``notices`` are the state changes and alerts
    the call itself caused (a throttle's repeated-execution halt, say): one receipt each.
    ``reducing`` says whether the order brings its contract's position toward zero.
    """

    passed: bool
    check: str
    reason: str
    figures: Figures = field(default_factory=dict, hash=False)
    notices: tuple[Notice, ...] = NO_NOTICES
    reducing: bool = False

    @property
    def verdict(self) -> str:
        """What goes in a receipt's ``verdict``: ``passed`` or ``refused``."""
        return "passed" if self.passed else "refused"

    kind: ClassVar[str] = "decision.risk"


class Origin(str, Enum):
    """Who wants the order sent. Entries (a strategy's or a client's) are the orders that
    stale market data blocks; top-ups and unwinds repair a pair already on the market."""

    ENTRY = "entry"
    TOP_UP = "top_up"
    UNWIND = "unwind"
    CLIENT = "client"
    OPERATOR = "operator"


@dataclass(frozen=True, slots=True)
class OrderContext:
    """Facts about an order that the order itself does not carry. Build one per strategy and
    origin once and reuse it: nothing on the hot path should allocate."""

    origin: Origin
    strategy: str | None = None


class OrderLike(Protocol):
    """What ``check_order`` reads from an order: :class:`oms.commands.SendOrder` has it all.

    ``price`` is None for a market order. ``account`` is the client or account the order is
    booked for (None for the house's own strategies unless they book to one).
    """

    @property
    def venue(self) -> str: ...
    @property
    def clordid(self) -> str: ...
    @property
    def symbol(self) -> str: ...
    @property
    def side(self) -> Side: ...
    @property
    def qty(self) -> int: ...
    @property
    def price(self) -> Decimal | None: ...
    @property
    def account(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class LegFacts:
    """One leg of a spread intent: what the OMS would send first for it."""

    venue: str
    symbol: str
    side: Side
    qty: int
    limit: Decimal


@dataclass(frozen=True, slots=True)
class IntentFacts:
    """A spread intent, reduced to what bounds every leg order it could produce.

    Each leg is sent at its limit; a lagging leg may be topped up ``max_top_up_retries`` times,
    each time for no more than what is still unfilled, at up to ``max_pay_up_ticks`` beyond its
    limit; a leading leg may be unwound (which only reduces). So the worst case is both legs'
    whole quantity working at once, each at its limit moved by the full pay-up.
    """

    strategy: str
    inner: LegFacts
    outer: LegFacts
    max_pay_up_ticks: int = 0
    max_top_up_retries: int = 0
    account: str | None = None
    intent_id: str | None = None

    @property
    def legs(self) -> tuple[LegFacts, LegFacts]:
        return (self.inner, self.outer)
