"""From the configuration's layers to the engine's resolved books, once, at start.

Why separate: resolving (defaults, then venue, then instrument; defaults, then strategy or
account) and checking that every name in the configuration exists is start-up work with
start-up errors; the engine's own module is then only what runs on the OMS thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from oms.clock import NS_PER_MS, NS_PER_S
from oms.instruments import Instrument
from oms.risk.books import AccountBook, ContractBook, StrategyBook, VenueBook
from oms.risk.limits import (
    AccountLimits,
    InstrumentLimits,
    RiskConfig,
    StrategyLimits,
    VenueLimits,
    merged,
)
from oms.risk.states import TradingState
from oms.risk.throttle import RecentEvents, TokenBucket

_HUNDRED: Final = Decimal(100)
_RULE_STATES: Final = {"reducing": TradingState.REDUCING, "halted": TradingState.HALTED}


def seconds_ns(seconds: Decimal) -> int:
    return max(1, int(seconds * NS_PER_S))


def ms_ns(ms: Decimal | int) -> int:
    return max(1, int(Decimal(ms) * NS_PER_MS))


def build_books(
    config: RiskConfig, instruments: Mapping[tuple[str, str], Instrument]
) -> tuple[dict[str, VenueBook], dict[tuple[str, str], ContractBook]]:
    """Every venue's and contract's book, its limits resolved; refuses names that match no
    venue or instrument, so that a misspelt key cannot leave a limit silently unapplied."""
    by_venue: dict[str, list[Instrument]] = {}
    for (venue, symbol), inst in instruments.items():
        if inst.venue != venue or inst.symbol != symbol:
            raise ValueError(
                f"instrument {inst.venue}:{inst.symbol} is listed under {venue}:{symbol}"
            )
        by_venue.setdefault(venue, []).append(inst)
    for name in config.venues:
        if name not in by_venue:
            known = ", ".join(sorted(by_venue)) or "none"
            raise ValueError(f"risk.venues.{name}: no such venue; venues are: {known}")
    for name, symbols in config.instruments.items():
        for symbol in symbols:
            if (name, symbol) not in instruments:
                known = ", ".join(f"{v}.{s}" for v, s in sorted(instruments)) or "none"
                raise ValueError(
                    f"risk.instruments.{name}.{symbol}: no such instrument; "
                    f"instruments are: {known}"
                )
    venues: dict[str, VenueBook] = {}
    contracts: dict[tuple[str, str], ContractBook] = {}
    for venue, insts in by_venue.items():
        limits = merged(VenueLimits, config.defaults, config.venues.get(venue))
        book = venues[venue] = venue_book(venue, limits, {i.currency for i in insts})
        for inst in insts:
            own = config.instruments.get(venue, {}).get(inst.symbol)
            resolved = merged(InstrumentLimits, limits, own)
            contracts[(venue, inst.symbol)] = contract_book(
                book, inst, resolved, config.fx_rate(inst.currency)
            )
    return venues, contracts


def venue_book(name: str, limits: VenueLimits, currencies: set[str]) -> VenueBook:
    if limits.margin_available is not None and len(currencies) > 1:
        raise ValueError(
            f"risk.venues.{name}.margin_available: the venue lists instruments in "
            f"{', '.join(sorted(currencies))}; margin needs one currency per venue"
        )
    burst = limits.burst

    def bucket(rate: Decimal | None) -> TokenBucket | None:
        if rate is None:
            return None
        return TokenBucket(rate, burst if burst is not None else max(1, int(rate)))

    book = VenueBook(name, next(iter(currencies)) if len(currencies) == 1 else None)
    book.orders = bucket(limits.orders_per_s)
    book.cancels = bucket(limits.cancels_per_s)
    book.replaces = bucket(limits.replaces_per_s)
    book.max_open_orders = limits.max_open_orders
    book.margin_available = limits.margin_available
    if limits.reject_breaker is not None:
        rb = limits.reject_breaker
        book.rejects = RecentEvents(rb.count, seconds_ns(rb.window_s))
        book.reject_action = _RULE_STATES[rb.action]
    if limits.ack_latency is not None:
        book.ack_alert_ns = ms_ns(limits.ack_latency.alert_ms)
        book.ack_halt_after = limits.ack_latency.halt_after
    if limits.clock_offset_ms is not None:
        book.clock_tolerance_ns = ms_ns(limits.clock_offset_ms)
    return book


def contract_book(
    venue: VenueBook, inst: Instrument, limits: InstrumentLimits, fx: Decimal
) -> ContractBook:
    exponent = inst.tick.normalize().as_tuple().exponent
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    book = ContractBook(
        venue=venue,
        instrument=inst,
        tick=inst.tick,
        tick_scale=Decimal(10) ** places,
        lot=inst.lot,
        mult=inst.contract_size * fx,
        size=inst.contract_size,
    )
    book.enabled = limits.enabled is not False
    book.min_qty = limits.min_qty
    book.max_qty = limits.max_qty
    book.max_notional = limits.max_notional
    book.use_last = limits.reference == "last"
    if limits.collar_ticks is not None:
        book.collar_width = inst.tick * limits.collar_ticks
    if limits.collar_pct is not None:
        book.collar_frac = limits.collar_pct / _HUNDRED
    book.max_net = limits.max_net_position
    book.max_gross = limits.max_gross_position
    book.max_position_notional = limits.max_position_notional
    if limits.margin_rate is not None:
        book.margin_mult = inst.contract_size * limits.margin_rate
    if limits.stale_after_ms is not None:
        book.stale_ns = ms_ns(limits.stale_after_ms)
    return book


def strategy_book(config: RiskConfig, name: str) -> StrategyBook:
    limits = merged(StrategyLimits, config.strategy_defaults, config.strategies.get(name))
    book = StrategyBook(name)
    book.enabled = limits.enabled is not False
    book.max_pay_up_ticks = limits.max_pay_up_ticks
    book.max_slippage_ticks = limits.max_slippage_ticks
    book.max_top_up_retries = limits.max_top_up_retries
    if limits.repeated_execution is not None:
        rep = limits.repeated_execution
        book.entries = RecentEvents(rep.max, seconds_ns(rep.window_s))
    if limits.reject_breaker is not None:
        rb = limits.reject_breaker
        book.rejects = RecentEvents(rb.count, seconds_ns(rb.window_s))
        book.reject_action = _RULE_STATES[rb.action]
    return book


def has_account_defaults(config: RiskConfig) -> bool:
    """Whether ``account_defaults`` sets anything, so every account needs a book of its own."""
    return any(getattr(config.account_defaults, n) is not None for n in AccountLimits.model_fields)


def account_book(config: RiskConfig, name: str) -> AccountBook:
    limits = merged(AccountLimits, config.account_defaults, config.accounts.get(name))
    return AccountBook(
        name,
        enabled=limits.enabled is not False,
        max_qty=limits.max_qty,
        max_notional=limits.max_notional,
        max_net=limits.max_net_position,
        max_gross=limits.max_gross_position,
        max_open_orders=limits.max_open_orders,
    )
