"""What the risk engine keeps per contract, venue, strategy, account and working order.

Why resolved records: every limit that applies to a contract is worked out once, when the
engine is built, from the configuration's layers (instrument, venue, defaults), and stored
beside that contract's live figures: its position, its working buys and sells, its marks, its
P&L. A check then reads one record by one dict lookup, with no pydantic and no merging on the
hot path. The records are mutated only by the engine, on the OMS thread.

Exposure counts working orders: ``long_worst = position + working buys`` is the longest the
contract can get if every working buy fills and no sell does; ``short_worst = working sells
- position`` the shortest. Fills never raise either (a fill moves quantity from working into
position), so a limit on them that every new order is checked against cannot be breached.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from oms.instruments import Instrument
from oms.risk.states import TradingState
from oms.risk.throttle import RecentEvents, TokenBucket

ZERO: Final = Decimal(0)


@dataclass(slots=True, eq=False)
class VenueBook:
    """One venue: its session, state, throttles, margin, health figures and open orders."""

    name: str
    currency: str | None
    up: bool = False
    state: TradingState = TradingState.ACTIVE
    orders: TokenBucket | None = None
    cancels: TokenBucket | None = None
    replaces: TokenBucket | None = None
    max_open_orders: int | None = None
    open_orders: int = 0
    margin_available: Decimal | None = None
    margin_used: Decimal = ZERO
    rejects: RecentEvents | None = None
    reject_action: TradingState = TradingState.HALTED
    ack_alert_ns: int | None = None
    ack_halt_after: int = 3
    slow_acks: int = 0
    clock_tolerance_ns: int | None = None
    clock_offset_ns: int | None = None
    clock_alerted: bool = False
    last_ack_ns: int | None = None


@dataclass(slots=True, eq=False)
class ContractBook:
    """One contract on one venue: resolved limits and live exposure.

    ``mult`` turns a price into base-currency notional per contract (contract size x fx);
    ``margin_mult`` a price into margin per contract in the venue's currency (contract size x
    margin rate). ``mark`` is the reference price (mid or last); ``value_px`` the price
    exposure is valued at: the mark, or the last order's price while there is none.
    """

    venue: VenueBook
    instrument: Instrument
    tick: Decimal
    tick_scale: Decimal  # 10 ** places of the tick: a price times this is whole if precise
    lot: int
    mult: Decimal
    size: Decimal
    enabled: bool = True
    min_qty: int | None = None
    max_qty: int | None = None
    max_notional: Decimal | None = None
    use_last: bool = False
    collar_width: Decimal | None = None  # collar_ticks x tick
    collar_frac: Decimal | None = None  # collar_pct / 100
    max_net: int | None = None
    max_gross: int | None = None
    max_position_notional: Decimal | None = None
    margin_mult: Decimal | None = None
    stale_ns: int | None = None
    # -- live ---------------------------------------------------------------------------
    position: int = 0
    working_buy: int = 0
    working_sell: int = 0
    avg_px: Decimal = ZERO
    realized: Decimal = ZERO  # base currency
    bid: Decimal | None = None
    ask: Decimal | None = None
    last: Decimal | None = None
    mark: Decimal | None = None
    book_ns: int | None = None
    value_px: Decimal | None = None
    gross_notional: Decimal = ZERO  # cached: gross worst x value_px x mult
    margin: Decimal = ZERO  # cached: net worst x value_px x margin_mult
    upnl: Decimal = ZERO  # cached: position x (mark - avg_px) x mult

    @property
    def key(self) -> tuple[str, str]:
        return (self.venue.name, self.instrument.symbol)

    @property
    def long_worst(self) -> int:
        return self.position + self.working_buy

    @property
    def short_worst(self) -> int:
        return self.working_sell - self.position


@dataclass(slots=True, eq=False)
class StrategyBook:
    """One strategy: its state and the limits on its spread trades."""

    name: str
    state: TradingState = TradingState.ACTIVE
    enabled: bool = True
    max_pay_up_ticks: int | None = None
    max_slippage_ticks: int | None = None
    max_top_up_retries: int | None = None
    entries: RecentEvents | None = None
    rejects: RecentEvents | None = None
    reject_action: TradingState = TradingState.HALTED


@dataclass(slots=True, eq=False)
class AccountPosition:
    position: int = 0
    working_buy: int = 0
    working_sell: int = 0


@dataclass(slots=True, eq=False)
class AccountBook:
    """One client or account with limits of its own: its exposure per contract."""

    name: str
    enabled: bool = True
    max_qty: int | None = None
    max_notional: Decimal | None = None
    max_net: int | None = None
    max_gross: int | None = None
    max_open_orders: int | None = None
    open_orders: int = 0
    positions: dict[tuple[str, str], AccountPosition] = field(default_factory=dict)

    def at(self, key: tuple[str, str]) -> AccountPosition:
        found = self.positions.get(key)
        if found is None:
            found = self.positions[key] = AccountPosition()
        return found


@dataclass(slots=True, eq=False)
class WorkingOrder:
    """What the engine counts of one order the OMS sent, until it is done."""

    key: str
    contract: ContractBook
    account: AccountBook | None
    buy: bool
    qty: int
    leaves: int
    price: Decimal | None
    strategy: str | None
    filled: int = 0
