"""``cmc stress``: client orders through a running gateway at rising rates, until it saturates.

The gateway is found as the operations commands find it (``admin.json`` in its state
directory, or ``--url``), and asked, before and after, for its lines and its risk states;
the orders go through its client acceptor, as the clients named in its configuration.
See :mod:`sessions.stress` for what is measured.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, cast

import click
from rich.console import Console
from rich.table import Table

from sessions.cli_ops import (
    DEFAULT_STATE_DIR,
    EXIT_UNREACHABLE,
    AdminClient,
    OpsError,
    Options,
)

if TYPE_CHECKING:
    from sessions.gateway_config import GatewayConfig
    from sessions.stress import Sides, StepResult, StressPlan, StressResult

EXIT_CODES = """\b
Exit codes:
  0  the steps ran (where the gateway saturates is in the report)
  1  a client could not log on to the gateway's client acceptor
  2  the command line or the configuration is wrong
  3  no gateway answers (not running, or look elsewhere: --url, --state-dir)
  4  not authorised (the admin token variable is unset, or not the gateway's)"""


def _stop(code: int, message: str) -> NoReturn:
    from sessions.fixengine import exit_process

    Console(stderr=True).print(message, highlight=False, markup=False, soft_wrap=True)
    exit_process(code)


def _rates(text: str) -> tuple[int, ...]:
    try:
        rates = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: give orders per second as whole numbers, e.g. 50,100,200",
            param_hint="--rates",
        ) from None
    if not rates or any(r <= 0 for r in rates) or list(rates) != sorted(set(rates)):
        raise click.BadParameter(
            f"{text!r}: give rising rates above 0, e.g. 50,100,200", param_hint="--rates"
        )
    return rates


@click.command(epilog=EXIT_CODES)
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="The running gateway's TOML file: its [client_acceptor] is where the orders go.",
)
@click.option(
    "--url",
    envvar="CMC_ADMIN_URL",
    default=None,
    metavar="URL",
    help="The admin API's URL (env CMC_ADMIN_URL); default: read from STATE_DIR/admin.json.",
)
@click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="The gateway's state directory, where it writes admin.json (default: the one "
    f"above the file's store_dir, else {DEFAULT_STATE_DIR}).",
)
@click.option("--token-env", default=None, metavar="NAME", help="The admin token's variable.")
@click.option(
    "--client",
    "client_ids",
    multiple=True,
    metavar="COMPID",
    help="A client of the acceptor to send as (repeatable; default: the first one listed). "
    "Use CompIDs set aside for testing: a client logged on elsewhere would be refused.",
)
@click.option("--venue", default=None, help="ExDestination(100) (default: the first venue).")
@click.option("--symbol", default=None, help="The contract (default: the venue's first).")
@click.option("--price", default=None, help="Limit price of every order (default: its prev_close).")
@click.option("--qty", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--side",
    type=click.Choice(["both", "buy", "sell"]),
    default="both",
    show_default=True,
    help="both: alternate, so that no position builds up.",
)
@click.option(
    "--rates",
    default="50,100,200,400,800,1600",
    show_default=True,
    help="Orders per second offered, one step each.",
)
@click.option("--step-s", type=click.FloatRange(min=0.1), default=5.0, show_default=True)
@click.option(
    "--max-p99-ms",
    type=click.FloatRange(min=0),
    default=50.0,
    show_default=True,
    help="A step breaks when its p99 round trip is above this.",
)
@click.option(
    "--max-reject-pct",
    type=click.FloatRange(min=0, max=100),
    default=1.0,
    show_default=True,
    help="... or when more than this share of its orders is rejected or unanswered.",
)
@click.option(
    "--grace-s",
    type=click.FloatRange(min=0),
    default=2.0,
    show_default=True,
    help="After a step's last order, how long answers may take before they count missing.",
)
@click.option("--all-steps", is_flag=True, help="Run every step, past saturation too.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write a PNG of round trips, rejects and achieved rate against the rate offered.",
)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=15.0, show_default=True)
def stress(
    config_path: Path,
    url: str | None,
    state_dir: Path | None,
    token_env: str | None,
    client_ids: tuple[str, ...],
    venue: str | None,
    symbol: str | None,
    price: str | None,
    qty: int,
    side: str,
    rates: str,
    step_s: float,
    max_p99_ms: float,
    max_reject_pct: float,
    grace_s: float,
    all_steps: bool,
    as_json: bool,
    plot_path: Path | None,
    timeout: float,
) -> None:
    """Stress a running gateway: synthetic FIX clients send limit IOC orders through its
    client acceptor at each rate of --rates for --step-s seconds, timing each order to its
    first answer, and step up until a step's p99 round trip or its share of rejects breaks
    its bound. Prints each step (offered, achieved, p50/p99, rejects) and where the gateway
    saturates. Run it against a gateway set aside for the test: its risk sees every order."""
    from sessions.config_loader import ConfigError
    from sessions.gateway_config import load_gateway_config
    from sessions.stress import StressPlan

    plan_rates = _rates(rates)
    logging.basicConfig(level=logging.CRITICAL)
    try:
        config = load_gateway_config(config_path)
    except ConfigError as exc:
        _stop(2, str(exc))
    acceptor = config.client_acceptor
    if acceptor is None:
        _stop(
            2,
            f"{config_path} has no [client_acceptor]: the stress test sends its orders "
            "through the gateway's client acceptor",
        )
    known = {c.comp_id: c for c in acceptor.clients}
    chosen = list(client_ids) or [c.comp_id for c in acceptor.clients[:1]]
    if not chosen:
        _stop(2, f"{config_path}: the [client_acceptor] lists no client to send as")
    unknown = [c for c in chosen if c not in known]
    if unknown:
        _stop(
            2,
            f"--client {', '.join(unknown)}: not a client of the acceptor; it has "
            f"{', '.join(known) or 'none'}",
        )
    venues = {v.id: v for v in config.venues}
    venue_id = venue or config.venues[0].id
    if venue_id not in venues:
        _stop(2, f"--venue {venue_id}: no such venue; the gateway has {', '.join(venues)}")
    specs = {i.symbol: i for i in venues[venue_id].instruments}
    symbol = symbol or venues[venue_id].instruments[0].symbol
    if symbol not in specs:
        _stop(2, f"--symbol {symbol}: {venue_id} lists {', '.join(specs)}")
    try:
        limit = Decimal(price) if price is not None else specs[symbol].prev_close
    except InvalidOperation:
        _stop(2, f"--price {price!r} is not a price")
    if limit is None:
        _stop(2, f"{venue_id} {symbol} has no prev_close: give --price")
    plan = StressPlan(
        rates=plan_rates,
        step_s=step_s,
        venue=venue_id,
        symbol=symbol,
        price=limit,
        qty=qty,
        sides=cast("Sides", side),
        max_p99_ms=max_p99_ms,
        max_reject_pct=max_reject_pct,
        grace_s=grace_s,
        stop_at_saturation=not all_steps,
    )
    options = Options(url, state_dir or config.store_dir.parent, token_env, as_json, timeout)
    try:
        admin = AdminClient(options)
        lines = admin.get("/sessions")["lines"]
        before = admin.get("/risk")["states"]
    except OpsError as exc:
        _stop(exc.code, exc.message)
    if not any(x["venue"] == venue_id and x["logged_on"] for x in lines):
        _stop(EXIT_UNREACHABLE, f"the gateway has no line to {venue_id} logged on: nothing to test")
    code = _run(plan, config, chosen, admin, before, as_json, plot_path, str(config_path))
    from sessions.fixengine import exit_process

    exit_process(code)


def _run(
    plan: StressPlan,
    config: GatewayConfig,
    chosen: list[str],
    admin: AdminClient,
    before: dict[str, str],
    as_json: bool,
    plot_path: Path | None,
    config_name: str,
) -> int:
    from sessions.stress import StressClient, Tracker, plot_png, run_steps

    acceptor = config.client_acceptor
    assert acceptor is not None
    host = "127.0.0.1" if acceptor.host in ("0.0.0.0", "") else acceptor.host
    known = {c.comp_id: c for c in acceptor.clients}
    current = [Tracker()]

    def route(text: str) -> None:
        current[0].answer(text)

    def new_tracker() -> Tracker:
        current[0] = Tracker()
        return current[0]

    out = Console(stderr=as_json)
    clients: list[StressClient] = []
    try:
        for comp_id in chosen:
            spec = known[comp_id]
            password = None
            if spec.password_env is not None:
                password = os.environ.get(spec.password_env)
                if not password:
                    _stop(2, f"{spec.password_env} is not set: {comp_id} logs on with a password")
            client = StressClient(
                route,
                port=acceptor.port,
                sender=comp_id,
                target=acceptor.comp_id,
                host=host,
                reset_on_logon=True,
                username=spec.username,
                password=password,
            )
            clients.append(client)
            try:
                client.start(wait_logon_s=10.0)
            except TimeoutError:
                said = [m.get(58) for m in client.received if m.msg_type == "5" and m.get(58)]
                _stop(
                    1,
                    f"{comp_id} could not log on to the client acceptor at {host}:"
                    f"{acceptor.port} as {comp_id} -> {acceptor.comp_id}"
                    + (f": {said[-1]}" if said else "")
                    + f" (is the gateway of {config_name} the one running?)",
                )
        prefix = f"ST{os.getpid() % 100_000}-{int.from_bytes(os.urandom(3), 'big'):x}-"
        numbers = iter(range(1, 1 << 62))

        def ids() -> str:
            return f"{prefix}{next(numbers)}"

        def say(step: StepResult) -> None:
            p99 = step.p99_ns
            Console(stderr=True).print(
                f"{step.offered_per_s:,} orders/s offered: {step.sent:,} sent, p99 "
                + ("-" if p99 is None else f"{p99 / 1e6:,.2f} ms")
                + f", {step.reject_share * 100:.1f} % rejected or unanswered"
                + (f"  [red]breaks: {'; '.join(step.broke)}[/red]" if step.broke else ""),
                highlight=False,
            )

        result = run_steps(plan, [c.send_text for c in clients], new_tracker, ids, on_step=say)
    finally:
        for client in clients:
            client.stop()
    try:
        after = admin.get("/risk")["states"]
    except OpsError:
        after = {}
    changed = {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}
    out.print(_table(result))
    saturated, sustained = result.saturation, result.sustained
    if saturated is not None:
        out.print(
            f"saturates at {saturated.offered_per_s:,} orders/s ({'; '.join(saturated.broke)})"
            + (
                f"; sustains {sustained.offered_per_s:,} orders/s"
                if sustained is not None
                else "; the first step already broke"
            ),
            highlight=False,
        )
    else:
        out.print(
            f"no bound broken up to {plan.rates[-1]:,} orders/s: raise --rates to find where "
            "it saturates",
            highlight=False,
        )
    if changed:
        out.print(
            "[yellow]risk states changed during the test: "
            + ", ".join(f"{k} {was} -> {now}" for k, (was, now) in changed.items())
            + " (`cmc resume` makes a scope ACTIVE again)[/yellow]"
        )
    if plot_path is not None:
        plot_png(result, plot_path)
        out.print(f"plot: {plot_path}", highlight=False)
    if as_json:
        document = {
            **result.as_json(),
            "gateway": admin.target.url,
            "client_acceptor": f"{host}:{acceptor.port}",
            "clients": chosen,
            "risk_states_changed": {k: {"before": b, "after": a} for k, (b, a) in changed.items()},
        }
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    return 0


def _table(result: StressResult) -> Table:
    table = Table(title="stress test: client orders through the gateway", title_justify="left")
    for name in (
        "offered/s",
        "sent/s",
        "achieved/s",
        "orders",
        "p50 ms",
        "p99 ms",
        "rejected",
        "unanswered",
        "reject %",
        "bound broken",
    ):
        table.add_column(name, justify="left" if name == "bound broken" else "right")
    for s in result.steps:
        p50, p99 = s.p50_ns, s.p99_ns
        table.add_row(
            f"{s.offered_per_s:,}",
            f"{s.sent_per_s:,.0f}",
            f"{s.achieved_per_s:,.0f}",
            f"{s.sent:,}",
            "-" if p50 is None else f"{p50 / 1e6:,.2f}",
            "-" if p99 is None else f"{p99 / 1e6:,.2f}",
            f"{s.rejected:,}",
            f"{s.unanswered:,}",
            f"{s.reject_share * 100:.1f}",
            "; ".join(s.broke) or "-",
        )
    return table
