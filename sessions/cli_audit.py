"""``cmc audit``: verify, export, trace and reconcile the receipt store.

Every command reads the store given by ``--db`` (or ``CMC_RECEIPTS_URL``), else the one
named in the gateway configuration given by ``--config``, else the gateway's default SQLite
file. Readers never migrate or write the store. Exit codes: 0 all good, 1 the audit found
something (a broken chain, a gap, nothing to trace), 2 the command could not run (bad
input, no store).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

if TYPE_CHECKING:
    from oms.audit.selection import Selection
    from oms.receipts import ReceiptStore
    from sessions.gateway_config import GatewayConfig

console = Console()
errors = Console(stderr=True)

DEFAULT_STORE = "sqlite:///var/gateway/receipts.sqlite"
"""Where ``cmc gateway`` keeps receipts unless its configuration says otherwise."""

F = TypeVar("F", bound=Callable[..., Any])


def store_options(command: F) -> F:
    command = click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path),
        default=None,
        help="The gateway's TOML file: its receipts_url is the store (and its sessions are "
        "the ones reconciled).",
    )(command)
    return click.option(
        "--db",
        envvar="CMC_RECEIPTS_URL",
        default=None,
        metavar="URL",
        help="The receipt store's database URL (env CMC_RECEIPTS_URL), e.g. "
        "sqlite:///var/gateway/receipts.sqlite or postgresql+psycopg://user@host/db.",
    )(command)


def _fail(message: str, code: int = 2) -> NoReturn:
    errors.print(message, highlight=False, markup=False)
    sys.exit(code)


def _config(config_path: Path | None) -> GatewayConfig | None:
    if config_path is None:
        return None
    from sessions.config_loader import ConfigError
    from sessions.gateway_config import load_gateway_config

    try:
        return load_gateway_config(config_path)
    except ConfigError as exc:
        _fail(str(exc))


def _open(db: str | None, config_path: Path | None) -> ReceiptStore:
    """The store to read, or a clear error and exit 2."""
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from oms.receipt_migrations import SchemaError
    from oms.receipt_recorder import describe
    from oms.receipts import ReceiptStore, ReceiptStoreError, safe_url

    config = _config(config_path)
    url = db or (config.receipts_url if config is not None else DEFAULT_STORE)
    try:
        return ReceiptStore(url, migrate=False)
    except (ReceiptStoreError, SchemaError) as exc:
        _fail(f"{safe_url(url)}: {exc}")
    except ArgumentError:
        _fail(f"{safe_url(url)} is not a database URL: give one like sqlite:///path/file.sqlite")
    except DBAPIError as exc:
        _fail(f"cannot read the receipt store {safe_url(url)}: {describe(exc)}")


def _progress(what: str) -> Progress:
    return Progress(
        TextColumn(f"[bold]{what}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=errors,
        transient=False,
    )


@contextmanager
def _tracked(what: str, total: int) -> Iterator[Callable[[int], None]]:
    with _progress(what) as progress:
        task = progress.add_task(what, total=total)
        yield lambda done: progress.update(task, completed=done)


@click.group()
def audit() -> None:
    """Check and read the receipt store: verify, export, trace, reconcile."""


@audit.command()
@store_options
@click.option(
    "--expect-head",
    metavar="SEQ:HASH",
    default=None,
    help="The chain head an earlier verify printed: fail unless the chain still holds it "
    "(catches the last rows removed).",
)
def verify(db: str | None, config_path: Path | None, expect_head: str | None) -> None:
    """Walk the hash chain: find any edited, deleted or reordered receipt, and say which."""
    from oms.audit.verify import verify_chain
    from oms.receipt_schema import RECEIPTS

    expected: tuple[int, str] | None = None
    if expect_head is not None:
        seq_text, _, digest = expect_head.partition(":")
        if not seq_text.isdigit() or len(digest) != 64:
            _fail(
                f"--expect-head {expect_head!r}: use SEQ:HASH as printed by an earlier "
                "`cmc audit verify` (e.g. 1234:9f86d081...)"
            )
        expected = (int(seq_text), digest)
    store = _open(db, config_path)
    with store:
        total = store.count()
        with _tracked("verifying", total) as progress:
            result = verify_chain(store, progress=progress)
        expected_ok = True
        if expected is not None:
            with store.engine.connect() as conn:
                found = conn.execute(
                    RECEIPTS.select()
                    .with_only_columns(RECEIPTS.c.hash)
                    .where(RECEIPTS.c.seq == expected[0])
                ).scalar()
            expected_ok = found == expected[1]
    console.print(f"receipt store {store.url}: {result.rows:,} receipt(s)", highlight=False)
    if result.unchained:
        console.print(
            f"{result.unchained:,} receipt(s) were written before the store had a hash "
            "chain: they cannot be checked",
            highlight=False,
        )
    if result.findings:
        table = Table(title="the chain is broken", title_justify="left")
        for name in ("problem", "seq", "row id", "what"):
            table.add_column(name, justify="right" if name in ("seq", "row id") else "left")
        for f in result.findings:
            table.add_row(f.problem, str(f.seq), "" if f.row_id is None else str(f.row_id), f.text)
        console.print(table)
    if result.uninspected:
        console.print(f"{result.uninspected:,} more broken row(s) not looked into")
    if expected is not None and not expected_ok:
        console.print(
            f"[red]the chain does not hold seq {expected[0]} with hash {expected[1]}: "
            "receipts up to it were removed or rewritten[/red]"
        )
    if result.ok and expected_ok:
        console.print(
            f"[green]OK[/green]: every receipt matches its hash and follows the one before "
            f"it. Head: {result.head.seq}:{result.head.hash}",
            highlight=False,
        )
        return
    console.print(f"[red]TAMPERED[/red]: {len(result.findings)} finding(s)")
    sys.exit(1)


def _selection(
    from_text: str | None,
    to_text: str | None,
    pair: str | None = None,
    order: str | None = None,
    venue: str | None = None,
) -> Selection:
    """The receipts ``--from``/``--to`` (and a filter) choose, or a usage error."""
    from oms.audit.selection import Selection

    selection = Selection(
        _instant("--from", from_text, end=False),
        _instant("--to", to_text, end=True),
        pair,
        order,
        venue,
    )
    if (
        selection.from_ns is not None
        and selection.to_ns is not None
        and selection.from_ns >= selection.to_ns
    ):
        raise click.BadParameter("--from must be before --to", param_hint="--from")
    return selection


def _instant(option: str, text: str | None, *, end: bool) -> int | None:
    from oms.audit.timerange import BadInstant, parse_instant

    if text is None:
        return None
    try:
        return parse_instant(text, end=end)
    except BadInstant as exc:
        raise click.BadParameter(str(exc), param_hint=option) from None


@audit.command()
@store_options
@click.option("--from", "from_text", metavar="TIME", help="First time included (UTC).")
@click.option("--to", "to_text", metavar="TIME", help="First time left out (a date: its end).")
@click.option("--pair", default=None, help="A trade's pair id (GOLD-7) or a pair (GOLD).")
@click.option("--order", default=None, help="A ClOrdID or the venue's OrderID.")
@click.option("--venue", default=None, help="A venue id.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json", "html"]),
    default="csv",
    show_default=True,
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=Path("-"),
    help="File to write (default: standard output).",
)
@click.option(
    "--rows",
    "max_rows",
    type=click.IntRange(min=0),
    default=1_000,
    show_default=True,
    help="HTML: receipts listed in the report's table.",
)
def export(
    db: str | None,
    config_path: Path | None,
    from_text: str | None,
    to_text: str | None,
    pair: str | None,
    order: str | None,
    venue: str | None,
    fmt: str,
    out_path: Path,
    max_rows: int,
) -> None:
    """Export receipts as CSV, JSON or a self-contained HTML report with plots.

    TIME is YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS[.fraction]][Z|+HH:MM] (UTC when no offset is
    given) or integer ns.
    """
    from oms.audit.export import write_csv, write_json
    from oms.audit.report_html import write_html

    if sum(x is not None for x in (pair, order, venue)) > 1:
        raise click.UsageError("give at most one of --pair, --order and --venue")
    selection = _selection(from_text, to_text, pair, order, venue)
    store = _open(db, config_path)
    started = time.perf_counter()
    with store:
        where = selection.conditions()
        total = store.count_where(*where)
        with _writer(out_path) as out, _tracked(f"exporting {fmt}", total) as progress:
            rows = store.scan_tuples(*where)
            if fmt == "csv":
                n = write_csv(rows, out, progress)
            elif fmt == "json":
                n = write_json(rows, out, progress)
            else:
                n = write_html(
                    rows,
                    out,
                    title="cross-market-connect audit report",
                    selection=selection.describe(),
                    store=store.url,
                    generated_ns=time.time_ns(),
                    max_rows=max_rows,
                    progress=progress,
                )
    where_to = "standard output" if str(out_path) == "-" else str(out_path)
    errors.print(
        f"{n:,} receipt(s) ({selection.describe()}) exported as {fmt} to {where_to} in "
        f"{time.perf_counter() - started:.2f} s",
        highlight=False,
    )


@contextmanager
def _writer(path: Path) -> Iterator[TextIO]:
    if str(path) == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    try:
        handle = path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        _fail(f"cannot write {path}: {exc.strerror}; choose another --out")
    with handle:
        yield handle


@audit.command()
@store_options
@click.argument("key")
def trace(db: str | None, config_path: Path | None, key: str) -> None:
    """Print one trade's whole chain of receipts, in order: KEY is a ClOrdID, an OrderID or
    a pair id."""
    from oms.audit.timerange import UtcFormatter
    from oms.audit.trace import hop_summary
    from oms.audit.trace import trace as chain_of

    store = _open(db, config_path)
    with store:
        rows = chain_of(store, key)
    if not rows:
        _fail(f"no receipt has ClOrdID, OrderID or pair id {key!r} in {store.url}", 1)
    utc = UtcFormatter()
    start = rows[0].ts_ns
    table = Table(title=f"the chain of {key}: {len(rows)} receipt(s)", title_justify="left")
    for name, justify in (
        ("seq", "right"),
        ("time (UTC)", "left"),
        ("+µs", "right"),
        ("kind", "left"),
        ("venue/line", "left"),
        ("ClOrdID", "left"),
        ("OrderID / ExecID", "left"),
        ("verdict", "left"),
        ("reason", "left"),
        ("latency µs", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for r in rows:
        ids = " / ".join(x for x in (r.venue_order_id, r.exec_id) if x)
        place = "/".join(x for x in (r.venue, r.line) if x)
        table.add_row(
            str(r.seq),
            utc(r.ts_ns)[11:],
            f"{(r.ts_ns - start) / 1000:,.1f}",
            r.kind,
            place,
            r.clordid or "",
            ids,
            r.verdict or "",
            r.reason or "",
            "" if r.latency_ns is None else f"{r.latency_ns / 1000:,.1f}",
        )
    console.print(f"{utc(start)[:10]}, times UTC", highlight=False)
    console.print(table)
    hops = hop_summary(rows)
    if hops:
        hop_table = Table(title="hops per order (µs)", title_justify="left")
        for name in ("ClOrdID", "event -> decision", "decision -> send", "send -> ack"):
            hop_table.add_column(name, justify="left" if name == "ClOrdID" else "right")
        for clordid, *values in hops:
            hop_table.add_row(
                str(clordid), *("" if v is None else f"{v / 1000:,.1f}" for v in values)
            )
        console.print(hop_table)


@audit.command()
@store_options
@click.option(
    "--fix-log",
    "fix_log",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="The directory where quickfix logs the gateway's messages (default: the "
    "configuration's fix_log_dir, else fixlog/ beside its store_dir).",
)
def reconcile(db: str | None, config_path: Path | None, fix_log: Path | None) -> None:
    """Match the receipts one to one with the FIX messages quickfix logged."""
    from oms.audit.reconcile import FixLogSpec
    from oms.audit.reconcile import reconcile as match
    from sessions.gateway import session_map

    config = _config(config_path)
    if config is None:
        _fail(
            "reconcile needs --config, the gateway's TOML file: it says which FIX sessions "
            "are the gateway's and which venue and line each one is"
        )
    if fix_log is None:
        fix_log = config.fix_log_path()
    if not fix_log.is_dir():
        _fail(f"--fix-log {fix_log}: no such directory; give the gateway's FIX log directory")
    spec = FixLogSpec(fix_log, session_map(config))
    store = _open(db, config_path)
    with store:
        result = match(store, spec)
    table = Table(title="FIX messages and receipts", title_justify="left")
    table.add_column("messages")
    table.add_column("count", justify="right")
    for label, count in sorted(result.matched.items()):
        table.add_row(f"matched: {label}", f"{count:,}")
    for label, count in sorted(result.not_receipted.items()):
        table.add_row(f"no receipt by design: {label}", f"{count:,}")
    table.add_row("logged without a receipt", f"{len(result.unreceipted):,}")
    table.add_row("receipt without a logged message", f"{len(result.unlogged):,}")
    console.print(table)
    for message in result.unreceipted[:20]:
        console.print(
            f"  no receipt: {message.file}: {message.text.replace(chr(1), '|')}",
            highlight=False,
            markup=False,
        )
    for seq, kind, what in result.unlogged[:20]:
        console.print(f"  not in the log: seq {seq} {kind} {what}", highlight=False)
    if not result.ok:
        console.print("[red]GAPS[/red]: the receipts and the FIX log do not match one to one")
        sys.exit(1)
    console.print(
        "[green]OK[/green]: every FIX message has its receipt and every receipt its message"
    )
