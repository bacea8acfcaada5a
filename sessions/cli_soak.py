"""``cmc soak``: the demo market for a given time under random faults, and what it survived.

The paired-leg soak of ``sessions/soak.py`` (two simulated gold venues with market makers,
the gateway trading one pair unit at a time through the paired-leg engine) run by the clock
instead of by a count: the venues reject some orders, part-fill others and answer late, and
every few seconds one of them cuts all its connections (each venue holds the gateway's two
lines as one member's, so after a switch the gateway can ask after an order on the other
line, and an order lost in the cut is known never to have arrived). With ``--database-outage`` the
receipts go to PostgreSQL (the URL in ``CMC_TEST_PG_URL``, the variable the test suite
reads) through a TCP relay on loopback that is cut for a while mid-run and then restored:
the receipt writer must spool what it cannot write and replay it, and trading goes on.

At the end one table says what happened and whether every invariant held; the exit code is
0 when they all did, 1 when one broke, 2 for a wrong command line or a database that cannot
be reached.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from sessions.fixengine import exit_process
from sessions.measure import machine_line
from sessions.soak import SoakPlan, SoakResult, run_soak
from sessions.tcp_relay import TcpRelay

if TYPE_CHECKING:
    from sessions.gateway import Gateway

PG_URL_ENV = "CMC_TEST_PG_URL"
NS_PER_MS = 1_000_000

console = Console()
errors = Console(stderr=True)


class Outage:
    """Cuts the receipt database ``cut_at_s`` seconds into trading and restores it at
    ``restore_at_s``, on a thread of its own (a trade held up must not hold the outage up),
    watching the receipt writer spool and then replay meanwhile."""

    def __init__(self, relay: TcpRelay, cut_at_s: float, restore_at_s: float) -> None:
        self.relay = relay
        self.cut_at_s, self.restore_at_s = cut_at_s, restore_at_s
        self.state = "before"  # "down", "restored", "drained"
        self.spooled_peak = 0
        self.spooled_at_restore = 0
        self.halted_while_down = False
        self.down_s = 0.0
        self.drained_after_s: float | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def __call__(self, gateway: Gateway, elapsed: float) -> None:
        """The soak's tick: the first one, when trading begins, starts the clock."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, args=(gateway,), name="soak-db-outage", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self, gateway: Gateway) -> None:
        began = time.monotonic()
        if self._stop.wait(self.cut_at_s):
            return
        self.relay.cut()
        self.state, cut = "down", time.monotonic()
        while not self._stop.wait(0.05):
            stats = gateway.receipts.stats()
            self.spooled_peak = max(self.spooled_peak, stats.spooled)
            if self.state == "down":
                self.halted_while_down |= stats.halted is not None
                if time.monotonic() - began >= self.restore_at_s:
                    self.spooled_at_restore = stats.spooled
                    self.relay.open()
                    self.state, restored = "restored", time.monotonic()
                    self.down_s = restored - cut
            elif stats.spooled == 0:
                self.state = "drained"
                self.drained_after_s = time.monotonic() - restored
                return


@contextlib.contextmanager
def private_schema(pg_url: str) -> Iterator[str]:
    """The URL with a schema of the run's own, dropped afterwards (the server is shared)."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    engine = sa.create_engine(pg_url, connect_args={"connect_timeout": 5})
    schema = f"cmc_soak_{uuid.uuid4().hex[:12]}"
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
        url = make_url(pg_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with contextlib.suppress(sa.exc.SQLAlchemyError), engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        engine.dispose()


def through(url: str, relay: TcpRelay) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(host="127.0.0.1", port=relay.port).render_as_string(False)


@dataclass
class Check:
    name: str
    value: str
    ok: bool


@dataclass
class StoreCheck:
    rows: int
    """Every row, the writer's own included (its reconciliation with the FIX log at start)."""
    appended: int
    """The rows the gateway appended."""
    last_seq: int
    chain_ok: bool


def check_store(url: str) -> StoreCheck:
    from oms.audit.verify import verify_chain
    from oms.receipts import ReceiptStore

    with ReceiptStore(url) as store:
        rows = store.count()
        own = store.count(kind="audit.reconcile")
        return StoreCheck(rows, rows - own, store.last_seq(), verify_chain(store).ok)


def checks(result: SoakResult, store: StoreCheck | None, outage: Outage | None) -> list[Check]:
    """Every invariant of the run, with what was measured."""
    out = [
        Check(
            "residual imbalance (inner lots)",
            str(result.residual_imbalance),
            result.residual_imbalance == 0,
        ),
        Check(
            "orders left working (OMS + venues)",
            str(result.working_orders + result.venue_working),
            result.working_orders + result.venue_working == 0,
        ),
        Check(
            "orders not matching the venues' fills",
            str(len(result.mismatches)),
            not result.mismatches,
        ),
        Check("trades that never ended", str(result.stuck), result.stuck == 0),
        Check(
            "errors on the OMS thread or in FIX callbacks", str(result.errors), result.errors == 0
        ),
    ]
    receipts = result.receipts
    if receipts is None:
        out.append(Check("receipts confirmed kept", "unknown", False))
    else:
        out.append(Check("receipts lost", str(receipts.lost), receipts.lost == 0))
        out.append(
            Check(
                "receipts still in the spool at the end",
                str(receipts.spooled),
                receipts.spooled == 0,
            )
        )
        if store is not None:
            out.append(
                Check(
                    "receipts in the store / appended",
                    f"{store.appended:,} / {receipts.appended:,}",
                    store.appended == receipts.appended and store.rows == store.last_seq,
                )
            )
            out.append(
                Check(
                    "receipt hash chain", "verified" if store.chain_ok else "BROKEN", store.chain_ok
                )
            )
    if outage is not None:
        out.append(
            Check(
                "receipts replayed after the outage",
                f"{outage.spooled_at_restore:,} spooled, "
                f"{'all' if outage.state == 'drained' else 'not all'} replayed",
                outage.spooled_at_restore > 0 and outage.state == "drained",
            )
        )
        out.append(
            Check(
                "trading went on while the database was down",
                "halted" if outage.halted_while_down else "yes",
                not outage.halted_while_down,
            )
        )
    return out


def table(
    result: SoakResult, outage: Outage | None, invariants: list[Check], receipts_at: str
) -> Table:
    plan = result.plan
    t = Table(
        title=f"cmc soak: {plan.seconds:g} s of the demo market under faults, "
        + (f"up to {plan.trades_per_s:g} trades/s, " if plan.trades_per_s else "")
        + f"seed {plan.seed}"
    )
    t.add_column("what")
    t.add_column("value", justify="right")
    t.add_column("", justify="left")
    sent = sum(result.outcomes.values())
    outcomes = ", ".join(f"{k} {v}" for k, v in sorted(result.outcomes.items()))
    t.add_row("spread trades", f"{sent:,}", outcomes)
    t.add_row(
        "orders sent",
        f"{result.orders:,}",
        ", ".join(f"{k} {v}" for k, v in sorted(result.orders_by_venue.items())),
    )
    t.add_row("[bold]faults injected[/bold]", "", "")
    t.add_row(
        "  orders rejected by a venue",
        f"{result.rejected_orders:,}",
        f"reject rate {plan.reject_rate:.0%} on both venues",
    )
    t.add_row(
        "  orders part-filled",
        f"{result.part_filled_orders:,}",
        f"partial-fill rate {plan.partial_fill_rate:.0%}",
    )
    t.add_row(
        "  acks and fills delayed",
        f"{result.orders_by_venue['OUTER']:,}",
        f"every OUTER order, {plan.ack_delay_ms} ms",
    )
    drops = ", ".join(f"{k} {v}" for k, v in sorted(result.drops_by_venue.items()))
    t.add_row(
        "  FIX connections dropped",
        f"{result.drops:,}",
        f"every {plan.drop_every_s:g} s, each venue in turn ({drops})",
    )
    if outage is not None:
        t.add_row(
            "  receipt database cut",
            f"{outage.down_s:.1f} s",
            f"peak spool {outage.spooled_peak:,}; drained "
            + (
                f"{outage.drained_after_s:.1f} s after the restore"
                if outage.drained_after_s is not None
                else "never"
            ),
        )
    if result.refused:
        refused = ", ".join(f"{k} {v}" for k, v in result.refused.most_common(3))
        t.add_row("entries the gateway refused", f"{sum(result.refused.values()):,}", refused)
    t.add_row("top-up / unwind rounds", f"{result.top_up_rounds} / {result.unwind_rounds}", "")
    faults = sorted(result.fault_to_balanced_ns)
    if faults:
        p50 = faults[len(faults) // 2] / NS_PER_MS
        worst = faults[-1] / NS_PER_MS
        t.add_row("first fault -> balanced", f"{p50:.1f} / {worst:.1f} ms", "p50 / max")
    if result.receipts is not None:
        r = result.receipts
        t.add_row("receipts", f"{r.appended:,}", f"written {r.written:,}, to {receipts_at}")
    t.add_row("[bold]invariants[/bold]", "", "")
    for check in invariants:
        t.add_row(f"  {check.name}", check.value, "ok" if check.ok else "[red]BROKEN[/red]")
    t.caption = f"{machine_line()}; the run took {result.duration_s:.1f} s"
    return t


@click.command()
@click.option("--seconds", type=float, default=60.0, show_default=True, help="How long to trade.")
@click.option(
    "--database-outage",
    is_flag=True,
    help=f"Receipts to PostgreSQL (${PG_URL_ENV}), cut mid-run and restored.",
)
@click.option(
    "--drop-every",
    type=float,
    default=None,
    help="Seconds between dropped connections (default: a quarter of the run, at least 2).",
)
@click.option(
    "--trades-per-s",
    type=float,
    default=25.0,
    show_default=True,
    help="Spread trades started per second at most (0: as fast as the gateway goes).",
)
@click.option("--reject-rate", type=float, default=0.02, show_default=True)
@click.option("--partial-fill-rate", type=float, default=0.10, show_default=True)
@click.option("--ack-delay-ms", type=int, default=1, show_default=True)
@click.option("--seed", type=int, default=2024, show_default=True)
def soak(
    seconds: float,
    database_outage: bool,
    drop_every: float | None,
    trades_per_s: float,
    reject_rate: float,
    partial_fill_rate: float,
    ack_delay_ms: int,
    seed: int,
) -> None:
    """Run the demo market under random faults for a while; print what it survived."""
    if seconds <= 0:
        raise click.BadParameter("must be above 0", param_hint="--seconds")
    logging.basicConfig(
        level=logging.ERROR,
        format="%(message)s",
        handlers=[RichHandler(console=errors, show_path=False, rich_tracebacks=False)],
    )
    plan = SoakPlan(
        attempts=10**9,
        reject_rate=reject_rate,
        partial_fill_rate=partial_fill_rate,
        ack_delay_ms=ack_delay_ms,
        drop_at=None,
        seed=seed,
        seconds=seconds,
        drop_every_s=drop_every or max(2.0, seconds / 4),
        trade_timeout_s=5.0,
        linked_lines=True,
        trades_per_s=trades_per_s or None,
    )
    pg_url = os.environ.get(PG_URL_ENV)
    if database_outage and not pg_url:
        errors.print(
            f"--database-outage needs a PostgreSQL URL in {PG_URL_ENV}, for example "
            f"{PG_URL_ENV}=postgresql+psycopg://postgres@127.0.0.1:5432/test"
        )
        exit_process(2)
    exit_process(_run(plan, pg_url if database_outage else None))


def _run(plan: SoakPlan, pg_url: str | None) -> int:
    from oms.receipt_writer import ReceiptWriterError
    from oms.receipts import safe_url

    assert plan.seconds is not None
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="cmc-soak-")))
        outage: Outage | None = None
        if pg_url is None:
            store_url = f"sqlite:///{work / 'receipts.sqlite'}"
            receipts_url = store_url
        else:
            try:
                store_url = stack.enter_context(private_schema(pg_url))
            except Exception as exc:  # the driver's own errors: say what to fix
                errors.print(
                    f"cannot reach PostgreSQL at {safe_url(pg_url)} ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0]}); start it or fix {PG_URL_ENV}"
                )
                return 2
            from sqlalchemy.engine import make_url

            direct = make_url(store_url)
            relay = TcpRelay((direct.host or "127.0.0.1", direct.port or 5432))
            relay.open()
            stack.callback(relay.cut)
            receipts_url = through(store_url, relay)
            outage = Outage(relay, plan.seconds * 0.3, plan.seconds * 0.6)
        console.print(
            f"soak: {plan.seconds:g} s, seed {plan.seed}; receipts to {safe_url(store_url)}"
            + (" (cut from 30 % to 60 % of the run)" if outage else ""),
            highlight=False,
        )
        if outage is not None:
            stack.callback(outage.stop)
        try:
            result = run_soak(plan, work, receipts_url=receipts_url, tick=outage)
        except ReceiptWriterError as exc:
            errors.print(f"[red]receipts were lost[/red]: {exc}", highlight=False)
            return 1
        except RuntimeError as exc:
            errors.print(f"[red]the soak could not go on[/red]: {exc}", highlight=False)
            return 1
        store = check_store(store_url)
        invariants = checks(result, store, outage)
        console.print(table(result, outage, invariants, safe_url(store_url)))
        for line in result.mismatches[:10]:
            console.print(f"[red]mismatch[/red] {line}", highlight=False)
        for line in result.stuck_detail[:5]:
            console.print(f"[red]never ended[/red] {line}", highlight=False)
        broken = [c.name for c in invariants if not c.ok]
        if broken:
            console.print(f"[red]{len(broken)} invariant(s) broken: {', '.join(broken)}[/red]")
            return 1
        console.print("every invariant held")
        return 0
