"""``cmc``: the operator's command line."""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click
from rich.console import Console
from rich.logging import RichHandler

from sessions.cli_acceptance import acceptance
from sessions.cli_audit import audit
from sessions.cli_check import check
from sessions.cli_ops import COMMANDS as OPS_COMMANDS
from sessions.cli_soak import soak
from sessions.cli_stage import stage
from sessions.cli_stress import stress
from sessions.config_loader import ConfigError
from sessions.fixengine import EngineStartError, exit_process

if TYPE_CHECKING:
    from sessions.simulator.venue import Venue

console = Console()
errors = Console(stderr=True)


def _logging(level: int) -> None:
    logging.basicConfig(
        level=level,
        format="%(message)s",
        datefmt="%H:%M:%S",
        handlers=[RichHandler(console=errors, show_path=False, rich_tracebacks=False)],
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cross-market-connect")
def cli() -> None:
    """cross-market-connect: FIX gateway and OMS for cross-market spread trading."""


@cli.command()
@click.option(
    "--dashboard",
    is_flag=True,
    help="Serve the live page (its URL is printed) and keep the market trading until Ctrl-C "
    "or --seconds.",
)
@click.option(
    "--seconds",
    type=click.FloatRange(min=1),
    default=None,
    help="With --dashboard: stop after this long (default: until Ctrl-C).",
)
def demo(dashboard: bool, seconds: float | None) -> None:
    """The gateway trading the gold spread between two simulated venues, on loopback."""
    from sessions.demo import run_arbitrage_demo

    if seconds is not None and not dashboard:
        raise click.UsageError("--seconds goes with --dashboard (the plain demo has its script)")
    _logging(logging.WARNING)
    exit_process(run_arbitrage_demo(console, dashboard=dashboard, seconds=seconds))


@cli.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Gateway TOML file (see conf/demo.toml).",
)
@click.option(
    "--seconds", type=float, default=None, help="Stop after this long (default: until Ctrl-C)."
)
def gateway(config_path: Path, seconds: float | None) -> None:
    """Run the gateway: log on to every venue line and trade the configured pairs.

    With an [admin] table, the admin API listens too (`cmc sessions`, `cmc kill`...); its
    bearer token is read from the variable the table names (CMC_ADMIN_TOKEN by default).
    """
    from oms.receipt_writer import ReceiptWriterError
    from sessions.admin_api import AdminError
    from sessions.gateway import Gateway
    from sessions.gateway_config import load_gateway_config
    from sessions.stage import StageError
    from sessions.trading_report import TradeFeed, summarise, summary_table

    _logging(logging.INFO)
    try:
        config = load_gateway_config(config_path)
    except ConfigError as exc:
        errors.print(str(exc), highlight=False, markup=False)
        sys.exit(2)
    try:
        gw = Gateway(config)
    except AdminError as exc:
        errors.print(f"{config_path}: {exc}", highlight=False, markup=False)
        sys.exit(2)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):  # both end the run with its summary
        signal.signal(signum, lambda *_: stop.set())
    try:
        gw.start()
    except EngineStartError as exc:
        errors.print(f"{config_path}: the FIX engine could not start: {exc}")
        gw.stop()
        sys.exit(2)
    except (AdminError, ReceiptWriterError, StageError) as exc:
        errors.print(f"{config_path}: {exc}", highlight=False, markup=False)
        gw.stop()
        sys.exit(2)
    console.print(
        f"gateway started in stage {gw.stage.current.value}; receipts to "
        f"{config.receipts_url}; Ctrl-C to stop",
        highlight=False,
    )
    recovered = gw.recovered
    if recovered is not None and not recovered.empty:
        legs = ", ".join(
            f"{p.pair} {p.net_inner:+d}/{p.net_outer:+d} lots" for p in recovered.pairs.values()
        )
        console.print(
            f"recovered from the receipt store: {recovered.stats.orders} orders, "
            f"{recovered.stats.working} working (reconciled with their venues at the first "
            f"logons, then cancelled); pair legs {legs or 'none'}",
            highlight=False,
        )
    if gw.admin is not None:
        console.print(
            f"admin API at {gw.admin.url} (token from {gw.admin.config.token_env}); "
            f"`cmc sessions list --state-dir {gw.admin.state_file.parent}`",
            highlight=False,
        )
    ready_by = time.monotonic() + 30
    ready = False  # waited for in short steps, so that SIGTERM is heard meanwhile
    while not ready and not stop.is_set() and time.monotonic() < ready_by:
        ready = gw.wait_ready(0.5)
    if not ready and not stop.is_set():
        console.print(
            "[yellow]not every venue has a logged-on line and a book yet; "
            "is `cmc sim` running? Still trying...[/yellow]"
        )
    feed = TradeFeed(console, gw)
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            feed.poll()
            stop.wait(0.2)
        feed.poll()
    except KeyboardInterrupt:
        pass
    summaries = gw.oms.call(summarise)
    gw.stop()
    assert isinstance(summaries, dict)
    console.print(summary_table(summaries, None))


@cli.command("sim-demo")
@click.option("--seconds", default=6.0, show_default=True, help="How long continuous trading runs.")
@click.option("--seed", default=42, show_default=True, help="Seed of the scripted client.")
def sim_demo(seconds: float, seed: int) -> None:
    """Two simulated venues and a scripted client trading on both; what each saw."""
    from sessions.simulator.demo import run_demo

    _logging(logging.WARNING)
    exit_process(run_demo(console, seconds=seconds, seed=seed))


@cli.command()
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Simulator TOML file with one or more [[venues]].",
)
@click.option("--venue", "venue_ids", multiple=True, help="Run only these venue ids (repeatable).")
@click.option(
    "--seconds", type=float, default=None, help="Stop after this long (default: until Ctrl-C)."
)
def sim(config_path: Path, venue_ids: tuple[str, ...], seconds: float | None) -> None:
    """Run simulated FIX venues. Reads console commands from standard input (`help`)."""
    from sessions.simulator.config import load_simulator_config
    from sessions.simulator.console import SimConsole, stats_table

    _logging(logging.INFO)
    try:
        config = load_simulator_config(config_path)
    except ConfigError as exc:
        errors.print(str(exc), highlight=False, markup=False)
        sys.exit(2)
    chosen = [v for v in config.venues if not venue_ids or v.id in venue_ids]
    missing = set(venue_ids) - {v.id for v in config.venues}
    if missing:
        errors.print(
            f"{config_path}: no venue with id {', '.join(sorted(missing))}; "
            f"the file has {', '.join(v.id for v in config.venues)}"
        )
        sys.exit(2)
    from sessions.simulator.venue import Venue

    venues = [Venue(v) for v in chosen]
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    started: list[Venue] = []
    try:
        for venue in venues:
            try:
                venue.start()
            except EngineStartError as exc:
                errors.print(
                    f"{config_path}: venue {venue.id} could not start: {exc}. "
                    f"Stop whatever holds port {venue.config.port}, or change `port` "
                    f"for this venue.",
                    highlight=False,
                )
                _exit_after_logout(started, 2)
            started.append(venue)
        for venue in venues:
            symbols = ", ".join(venue.instruments)
            console.print(
                f"[bold]{venue.id}[/bold] listening on port {venue.config.port} as "
                f"{venue.config.comp_id}; clients {', '.join(venue.config.clients)}; "
                f"instruments {symbols}"
            )
        shell = SimConsole(venues, console)
        console.print("type `help` for console commands, `quit` or Ctrl-C to stop")
        reader = threading.Thread(target=_read_commands, args=(shell, stop), daemon=True)
        reader.start()
        deadline = None if seconds is None else time.monotonic() + seconds
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            stop.wait(0.2)
        console.print(stats_table(venues))
    except KeyboardInterrupt:
        pass
    _exit_after_logout(started, 0)


def _exit_after_logout(venues: list[Venue], code: int) -> NoReturn:
    """Log every client out, then leave without stopping the acceptors (see
    ``FixEngine.retire`` for the quickfix crash this avoids)."""
    for venue in venues:
        still = venue.retire()
        if still:
            errors.print(f"{venue.id}: no Logout answer from {', '.join(still)}; exiting anyway")
    exit_process(code)


def _read_commands(shell: object, stop: threading.Event) -> None:
    from sessions.simulator.console import SimConsole

    assert isinstance(shell, SimConsole)
    for line in sys.stdin:
        if not shell.execute(line):
            stop.set()
            return


@cli.command()
@click.option("--port", required=True, type=int, help="The venue's FIX port.")
@click.option("--sender", required=True, help="Our SenderCompID (one of the venue's clients).")
@click.option("--target", required=True, help="The venue's CompID.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option(
    "--store-dir",
    type=click.Path(path_type=Path),
    default=Path("var/trade"),
    show_default=True,
    help="Where this session's sequence numbers are kept.",
)
@click.option(
    "--reset-seq",
    is_flag=True,
    help="Start both sides' sequence numbers at 1 (ResetSeqNumFlag on Logon).",
)
@click.option(
    "--logon-timeout",
    type=float,
    default=10.0,
    show_default=True,
    help="Seconds to wait for the logon.",
)
def trade(
    port: int,
    sender: str,
    target: str,
    host: str,
    store_dir: Path,
    reset_seq: bool,
    logon_timeout: float,
) -> None:
    """Trade against a venue by hand: type orders, see execution reports as they arrive."""
    from sessions.simulator.client import FixClient
    from sessions.simulator.trade_console import TradeConsole

    _logging(logging.WARNING)
    client = FixClient(
        port=port,
        sender=sender,
        target=target,
        host=host,
        store_dir=store_dir,
        reset_on_logon=reset_seq,
    )
    try:
        client.start(wait_logon_s=logon_timeout)
    except TimeoutError:
        client.stop()
        errors.print(
            f"could not log on to {target} at {host}:{port} as {sender}: is the venue "
            f"running, and is {sender} in its clients list? If the venue keeps sequence "
            f"numbers from an earlier session, try --reset-seq."
        )
        sys.exit(1)
    shell = TradeConsole(client, console)
    console.print(f"logged on to {target} as {sender}; type `help` for commands")
    try:
        for line in sys.stdin:
            if not shell.execute(line):
                break
        shell.drain(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        client.stop()


cli.add_command(audit)
cli.add_command(acceptance)
cli.add_command(stress)
cli.add_command(soak)
cli.add_command(check)
for _command in OPS_COMMANDS:
    cli.add_command(_command)
cli.add_command(stage)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
