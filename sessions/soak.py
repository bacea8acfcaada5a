"""The paired-leg soak: many spread trades against misbehaving venues, then a reckoning.

Two simulated venues with market makers (the gold pair: AU in CNY per gram, GC in USD per
troy ounce) reject some orders, part-fill others and answer late; once, mid-run, one venue
cuts every connection. The gateway trades one pair unit at a time, alternating direction,
through the paired-leg engine. At the end every trade must have ended aligned on whole
units, no order may be working anywhere, and each venue's own record of what filled must
agree with the OMS's, order by order.

Used by the test suite (a bounded run), ``bench/soak.py`` (a long one) and ``cmc soak``
(one that runs for a given time, cuts the lines every so often and, by a ``tick`` of its
own, the receipt database).
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from oms.clock import now_ns
from oms.core import Oms
from oms.events import OrdStatus
from oms.orders import Order
from oms.pairs import Direction, SpreadPair, TradeOutcome
from oms.receipt_writer import WriterStats
from sessions.demo import GW_BACKUP, GW_PRIMARY, gateway_config
from sessions.gateway import Gateway
from sessions.ports import free_port
from sessions.simulator.config import VenueConfig
from sessions.simulator.venue import Venue

PAIR = "GOLD"


@dataclass(frozen=True)
class SoakPlan:
    attempts: int = 2_000
    reject_rate: float = 0.02
    partial_fill_rate: float = 0.10
    ack_delay_ms: int = 1  # on the outer venue: its acks and fills come late
    drop_at: float | None = 0.5  # fraction of the run after which the inner venue cuts lines
    max_position: int = 20  # the pair's position limit, in units: what "notional" means
    seed: int = 2024
    trade_timeout_s: float = 10.0
    seconds: float | None = None  # stop trading after this long too (`cmc soak`)
    drop_every_s: float | None = None  # cut every line, each venue in turn, this often
    # Each venue holds the gateway's two lines as one member's (an order sent on one is
    # known on the other), and the gateway is told so: after a switch, an order the venue
    # does not know never arrived.
    linked_lines: bool = False
    trades_per_s: float | None = None  # at most this many trades a second (None: flat out)


@dataclass
class SoakResult:
    plan: SoakPlan
    attempts: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # why trade_now said no
    outcomes: Counter[str] = field(default_factory=Counter)
    top_up_rounds: int = 0
    unwind_rounds: int = 0
    fault_to_balanced_ns: list[int] = field(default_factory=list)
    held_imbalance_lots: Decimal = Decimal(0)  # worst |imbalance| left by the venues' answers
    peak_imbalance_lots: Decimal = Decimal(0)  # worst |imbalance| at any moment
    unit_lots: int = 0  # inner lots in one pair unit
    residual_imbalance: Decimal = Decimal(0)
    working_orders: int = 0
    venue_working: int = 0
    mismatches: list[str] = field(default_factory=list)
    orders: int = 0
    drops: int = 0
    stuck: int = 0  # trades that did not end within trade_timeout_s
    duration_s: float = 0.0
    drops_by_venue: Counter[str] = field(default_factory=Counter)
    rejected_orders: int = 0  # orders a venue rejected (the plan's reject_rate)
    part_filled_orders: int = 0  # orders that ended with only part of them filled
    orders_by_venue: Counter[str] = field(default_factory=Counter)
    errors: int = 0  # errors on the OMS thread and in the FIX callbacks, gateway and venues
    receipts: WriterStats | None = None  # where every receipt went, once the gateway stopped
    stuck_detail: list[str] = field(default_factory=list)  # what held each stuck trade

    @property
    def completed(self) -> int:
        return (
            self.outcomes[TradeOutcome.FILLED.value] + self.outcomes[TradeOutcome.TOPPED_UP.value]
        )

    @property
    def success_rate(self) -> float:
        """Trades that ended with both legs filled (topped up within the slippage bound
        included), of the trades sent."""
        sent = sum(self.outcomes.values())
        return self.completed / sent if sent else 0.0

    @property
    def exposure_share(self) -> float:
        """Worst held imbalance as a share of the pair's notional at its position limit."""
        limit_lots = self.unit_lots * self.plan.max_position
        return float(self.held_imbalance_lots / limit_lots) if limit_lots else 0.0


_runs = itertools.count(1)


def venue_configs(plan: SoakPlan) -> tuple[VenueConfig, VenueConfig]:
    """Fresh CompIDs each call: a retired venue's sessions stay registered in the process."""
    run = next(_runs)
    inner, outer = venue_settings(plan)
    inner["comp_id"] += f"-S{run}"
    outer["comp_id"] += f"-S{run}"
    return VenueConfig.model_validate(inner), VenueConfig.model_validate(outer)


def venue_settings(plan: SoakPlan) -> tuple[dict[str, Any], dict[str, Any]]:
    """The two venues as configuration data: deep, quickly refreshed markets, and the
    plan's faults."""
    clients = [GW_PRIMARY, GW_BACKUP]
    deep = {"enabled": True, "interval_ms": 20, "levels": 5, "size": 60, "step_ticks": 1}
    inner: dict[str, Any] = {
        "id": "INNER",
        "comp_id": "SOAK-INNER",
        "port": free_port(),
        "clients": clients,
        "instruments": [
            {
                "symbol": "AU",
                "currency": "CNY",
                "tick": "0.02",
                "contract_size": "1000",
                "contract_unit": "g",
                "prev_close": "560.00",
            }
        ],
        "liquidity": {**deep, "seed": plan.seed},
        "faults": {
            "seed": plan.seed + 1,
            "reject_rate": plan.reject_rate,
            "partial_fill_rate": plan.partial_fill_rate,
        },
    }
    outer: dict[str, Any] = {
        "id": "OUTER",
        "comp_id": "SOAK-OUTER",
        "port": free_port(),
        "clients": clients,
        "instruments": [
            {
                "symbol": "GC",
                "currency": "USD",
                "tick": "0.1",
                "contract_size": "100",
                "contract_unit": "troy_oz",
                "prev_close": "2402.5",
            }
        ],
        "liquidity": {**deep, "size": 30, "seed": plan.seed + 2},
        "faults": {
            "seed": plan.seed + 3,
            "reject_rate": plan.reject_rate,
            "partial_fill_rate": plan.partial_fill_rate,
            "ack_delay_ms": plan.ack_delay_ms,
            "fill_delay_ms": plan.ack_delay_ms,
        },
    }
    return inner, outer


def soak_gateway_config(
    venues: list[Venue], work_dir: Path, plan: SoakPlan, receipts_url: str | None = None
) -> Any:
    """The demo's gateway configuration, with a pair the strategy never trades by itself
    (the soak sends every trade) and a position limit that defines its notional; receipts
    to ``receipts_url`` when given (SQLite in ``work_dir`` otherwise)."""
    config = gateway_config(venues, work_dir)
    data = config.model_dump(mode="json")
    if receipts_url is not None:
        data["receipts_url"] = receipts_url
    if plan.linked_lines:
        for venue in data["venues"]:
            venue["failover"] = {**venue.get("failover", {}), "orders_across_lines": True}
    data["pairs"][0].update(
        entry_spread="100000", exit_spread="-100000", max_position=plan.max_position
    )
    # The soak's random rejects would trip the demo's reject breakers and halt the venues:
    # it measures the pair engine under faults, so risk keeps only what never refuses a
    # sound order (sessions up, ClOrdIDs fresh, ticks and lots right, the kill switch).
    data["risk"] = {"base_currency": "USD", "fx": data["risk"]["fx"]}
    return type(config).model_validate(data)


Tick = Callable[[Gateway, float], None]
"""Called between trades with the seconds since trading began: where a caller injects
faults of its own (``cmc soak`` cuts the receipt database)."""


def run_soak(
    plan: SoakPlan,
    work_dir: Path,
    progress: Callable[[int], None] | None = None,
    *,
    receipts_url: str | None = None,
    tick: Tick | None = None,
) -> SoakResult:
    """Run the plan against fresh venues and a fresh gateway; the venues are retired and
    the gateway stopped before returning (a caller must not stop the venues again).

    A gateway whose receipts could not all be confirmed raises ``ReceiptLossError`` from
    its stop, as anywhere else; ``result.receipts`` is filled in only when they were."""
    result = SoakResult(plan)
    started = time.monotonic()
    venues = [Venue(c) for c in venue_configs(plan)]
    gateway: Gateway | None = None
    try:
        for venue in venues:
            venue.start()
            if plan.linked_lines:
                venue.link_clients(GW_PRIMARY, GW_BACKUP)
        gateway = Gateway(soak_gateway_config(venues, work_dir, plan, receipts_url))
        gateway.start()
        if not gateway.wait_ready(30):
            raise RuntimeError("the gateway did not log on to both venues within 30 s")
        _trade_many(gateway, venues, plan, result, progress, tick)
        _reckon(gateway, venues, result)
        result.errors = gateway.oms.errors + gateway.sessions.application.callback_errors
        result.errors += sum(v.application.callback_errors for v in venues)
    finally:
        try:
            if gateway is not None:
                gateway.stop()
                result.receipts = gateway.receipts.stats()
        finally:
            for venue in venues:
                venue.retire()
            result.duration_s = time.monotonic() - started
    return result


def _trade_many(
    gateway: Gateway,
    venues: list[Venue],
    plan: SoakPlan,
    result: SoakResult,
    progress: Callable[[int], None] | None,
    tick: Tick | None = None,
) -> None:
    oms = gateway.oms
    drop_after = int(plan.attempts * plan.drop_at) if plan.drop_at is not None else -1
    position = 0
    deadline_refused = 0.0
    began = time.monotonic()
    next_drop = plan.drop_every_s
    drops = itertools.cycle(venues)
    while result.attempts < plan.attempts:
        elapsed = time.monotonic() - began
        if plan.seconds is not None and elapsed >= plan.seconds:
            break
        if tick is not None:
            tick(gateway, elapsed)
        if next_drop is not None and plan.drop_every_s and elapsed >= next_drop:
            venue = next(drops)
            cut = venue.drop_connections()
            result.drops += cut
            result.drops_by_venue[venue.id] += cut
            next_drop += plan.drop_every_s
        direction = Direction.BUY_INNER if position <= 0 else Direction.SELL_INNER

        def send(o: Oms, d: Direction = direction) -> SpreadPair | str:
            return o.engine.trade_now(PAIR, d, 1, now_ns())

        trade = oms.call(send)
        if isinstance(trade, str):
            result.refused[trade.split(" (")[0]] += 1
            if not deadline_refused:
                deadline_refused = time.monotonic() + 30
            # A run by the clock goes on to its end and reports what held it up.
            if plan.seconds is None and time.monotonic() > deadline_refused:
                raise RuntimeError(
                    f"the gateway refused to trade for 30 s: {trade}; {oms.call(_what_holds)}"
                )
            time.sleep(0.005)
            continue
        deadline_refused = 0.0
        assert isinstance(trade, SpreadPair)
        result.attempts += 1
        if result.attempts == drop_after:
            cut = venues[0].drop_connections()
            result.drops += cut
            result.drops_by_venue[venues[0].id] += cut
        end = time.monotonic() + plan.trade_timeout_s
        while trade.outcome is None and time.monotonic() < end:
            time.sleep(0.0005)
        if trade.outcome is None:
            result.stuck += 1
            result.stuck_detail.append(oms.call(_what_holds))
            _wait_idle(oms, plan.trade_timeout_s * 3)
        position = oms.call(lambda o: o.pairs[PAIR].units)
        if progress is not None:
            progress(result.attempts)
        if plan.trades_per_s:
            next_at = began + result.attempts / plan.trades_per_s
            time.sleep(max(0.0, next_at - time.monotonic()))


def _what_holds(oms: Oms) -> str:
    """The pair's trade in flight and its unfinished orders, for a report of a stuck run."""
    trade = oms.pairs[PAIR].working
    if trade is None:
        return "no trade in flight"
    held = []
    for key in trade.orders:
        order = oms.orders.by_key(key)
        if order is not None and order.working:
            age_ms = (now_ns() - order.created_ns) // 1_000_000
            held.append(
                f"{key} on {order.venue} {order.status.name} filled {order.fill_qty}/"
                f"{order.qty} acked={order.acked} pending={order.pending_kind} "
                f"sent on {order.line.value if order.line else '-'} {age_ms} ms ago, "
                f"active line {oms.lines.active.get(order.venue)}, "
                f"last={[t.cause for t in order.history[-4:]]}"
            )
    return (
        f"trade {trade.intent.intent_id}: "
        f"inner {trade.inner_filled} outer {trade.outer_filled} top-ups {trade.top_ups} "
        f"unwinds {trade.unwinds} unwinding={trade.unwinding}; working orders: "
        f"{'; '.join(held) or 'none'}; reconciling: {sorted(oms.reconciling)}"
    )


def _wait_idle(oms: Oms, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if oms.call(lambda o: o.pairs[PAIR].working is None):
            return
        time.sleep(0.01)


def _reckon(gateway: Gateway, venues: list[Venue], result: SoakResult) -> None:
    oms = gateway.oms
    _wait_idle(oms, 10)
    if oms.call(lambda o: o.pairs[PAIR].working is not None):
        result.stuck_detail.append(f"at the end: {oms.call(_what_holds)}")

    def collect(o: Oms) -> tuple[list[SpreadPair], list[Order], Decimal, int]:
        pair = o.pairs[PAIR]
        orders = [o.orders.by_key(k) for t in pair.done for k in t.orders]
        return (
            list(pair.done),
            [x for x in orders if x is not None],
            pair.imbalance,
            pair.spec.inner_lots,
        )

    trades, orders, imbalance, unit_lots = oms.call(collect)
    result.unit_lots = unit_lots
    result.residual_imbalance = imbalance
    result.orders = len(orders)
    for trade in trades:
        result.outcomes[trade.outcome.value if trade.outcome else "open"] += 1
        result.top_up_rounds += trade.top_ups
        result.unwind_rounds += trade.unwinds
        result.held_imbalance_lots = max(result.held_imbalance_lots, trade.held_imbalance)
        result.peak_imbalance_lots = max(result.peak_imbalance_lots, trade.peak_imbalance)
        if trade.first_fault_ns is not None and trade.balanced_ns is not None:
            result.fault_to_balanced_ns.append(trade.balanced_ns - trade.first_fault_ns)
    result.working_orders = sum(1 for o in orders if o.working)
    result.orders_by_venue = Counter(o.venue for o in orders)
    result.rejected_orders = sum(1 for o in orders if o.status is OrdStatus.REJECTED)
    result.part_filled_orders = sum(1 for o in orders if not o.working and 0 < o.fill_qty < o.qty)
    by_venue: dict[str, dict[str, tuple[int, int]]] = {}
    for venue in venues:
        seen: dict[str, tuple[int, int]] = {}
        for client in (GW_PRIMARY, GW_BACKUP):
            seen.update(venue.filled_by_clordid(client))
        by_venue[venue.id] = seen
        result.venue_working += sum(1 for _, leaves in seen.values() if leaves)
    for order in orders:
        venue_side = by_venue[order.venue].get(order.key)
        if venue_side is None:
            if order.fill_qty or order.acked:
                result.mismatches.append(f"{order.key}: the OMS has it, {order.venue} does not")
            continue
        if venue_side[0] != order.fill_qty:
            result.mismatches.append(
                f"{order.key} on {order.venue}: the OMS counts {order.fill_qty} filled, "
                f"the venue {venue_side[0]}"
            )
    keys = {k for o in orders for k in o.clordids}
    for venue_id, seen in by_venue.items():
        for clordid in seen:
            if clordid not in keys:
                result.mismatches.append(f"{clordid}: {venue_id} has it, the OMS does not")
