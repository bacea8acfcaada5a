"""The arbitrage demo: the gateway trading the gold spread between two simulated venues.

The inner venue quotes gold in CNY per gram (1,000 g a lot), the outer in USD per troy ounce
(100 oz a lot). Their market makers' fair values are pushed apart and let back together a
few times; the gateway converts the inner price into USD per ounce, trades the spread when
it passes the entry threshold (28 inner lots against 9 outer lots: 28,000 g against
27,993 g) and closes when it comes back. Everything runs on loopback, in this process.
"""

from __future__ import annotations

import os
import secrets
import shutil
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console

from oms.pair_engine import PairBook
from oms.receipts import ReceiptStore
from sessions.gateway import Gateway
from sessions.gateway_config import AdminConfig, GatewayConfig
from sessions.measure import machine_line
from sessions.simulator.demo import demo_config
from sessions.simulator.venue import Venue
from sessions.trading_report import TradeFeed, summarise, summary_table

GW_PRIMARY, GW_BACKUP = "GW-PRI", "GW-BAK"


@dataclass(frozen=True)
class Move:
    """Where the outer market maker's fair value is pushed, relative to its start."""

    after_s: float
    outer_offset: Decimal


SCRIPT = (
    Move(1.0, Decimal("4.0")),  # outer rich: buy inner, sell outer
    Move(4.0, Decimal("0")),  # back together: close
    Move(7.0, Decimal("-4.0")),  # outer cheap: sell inner, buy outer
    Move(10.0, Decimal("0")),  # back: close
    Move(13.0, Decimal("4.5")),
    Move(16.0, Decimal("0")),
)
RUN_S = 19.0

DEMO_RISK: dict[str, Any] = {
    # Every control on, at limits a desk trading one gold spread unit might set; the same
    # table as conf/demo.toml's [risk]. Notional and P&L in USD; margin in each venue's own.
    "base_currency": "USD",
    "fx": {"CNY": "0.1379"},  # what one CNY is worth in USD (7.25 CNY per USD)
    "daily_loss_limit": "250000",
    "max_gross_notional": "20000000",
    "max_open_orders": 200,
    "defaults": {
        "max_qty": 100,
        "collar_ticks": 200,
        "collar_pct": "2",
        "max_net_position": 60,
        "max_gross_position": 120,
        "stale_after_ms": 2000,
        "orders_per_s": 50,
        "cancels_per_s": 100,
        "replaces_per_s": 50,
        "burst": 20,
        "max_open_orders": 100,
        "reject_breaker": {"count": 5, "window_s": 10, "action": "reducing"},
        "ack_latency": {"alert_ms": 250, "halt_after": 3},
        "clock_offset_ms": 500,
    },
    "strategy_defaults": {
        "max_pay_up_ticks": 10,
        "max_top_up_retries": 3,
        "repeated_execution": {"max": 20, "window_s": 60},
        "reject_breaker": {"count": 5, "window_s": 10, "action": "halted"},
    },
}


def bench_risk() -> dict[str, Any]:
    """The demo's risk table for a benchmark that fires thousands of trades a minute: every
    control stays on, but the throttles, the position limits and the repeated-execution
    breaker are opened wide enough that the benchmark measures their cost rather than
    hitting them."""
    return {
        **DEMO_RISK,
        "max_gross_notional": "10000000000",
        "defaults": {
            **DEMO_RISK["defaults"],
            "orders_per_s": 100_000,
            "burst": 1_000,
            "max_net_position": 100_000,  # a benchmark's position grows trade by trade
            "max_gross_position": 200_000,
        },
        "strategy_defaults": {
            **DEMO_RISK["strategy_defaults"],
            "repeated_execution": {"max": 1_000_000, "window_s": 1},
        },
    }


def gateway_config(venues: list[Venue], work_dir: Path) -> GatewayConfig:
    """The gateway's side of the demo: both venues with a primary and a backup line."""
    inner, outer = venues
    return GatewayConfig.model_validate(
        {
            "store_dir": str(work_dir / "store"),
            "receipts_url": f"sqlite:///{work_dir / 'receipts.sqlite'}",
            "reconnect_s": 1,
            "venues": [
                {
                    "id": venue.id,
                    "lines": [
                        {
                            "role": "primary",
                            "port": venue.config.port,
                            "sender_comp_id": GW_PRIMARY,
                            "target_comp_id": venue.config.comp_id,
                        },
                        {
                            "role": "backup",
                            "port": venue.config.port,
                            "sender_comp_id": GW_BACKUP,
                            "target_comp_id": venue.config.comp_id,
                        },
                    ],
                    "instruments": [
                        i.model_dump(exclude={"venue"}) for i in venue.instruments.values()
                    ],
                }
                for venue in (inner, outer)
            ],
            "pairs": [
                {
                    "id": "GOLD",
                    "inner": {"venue": inner.id, "symbol": "AU"},
                    "outer": {"venue": outer.id, "symbol": "GC"},
                    "fx_rate": "7.25",
                    "entry_spread": "2.0",
                    "exit_spread": "0.8",
                    "max_position": 1,
                    "pay_up_ticks": 3,
                }
            ],
            "risk": {
                **DEMO_RISK,
                "venues": {
                    inner.id: {"margin_rate": "0.08", "margin_available": "50000000"},  # CNY
                    outer.id: {"margin_rate": "0.06", "margin_available": "5000000"},  # USD
                },
            },
        }
    )


def run_arbitrage_demo(
    console: Console,
    *,
    work_dir: Path | None = None,
    dashboard: bool = False,
    seconds: float | None = None,
) -> int:
    """The demo; with ``dashboard``, the gateway serves its live page too and the script
    repeats until Ctrl-C or ``seconds``."""
    started = time.monotonic()
    work_dir = work_dir or _fresh_dir(DEMO_DIR)
    sim = demo_config(opening_auction=False, clients=[GW_PRIMARY, GW_BACKUP])
    venues = [Venue(v) for v in sim.venues]
    gateway: Gateway | None = None
    try:
        for venue in venues:
            venue.start()
        config = gateway_config(venues, work_dir)
        token = _dashboard_token() if dashboard else None
        if dashboard:
            config = config.model_copy(update={"admin": AdminConfig(token_env=DASHBOARD_TOKEN)})
        gateway = Gateway(config)
        gateway.start()
        console.print(
            "venues up: " + ", ".join(f"{v.id} on 127.0.0.1:{v.config.port}" for v in venues)
        )
        if not gateway.wait_ready(20):
            console.print("[red]the gateway did not log on and get both books in 20 s[/red]")
            return 1
        pair: PairBook = gateway.oms.pairs["GOLD"]
        spec = pair.spec
        console.print(
            f"gateway logged on to both venues (primary and backup lines); pair GOLD trades "
            f"{spec.inner_lots} {spec.inner.symbol} lots "
            f"({spec.inner_lots * spec.inner.contract_size:,.0f} {spec.inner.contract_unit}) "
            f"against {spec.outer_lots} {spec.outer.symbol} lots "
            f"({spec.outer_lots * spec.outer.contract_size:,.0f} {spec.outer.contract_unit})",
            soft_wrap=True,
        )
        if dashboard:
            _announce_dashboard(console, gateway, token)
        try:  # Ctrl-C ends the run early, with its summary (see sessions/__init__.py)
            if not dashboard:
                _run_script(console, venues[1], gateway)
            else:
                _run_script(console, venues[1], gateway, seconds=seconds, repeat=True)
        except KeyboardInterrupt:
            console.print("stopping the demo")
        for venue in venues:
            venue.set_quoting(False)
        time.sleep(0.5)  # let the last legs' reports arrive
        summaries = gateway.oms.call(summarise)
        assert isinstance(summaries, dict)
        errors = gateway.oms.errors + gateway.sessions.application.callback_errors
        errors += sum(v.application.callback_errors for v in venues)
    finally:
        if gateway is not None:
            gateway.stop()
        for venue in venues:
            venue.retire()  # the process ends through exit_process: see FixEngine.retire
    receipts_path = work_dir / "receipts.sqlite"
    with ReceiptStore(f"sqlite:///{receipts_path}") as store:
        receipt_count = store.count()
    console.print(summary_table(summaries, receipt_count))
    console.print(f"receipts: {receipts_path}", highlight=False, soft_wrap=True)
    console.print(
        f"machine: {machine_line()}; demo took {time.monotonic() - started:.1f} s", highlight=False
    )
    if errors:
        console.print(
            f"[red]{errors} error(s) on the OMS thread or in FIX callbacks; see the log[/red]"
        )
    if any(s.imbalance for s in summaries.values()):
        console.print(
            "[yellow]the legs ended out of ratio: a leg part-filled after the book "
            "moved (topping up and unwinding come with paired-leg execution)[/yellow]"
        )
    if dashboard:  # stopped when the operator chose: a run too short to trade is no failure
        return 0 if errors == 0 else 1
    return 0 if errors == 0 and all(s.trades for s in summaries.values()) else 1


DEMO_DIR = Path("var/demo")


def _fresh_dir(path: Path) -> Path:
    """The demo's own directory, emptied: each run starts from new sequence numbers and
    leaves one receipts file to look at, not one more directory each time."""
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


DASHBOARD_TOKEN = "CMC_ADMIN_TOKEN"


def _dashboard_token() -> str | None:
    """The operator's own token when set; else one made for this run (and put in this
    process's environment, where the gateway reads it): None when it was the operator's,
    so that it is not printed."""
    if len(os.environ.get(DASHBOARD_TOKEN, "")) >= 16:
        return None
    os.environ[DASHBOARD_TOKEN] = secrets.token_urlsafe(32)
    return os.environ[DASHBOARD_TOKEN]


def _announce_dashboard(console: Console, gateway: Gateway, token: str | None) -> None:
    assert gateway.admin is not None and gateway.admin.url is not None
    url = f"{gateway.admin.url}/dashboard"
    if token is not None:  # this run's own token: the URL carries it in its fragment
        console.print(f"dashboard at {url}#token={token}", highlight=False, soft_wrap=True)
    else:
        console.print(
            f"dashboard at {url} (token from {DASHBOARD_TOKEN}; `cmc dashboard --state-dir "
            f"{gateway.admin.state_file.parent}` opens it)",
            highlight=False,
            soft_wrap=True,
        )
    console.print("the market trades on until Ctrl-C (or --seconds)", highlight=False)


def _run_script(
    console: Console,
    outer: Venue,
    gateway: Gateway,
    *,
    seconds: float | None = RUN_S,
    repeat: bool = False,
) -> None:
    """Play the moves (over again with ``repeat``) for ``seconds``, or until interrupted
    when None."""
    feed = TradeFeed(console, gateway)
    start = cycle = time.monotonic()
    prev_close = outer.instruments["GC"].prev_close
    assert prev_close is not None
    moves = list(SCRIPT)
    while seconds is None or time.monotonic() - start < seconds:
        if repeat and not moves and time.monotonic() - cycle >= RUN_S:
            moves, cycle = list(SCRIPT), time.monotonic()
        if moves and time.monotonic() - cycle >= moves[0].after_s:
            move = moves.pop(0)
            outer.set_anchor("GC", prev_close + move.outer_offset)
            feed.say(f"outer market maker's fair value → {prev_close + move.outer_offset} USD/oz")
        feed.poll()
        time.sleep(0.1)
    feed.poll()
