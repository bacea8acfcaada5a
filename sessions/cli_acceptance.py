"""``cmc acceptance``: what the product guide promises against what a run's receipts show.

Reads the receipts of a time range (a trial run's), measures each figure the guide states
and says, figure by figure, whether it was met, not met, or not exercised by that run; as
an HTML report with plots or as JSON. It reads the store only (as ``cmc audit`` does) and
exits 0 whenever it produced a report: a figure not met is what the report says, not a
failure of the command. Exit 1: no receipt in the range; 2: a bad option or no store.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.table import Table

from sessions.cli_audit import (
    _open,
    _selection,
    _tracked,
    _writer,
    console,
    errors,
)

_STYLE = {"met": "green", "not met": "bold red", "not exercised": "dim"}


def _fail(message: str, code: int) -> NoReturn:
    """The message on one line however wide the terminal: scripts read it."""
    errors.print(message, highlight=False, markup=False, soft_wrap=True)
    sys.exit(code)


@click.command()
@click.option(
    "--receipts",
    "--db",
    "db",
    envvar="CMC_RECEIPTS_URL",
    default=None,
    metavar="URL",
    help="The receipt store's database URL (env CMC_RECEIPTS_URL); default: the one of "
    "--config, else the gateway's default file.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="The gateway's TOML file: its receipts_url is the store.",
)
@click.option("--from", "from_text", metavar="TIME", help="First time included (UTC).")
@click.option("--to", "to_text", metavar="TIME", help="First time left out (a date: its end).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "json"]),
    default="html",
    show_default=True,
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    default=Path("-"),
    help="File to write (default: standard output).",
)
def acceptance(
    db: str | None,
    config_path: Path | None,
    from_text: str | None,
    to_text: str | None,
    fmt: str,
    out_path: Path,
) -> None:
    """The acceptance report of a run: every figure the product guide promises (market
    data latency, execution success, top-up time, exposure, risk response, failover, switch
    success, receipt coverage, traceability, audit time), measured from the receipts of
    the range and marked met, not met or not exercised.

    TIME is YYYY-MM-DD, YYYY-MM-DDTHH:MM[:SS[.fraction]][Z|+HH:MM] (UTC when no offset is
    given) or integer ns.
    """
    from sqlalchemy import func, select

    from oms.audit.acceptance import Measurer, report_json
    from oms.audit.reconcile import RECONCILE_KIND
    from oms.audit.timerange import utc_text
    from oms.receipt_schema import RECEIPTS

    selection = _selection(from_text, to_text)
    store = _open(db, config_path)
    started = time.perf_counter_ns()
    with store:
        where = selection.conditions()
        total = store.count_where(*where)
        if total == 0:
            with store.engine.connect() as conn:
                low, high = conn.execute(
                    select(func.min(RECEIPTS.c.ts_ns), func.max(RECEIPTS.c.ts_ns))
                ).one()
            held = (
                f"it holds receipts from {utc_text(low)} to {utc_text(high)}"
                if low is not None
                else "it holds no receipt at all"
            )
            _fail(f"no receipt {selection.describe()} in {store.url}: {held}", 1)
        measurer = Measurer()
        with store.engine.connect() as conn:
            later = conn.execute(
                select(RECEIPTS.c.seq, RECEIPTS.c.data).where(RECEIPTS.c.kind == RECONCILE_KIND)
            ).all()
        for seq, data in later:
            measurer.add_reconciliation(int(seq), json.loads(data) if data else {})
        with _tracked("reading receipts", total) as progress:
            for n, row in enumerate(store.scan_tuples(*where), 1):
                measurer.add_row(row)
                if n % 10_000 == 0:
                    progress(n)
            progress(measurer.receipts)
        report_ns = time.perf_counter_ns() - started
        figures = measurer.figures(report_ns=report_ns)
        generated_ns = time.time_ns()
        with _writer(out_path) as out:
            if fmt == "json":
                document = report_json(
                    figures,
                    measurer,
                    store=store.url,
                    selection=selection.describe(),
                    generated_ns=generated_ns,
                )
                out.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
            else:
                from oms.audit.acceptance_html import render

                out.write(
                    render(
                        figures,
                        measurer,
                        store=store.url,
                        selection=selection.describe(),
                        generated_ns=generated_ns,
                    )
                )
    table = Table(title="acceptance", title_justify="left")
    for name in ("figure", "promise", "measured", "verdict"):
        table.add_column(name, overflow="fold")
    for f in figures:
        table.add_row(
            f.promise.title,
            f.promise.promise,
            f.summary,
            f"[{_STYLE[f.verdict]}]{f.verdict}[/]",
        )
    shown: Console = errors if str(out_path) == "-" else console
    shown.print(table)
    shown.print(measurer.stage_line(), highlight=False, markup=False)
    where_to = "standard output" if str(out_path) == "-" else str(out_path)
    shown.print(
        f"{measurer.receipts:,} receipt(s) ({selection.describe()}) measured; {fmt} report "
        f"to {where_to}",
        highlight=False,
    )
