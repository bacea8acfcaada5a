"""``cmc sessions``, ``orders``, ``positions``, ``risk``, ``kill``, ``resume``, ``dashboard``:
operating a running gateway through its admin API.

The gateway is found from ``--url``, else from the ``admin.json`` it writes into its state
directory (``--state-dir``, the directory above its ``store_dir``: ``var/gateway`` by
default). The token comes from the environment variable the gateway names there
(``CMC_ADMIN_TOKEN`` by default). Every command prints an aligned table, or with ``--json``
the API's answer as it came. Commands that change something send the OS user name as who
asks and ``--reason`` as why, and those that can stop trading (logout, failover, failback,
reset-seq, set-seq, kill) ask first unless given ``--yes``.
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click
from rich.console import Console
from rich.table import Table

console = Console()
errors = Console(stderr=True)

DEFAULT_STATE_DIR = Path("var/gateway")
DEFAULT_TOKEN_ENV = "CMC_ADMIN_TOKEN"
ADMIN_FILE = "admin.json"  # as sessions.admin_api writes it (not imported: it pulls in uvicorn)

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_UNAUTHORISED, EXIT_NOT_CONFIRMED = 1, 2, 3, 4, 5
EXIT_CODES = """\b
Exit codes:
  0  done
  1  the gateway refused or could not do it (the message says why)
  2  the command line is wrong
  3  no gateway answers (not running, or look elsewhere: --url, --state-dir)
  4  not authorised (the token variable is unset, or not the gateway's token)
  5  not confirmed (answered no, or no terminal to ask at and no --yes)"""

START_HINT = (
    "start one with `cmc gateway --config conf/demo.toml` (its configuration needs an "
    f"[admin] table, and {DEFAULT_TOKEN_ENV} set)"
)

F = TypeVar("F", bound=Callable[..., Any])


class OpsError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _fail(code: int, message: str) -> NoReturn:
    raise OpsError(code, message)


# -- finding and asking the gateway ---------------------------------------------------------


@dataclass(frozen=True)
class Options:
    url: str | None
    state_dir: Path
    token_env: str | None
    as_json: bool
    timeout: float


@dataclass(frozen=True)
class Target:
    url: str
    token_env: str


def find_gateway(options: Options) -> Target:
    if options.url:
        return Target(options.url.rstrip("/"), options.token_env or DEFAULT_TOKEN_ENV)
    path = options.state_dir / ADMIN_FILE
    try:
        state = json.loads(path.read_text())
    except FileNotFoundError:
        _fail(
            EXIT_UNREACHABLE,
            f"no running gateway found: {path} does not exist. If one runs with another "
            f"state directory, give it with --state-dir (the directory above its store_dir) "
            f"or its URL with --url; otherwise {START_HINT}.",
        )
    except (OSError, ValueError) as exc:
        _fail(EXIT_UNREACHABLE, f"cannot read {path} ({exc}); give the gateway's --url")
    if not isinstance(state, dict) or not isinstance(state.get("url"), str):
        _fail(EXIT_UNREACHABLE, f"{path} does not say where the gateway is; give its --url")
    token_env = options.token_env or str(state.get("token_env") or DEFAULT_TOKEN_ENV)
    return Target(state["url"].rstrip("/"), token_env)


class AdminClient:
    """A few JSON requests to the admin API (standard library only: quick to start)."""

    def __init__(self, options: Options) -> None:
        self.target = find_gateway(options)
        name = self.target.token_env
        token = os.environ.get(name, "")
        if not token:
            _fail(
                EXIT_UNAUTHORISED,
                f"{name} is not set: set it to the admin token the gateway was started with "
                f"(the gateway reads it from {name} too)",
            )
        self._token = token
        self.token_env = name
        self._timeout = options.timeout
        # No proxy, whatever the environment says: the admin API is on this machine.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def token(self) -> str:
        return self._token

    def get(self, path: str, **query: str) -> dict[str, Any]:
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return self._request("GET", path + suffix, None)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", path, body)

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        url = f"{self.target.url}/v1{path}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self._token}")
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                return _json(response.read(), url)
        except urllib.error.HTTPError as exc:
            answer = _json(exc.read(), url, strict=False)
            message = str(answer.get("error") or exc.reason)
            if exc.code == 401:
                name = self.target.token_env
                _fail(
                    EXIT_UNAUTHORISED,
                    f"the gateway refused the token in {name}: set {name} to the token the "
                    "gateway was started with (its own environment's value of "
                    f"{answer.get('token_env') or name})",
                )
            _fail(EXIT_REFUSED, message)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            _fail(
                EXIT_UNREACHABLE,
                f"no gateway answers at {self.target.url} ({reason}). If it has stopped, "
                f"{START_HINT}; if it runs elsewhere, give --url or --state-dir.",
            )


def _json(raw: bytes, url: str, *, strict: bool = True) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        if strict:
            _fail(EXIT_REFUSED, f"{url} did not answer with JSON; is it a cmc gateway?")
        return {}
    return data if isinstance(data, dict) else {"result": data}


# -- command plumbing -----------------------------------------------------------------------


def admin_options(command: F) -> F:
    """The options every command shares, gathered into ``options: Options``; an
    ``OpsError`` becomes its message on stderr and its exit code."""

    @functools.wraps(command)
    def run(
        url: str | None,
        state_dir: Path,
        token_env: str | None,
        as_json: bool,
        timeout: float,
        **kwargs: Any,
    ) -> None:
        options = Options(url, state_dir, token_env, as_json, timeout)
        try:
            command(options=options, **kwargs)
        except OpsError as exc:
            errors.print(exc.message, highlight=False, markup=False, soft_wrap=True)
            sys.exit(exc.code)

    for option in reversed(
        [
            click.option(
                "--url",
                envvar="CMC_ADMIN_URL",
                default=None,
                metavar="URL",
                help="The admin API's URL (env CMC_ADMIN_URL); default: read from "
                "STATE_DIR/admin.json.",
            ),
            click.option(
                "--state-dir",
                type=click.Path(path_type=Path, file_okay=False),
                default=DEFAULT_STATE_DIR,
                show_default=True,
                help="The gateway's state directory (the one above its store_dir), where it "
                "writes admin.json.",
            ),
            click.option(
                "--token-env",
                default=None,
                metavar="NAME",
                help="The environment variable holding the admin token (default: the one "
                f"admin.json names, else {DEFAULT_TOKEN_ENV}).",
            ),
            click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON."),
            click.option(
                "--timeout",
                type=click.FloatRange(min=0.1),
                default=15.0,
                show_default=True,
                help="Seconds to wait for the gateway's answer.",
            ),
        ]
    ):
        run = option(run)
    return run  # type: ignore[return-value]


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _confirm(yes: bool, question: str) -> None:
    if yes:
        return
    try:
        agreed = click.confirm(question, default=False, err=True)
    except click.Abort:
        _fail(EXIT_NOT_CONFIRMED, "\nnot confirmed; nothing was done (--yes skips the question)")
    if not agreed:
        _fail(EXIT_NOT_CONFIRMED, "not confirmed; nothing was done (--yes skips the question)")


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


_STAGE_STYLE = {"shadow": "magenta", "canary": "yellow", "live": "green"}
_STAGE_NOTE = {
    "shadow": " (paper: orders, fills and positions below are not real)",
    "canary": " (real orders within the canary caps)",
}


def stage_header(answer: dict[str, Any]) -> str:
    """The line above every status table: the gateway's stage, so that paper positions are
    never read as real ones (README: Delivery stages)."""
    stage = str(answer.get("stage") or "unknown")
    style = _STAGE_STYLE.get(stage, "white")
    return f"stage: [bold {style}]{stage.upper()}[/bold {style}]{_STAGE_NOTE.get(stage, '')}"


def _yes_no(value: object) -> str:
    return "[green]yes[/green]" if value else "[red]no[/red]"


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def lines_table(lines: list[dict[str, Any]], *, full: bool) -> Table:
    table = Table(title="FIX lines", title_justify="left")
    for name in ("venue", "line", "CompIDs (ours -> venue's)", "address", "logged on"):
        table.add_column(name)
    table.add_column("active")
    if full:
        table.add_column("enabled")
        table.add_column("next out", justify="right")
        table.add_column("next in", justify="right")
        table.add_column("heartbeat", justify="right")
    for line in lines:
        row = [
            line["venue"],
            line["role"],
            f"{line['sender_comp_id']} -> {line['target_comp_id']}",
            line["address"],
            _yes_no(line["logged_on"]),
            "[bold]active[/bold]" if line["active"] else "",
        ]
        if full:
            row += [
                "yes" if line["enabled"] else "[yellow]held out[/yellow]",
                _dash(line["next_sender_seq"]),
                _dash(line["next_target_seq"]),
                f"{line['heartbeat_s']} s",
            ]
        table.add_row(*row)
    return table


role_option = click.option(
    "--role",
    type=click.Choice(["primary", "backup"]),
    default=None,
    help="One line of the venue (default: both).",
)
reason_option = click.option(
    "--reason", default="", help="Why (kept in the gateway's log and receipts)."
)
yes_option = click.option("--yes", is_flag=True, help="Do it without asking first.")


# -- cmc sessions ---------------------------------------------------------------------------


@click.group(epilog=EXIT_CODES)
def sessions() -> None:
    """A running gateway's FIX lines: see them, log them on or out, switch, fix sequence
    numbers."""


@sessions.command("list", epilog=EXIT_CODES)
@admin_options
def sessions_list(options: Options) -> None:
    """Every line of every venue: who, where, logged on, which is active."""
    answer = AdminClient(options).get("/sessions")
    if options.as_json:
        _print_json(answer)
    else:
        console.print(stage_header(answer), highlight=False)
        console.print(lines_table(answer["lines"], full=False))


@sessions.command("status", epilog=EXIT_CODES)
@click.argument("venue", required=False)
@admin_options
def sessions_status(options: Options, venue: str | None) -> None:
    """The lines (of VENUE, or all) in full: sequence numbers, held out or not, heartbeat."""
    path = "/sessions" if venue is None else f"/sessions/{_quote(venue)}"
    answer = AdminClient(options).get(path)
    if options.as_json:
        _print_json(answer)
    else:
        console.print(stage_header(answer), highlight=False)
        console.print(lines_table(answer["lines"], full=True))


def _act(
    options: Options,
    venue: str,
    action: str,
    body: dict[str, Any],
    done: Callable[[dict[str, Any]], str],
) -> None:
    answer = AdminClient(options).post(
        f"/sessions/{_quote(venue)}/{action}", {"who": _who(), **body}
    )
    if options.as_json:
        _print_json(answer)
        return
    console.print(done(answer), highlight=False)
    console.print(lines_table(answer["lines"], full=True))


def _lines_named(venue: str, role: str | None) -> str:
    return f"{venue} {role} line" if role else f"both lines of {venue}"


@sessions.command("logon", epilog=EXIT_CODES)
@click.argument("venue")
@role_option
@reason_option
@admin_options
def sessions_logon(options: Options, venue: str, role: str | None, reason: str) -> None:
    """Let a line logged out by `cmc sessions logout` log on again (at the gateway's next
    connection attempt: reconnect_s)."""
    _act(
        options,
        venue,
        "logon",
        {"role": role, "why": reason},
        lambda _: (
            f"logon requested for {_lines_named(venue, role)}; it connects at the "
            "gateway's next attempt (reconnect_s)"
        ),
    )


@sessions.command("logout", epilog=EXIT_CODES)
@click.argument("venue")
@role_option
@reason_option
@yes_option
@admin_options
def sessions_logout(options: Options, venue: str, role: str | None, reason: str, yes: bool) -> None:
    """Log a line (or both) out and keep it out until `cmc sessions logon`. Orders move to
    the other line if it is up; with both out, the venue gets no orders."""
    _confirm(yes, f"Log out {_lines_named(venue, role)} and keep it out?")
    _act(
        options,
        venue,
        "logout",
        {"role": role, "why": reason},
        lambda _: (
            f"logout requested for {_lines_named(venue, role)}; it stays out until "
            f"`cmc sessions logon {venue}`"
        ),
    )


@sessions.command("failover", epilog=EXIT_CODES)
@click.argument("venue")
@reason_option
@yes_option
@admin_options
def sessions_failover(options: Options, venue: str, reason: str, yes: bool) -> None:
    """Send the venue's orders and take its market data on the backup line (which must be
    logged on) until `cmc sessions failback`."""
    _confirm(yes, f"Move {venue}'s orders and market data to its backup line?")
    _act(
        options,
        venue,
        "failover",
        {"why": reason},
        lambda a: f"{venue}: active line now {a['active']}",
    )


@sessions.command("failback", epilog=EXIT_CODES)
@click.argument("venue")
@reason_option
@yes_option
@admin_options
def sessions_failback(options: Options, venue: str, reason: str, yes: bool) -> None:
    """Send the venue's orders on its primary line again (which must be logged on)."""
    _confirm(yes, f"Move {venue}'s orders and market data back to its primary line?")
    _act(
        options,
        venue,
        "failback",
        {"why": reason},
        lambda a: f"{venue}: active line now {a['active']}",
    )


@sessions.command("snapshot", epilog=EXIT_CODES)
@click.argument("venue")
@click.option("--symbol", default=None, help="Only this instrument (default: all the venue's).")
@reason_option
@admin_options
def sessions_snapshot(options: Options, venue: str, symbol: str | None, reason: str) -> None:
    """Ask the venue for fresh market data snapshots on the active line, as gap repair
    does: the books are stale (no trigger fires on them) until the snapshots arrive."""
    _act(
        options,
        venue,
        "snapshot",
        {"symbol": symbol, "why": reason},
        lambda a: f"{venue}: snapshot of {a['symbol']} asked on the {a['line']} line",
    )


@sessions.command("reset-seq", epilog=EXIT_CODES)
@click.argument("venue")
@role_option
@reason_option
@yes_option
@admin_options
def sessions_reset_seq(
    options: Options, venue: str, role: str | None, reason: str, yes: bool
) -> None:
    """Start a line's sequence numbers (both sides) at 1: it logs out and on again with
    ResetSeqNumFlag(141)=Y. Messages not yet recovered are lost to both sides."""
    _confirm(
        yes,
        f"Reset the sequence numbers of {_lines_named(venue, role)} (it logs out and on again)?",
    )
    _act(
        options,
        venue,
        "reset-seq",
        {"role": role, "why": reason},
        lambda _: (
            f"{_lines_named(venue, role)}: sequence numbers reset; the next Logon "
            "carries ResetSeqNumFlag=Y"
        ),
    )


@sessions.command("set-seq", epilog=EXIT_CODES)
@click.argument("venue")
@click.option("--role", type=click.Choice(["primary", "backup"]), required=True, help="Which line.")
@click.option(
    "--next-sender", type=click.IntRange(min=1), default=None, help="Next MsgSeqNum we send."
)
@click.option(
    "--next-target",
    type=click.IntRange(min=1),
    default=None,
    help="Next MsgSeqNum we expect from the venue.",
)
@reason_option
@yes_option
@admin_options
def sessions_set_seq(
    options: Options,
    venue: str,
    role: str,
    next_sender: int | None,
    next_target: int | None,
    reason: str,
    yes: bool,
) -> None:
    """Set a line's next sequence numbers, as agreed with the venue."""
    if next_sender is None and next_target is None:
        raise click.UsageError("give --next-sender, --next-target or both")
    _confirm(
        yes,
        f"Set {venue} {role} line's next sequence numbers "
        f"(out: {_dash(next_sender)}, in: {_dash(next_target)})?",
    )
    _act(
        options,
        venue,
        "set-seq",
        {"role": role, "next_sender": next_sender, "next_target": next_target, "why": reason},
        lambda _: f"{venue} {role} line: next sequence numbers set",
    )


# -- orders, positions, risk ----------------------------------------------------------------


@click.command(epilog=EXIT_CODES)
@click.option("--working", is_flag=True, help="Only the orders the venues may still execute.")
@admin_options
def orders(options: Options, working: bool) -> None:
    """The gateway's orders today (oldest first)."""
    answer = AdminClient(options).get("/orders", working="1" if working else "0")
    if options.as_json:
        _print_json(answer)
        return
    rows = answer["orders"]
    console.print(stage_header(answer), highlight=False)
    table = Table(title="working orders" if working else "orders", title_justify="left")
    for name in ("ClOrdID", "venue", "symbol", "side", "qty", "price", "status", "filled"):
        justify = "right" if name in ("qty", "price", "filled") else "left"
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    table.add_column("pair")
    for o in rows:  # an order by its first ClOrdID, the one `cmc kill` reports
        table.add_row(
            o["first_clordid"],
            o["venue"],
            o["symbol"],
            o["side"],
            str(o["qty"]),
            _dash(o["price"]),
            o["status"],
            str(o["filled"]),
            _dash(o["pair_id"]),
        )
    console.print(table)
    if not rows:
        console.print("no working orders" if working else "no orders today")


@click.command(epilog=EXIT_CODES)
@admin_options
def positions(options: Options) -> None:
    """Positions: per pair (units, imbalance) and per contract (position, working orders),
    and today's P&L."""
    answer = AdminClient(options).get("/positions")
    if options.as_json:
        _print_json(answer)
        return
    console.print(stage_header(answer), highlight=False)
    pairs = Table(title="pairs", title_justify="left")
    for name in ("pair", "units", "inner lots", "outer lots", "imbalance", "trade working"):
        pairs.add_column(name, justify="left" if name == "pair" else "right")
    for p in answer["pairs"]:
        pairs.add_row(
            p["pair"],
            str(p["units"]),
            f"{p['inner']['lots']} {p['inner']['venue']} {p['inner']['symbol']}",
            f"{p['outer']['lots']} {p['outer']['venue']} {p['outer']['symbol']}",
            p["imbalance"],
            "yes" if p["trade_working"] else "no",
        )
    contracts = Table(title="contracts", title_justify="left")
    for name in ("venue", "symbol", "position", "working buys", "working sells"):
        justify = "left" if name in ("venue", "symbol") else "right"
        contracts.add_column(name, justify=justify)  # type: ignore[arg-type]
    for c in answer["contracts"]:
        contracts.add_row(
            c["venue"],
            c["symbol"],
            str(c["position"]),
            str(c["working_buys"]),
            str(c["working_sells"]),
        )
    console.print(pairs)
    console.print(contracts)
    console.print(f"today's P&L: {answer['pnl']} {answer['currency']}", highlight=False)


@click.group(epilog=EXIT_CODES)
def risk() -> None:
    """A running gateway's risk: trading states."""


@risk.command("status", epilog=EXIT_CODES)
@admin_options
def risk_status(options: Options) -> None:
    """The trading state of the whole gateway, each venue and each strategy."""
    answer = AdminClient(options).get("/risk")
    if options.as_json:
        _print_json(answer)
        return
    console.print(stage_header(answer), highlight=False)
    table = Table(title="trading states", title_justify="left")
    table.add_column("scope")
    table.add_column("state")
    colours = {"ACTIVE": "green", "REDUCING": "yellow", "HALTED": "red"}
    for scope, state in answer["states"].items():
        colour = colours.get(str(state).upper(), "white")
        table.add_row(scope, f"[{colour}]{state}[/{colour}]")
    console.print(table)


# -- the kill switch ------------------------------------------------------------------------


@click.command(epilog=EXIT_CODES)
@click.option("--venue", default=None, help="Halt only this venue (default: everything).")
@click.option("--reason", required=True, help="Why (required: kept in the receipts).")
@yes_option
@admin_options
def kill(options: Options, venue: str | None, reason: str, yes: bool) -> None:
    """Pull the kill switch: halt trading (everywhere, or on one venue) and cancel every
    working order there. `cmc resume` reopens it."""
    where = f"venue {venue}" if venue else "EVERY venue"
    _confirm(yes, f"Halt trading on {where} and cancel its working orders?")
    answer = AdminClient(options).post("/kill", {"venue": venue, "who": _who(), "why": reason})
    if options.as_json:
        _print_json(answer)
        return
    change = answer["state_change"] or "already halted"
    console.print(f"[bold red]halted[/bold red] {answer['scope']} ({change})")
    cancels = answer["cancels"]
    console.print(
        f"cancel sent for {len(cancels)} working order(s)"
        + (f": {', '.join(cancels)}" if cancels else ""),
        highlight=False,
    )
    for missed in answer.get("not_cancelled", []):
        console.print(
            f"[yellow]no cancel could be sent for {missed['clordid']}: {missed['why']}[/yellow]"
        )


@click.command(epilog=EXIT_CODES)
@click.option("--venue", default=None, help="Reopen only this venue (default: the whole).")
@reason_option
@admin_options
def resume(options: Options, venue: str | None, reason: str) -> None:
    """Set trading ACTIVE again after `cmc kill` (or a rule's halt)."""
    body = {"venue": venue, "who": _who(), "why": reason}
    answer = AdminClient(options).post("/resume", body)
    if options.as_json:
        _print_json(answer)
        return
    scope = answer["scope"]
    if answer["changed"]:
        console.print(f"[green]{scope} is ACTIVE again[/green]")
    else:
        console.print(f"{scope} was not halted or reducing; nothing changed")


# -- the live page --------------------------------------------------------------------------


@click.command(epilog=EXIT_CODES)
@click.option("--no-browser", is_flag=True, help="Print the page's URL; open no browser.")
@admin_options
def dashboard(options: Options, no_browser: bool) -> None:
    """Open the gateway's live page: both books, the spread, pairs, lines, risk, receipts,
    and a kill switch.

    The browser gets the token in the URL's fragment (after #), which it never sends to the
    gateway; the page moves it into the tab's own storage, and out of the address bar and
    the history, at once.
    """
    client = AdminClient(options)
    client.get("/risk")  # the gateway answers and takes this token, before a browser goes
    url = f"{client.target.url}/dashboard"
    if options.as_json:
        _print_json({"url": url, "token_env": client.token_env})
    else:
        console.print(f"dashboard at {url}", highlight=False, soft_wrap=True)
    if no_browser:
        if not options.as_json:
            console.print(
                f"open it and paste the token from {client.token_env} when it asks",
                highlight=False,
            )
        return
    fragment = urllib.parse.urlencode({"token": client.token, "who": _who()})
    if not webbrowser.open(f"{url}#{fragment}", new=2):
        errors.print(
            f"no browser could be started here; open {url} in one and paste the token "
            f"from {client.token_env} when it asks",
            highlight=False,
            soft_wrap=True,
        )


def _quote(part: str) -> str:
    return urllib.parse.quote(part, safe="")


COMMANDS: tuple[click.Command, ...] = (
    sessions,
    orders,
    positions,
    risk,
    kill,
    resume,
    dashboard,
)
"""What ``cmc`` registers from here."""
