"""Receipts per second into SQLite and PostgreSQL, and the time to export a million.

Three figures, each beside its floor, on seeded receipts generated before any clock starts
(execution reports with their FIX text, orders, spread decisions with Decimal data, market
data, in the proportions of a trading day):

1. **sustained into SQLite**: ``ReceiptWriter.append`` of ``--n`` receipts as fast as they
   come, counted from the first append until ``close()`` returned with every one committed
   (sealed: seq, hop times, hash chain). Floors: sealing alone (the chain's CPU) and the raw
   ``executemany`` of the same sealed rows in big transactions.
2. **sustained into PostgreSQL** (``--pg-url``, default ``CMC_TEST_PG_URL``; skipped with a
   note when unreachable), through COPY, in a schema of its own dropped afterwards. Floor: the
   raw COPY of the same sealed rows. The writer seals each batch into its COPY a slice at a
   time, so that its hashing overlaps the server's work: on two CPUs shared by this
   process, the writer and the server, a ratio near 1 is as good as it gets.
3. **export**: ``--export-n`` receipts bulk-loaded into SQLite, then exported as CSV (the
   figure, ``export_s``), JSON and the HTML report, through the same functions as
   ``cmc audit export``. Floor: reading every row through the same streaming scan.

Goals: >= 100,000 receipts/s into PostgreSQL, >= 50,000/s into SQLite, 1,000,000 exported in
<= 10 s. The machines are shared and noisy: the ratios to the floors hold where absolute
numbers drift.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import (  # noqa: E402
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from oms.audit.export import write_csv, write_json  # noqa: E402
from oms.audit.report_html import write_html  # noqa: E402
from oms.receipt_chain import Chain  # noqa: E402
from oms.receipt_writer import ReceiptWriter  # noqa: E402
from oms.receipts import Receipt, ReceiptFields, ReceiptStore, as_fields, safe_url  # noqa: E402
from sessions.measure import machine_info, machine_line  # noqa: E402

SOH = "\x01"
BASE_NS = 1_717_200_000_000_000_000
GOALS = {"sqlite": 50_000.0, "pg": 100_000.0, "export_s": 10.0}
WRITER_SETTINGS: dict[str, Any] = {
    "batch_size": 20_000,
    "interval_ms": 50.0,
    "ship_every_ms": 5.0,
    "chunk": 1_024,
    "max_backlog": 5_000_000,
}
"""How the bench runs the writer: bulk settings (big batches, big chunks); the gateway's
defaults favour a short hold of the GIL per chunk over throughput."""

console = Console()
errors = Console(stderr=True)


def receipts(n: int, seed: int) -> list[Receipt]:
    """``n`` receipts shaped like a trading day's: mostly market data and executions."""
    rng = random.Random(seed)
    out: list[Receipt] = []
    trade = 0
    t = BASE_NS
    while len(out) < n:
        t += rng.randrange(50_000, 400_000)
        roll = rng.random()
        if roll < 0.55:
            out.append(
                Receipt.of(
                    "event.market_data",
                    ts_ns=t + 3_000,
                    cause_ns=t,
                    venue="INNER" if roll < 0.3 else "OUTER",
                    line="primary",
                    symbol="AU",
                    data={"entries": 2, "snapshot": 0, "sending_ns": t - 40_000},
                )
            )
            continue
        trade += 1
        pair = f"GOLD-{trade}"
        out.append(
            Receipt.of(
                "decision.spread_intent",
                ts_ns=t + 30_000,
                cause_ns=t,
                pair_id=pair,
                verdict="entry",
                reason="buy_inner: spread 3.5246 vs threshold 2.0",
                data={"pair": "GOLD", "spread": Decimal("3.5246"), "inner_qty": 28},
            )
        )
        for leg, venue in enumerate(("INNER", "OUTER")):
            clordid = f"CMC-{trade}-{leg}"
            out.append(
                Receipt.of(
                    "command.send_order",
                    ts_ns=t + 45_000 + leg * 9_000,
                    cause_ns=t,
                    venue=venue,
                    clordid=clordid,
                    pair_id=pair,
                    verdict="sent",
                    data={"qty": 28, "price": Decimal("560.06"), "side": "BUY"},
                )
            )
            for step, exec_type in enumerate("0F"):
                recv = t + 300_000 + leg * 50_000 + step * 20_000
                raw = SOH.join(
                    (
                        "8=FIX.4.4",
                        "9=229",
                        "35=8",
                        f"34={trade * 4 + leg * 2 + step}",
                        f"49={venue}",
                        "52=20240601-09:30:00.708013",
                        "56=GW-PRI",
                        "6=560",
                        f"11={clordid}",
                        "14=28",
                        f"17=E{trade}-{leg}-{step}",
                        f"37=V{trade}-{leg}",
                        "38=28",
                        "39=2",
                        "40=2",
                        "44=560.06",
                        "54=1",
                        "55=AU",
                        f"150={exec_type}",
                        "151=0",
                        "10=228",
                    )
                )
                out.append(
                    Receipt.of(
                        "event.execution",
                        ts_ns=recv + 4_000,
                        cause_ns=recv,
                        venue=venue,
                        line="primary",
                        symbol="AU",
                        clordid=clordid,
                        venue_order_id=f"V{trade}-{leg}",
                        exec_id=f"E{trade}-{leg}-{step}",
                        pair_id=pair,
                        verdict="A->0" if step == 0 else "0->2",
                        raw=raw + SOH,
                        data={"exec_type": exec_type, "last_px": Decimal("560"), "cum_qty": 28},
                    )
                )
    return out[:n]


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
    )


@contextmanager
def pg_schema(url: str) -> Iterator[str | None]:
    """A URL seeing only a fresh schema (dropped afterwards), or None when unreachable."""
    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        errors.print(f"PostgreSQL at {safe_url(url)} unreachable ({exc.orig}); skipped")
        engine.dispose()
        yield None
        return
    schema = f"cmc_bench_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield (
            make_url(url)
            .update_query_dict({"options": f"-csearch_path={schema}"})
            .render_as_string(hide_password=False)
        )
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


def sustained(url: str, items: Sequence[Receipt], spool: Path, label: str) -> dict[str, float]:
    """Receipts/s through the writer, first append to close() with all committed."""
    writer = ReceiptWriter(url, spool_dir=spool, **WRITER_SETTINGS).start()
    with progress_bar() as bar:
        task = bar.add_task(f"into {label}", total=len(items))
        started = time.perf_counter()
        append = writer.append
        for i, receipt in enumerate(items):
            append(receipt)
            if i % 50_000 == 0:
                bar.update(task, completed=i)
        appended_s = time.perf_counter() - started
        kept = writer.close(timeout=600)
        elapsed = time.perf_counter() - started
        bar.update(task, completed=len(items))
    stats = writer.stats()
    assert kept == len(items) and stats.written == len(items), stats
    return {
        "per_s": len(items) / elapsed,
        "elapsed_s": elapsed,
        "append_s": appended_s,
        "sender_cpu_s": stats.sender_cpu_ns / 1e9,
    }


def floors(url: str, fields: Sequence[ReceiptFields], batch: int) -> dict[str, float]:
    """Sealing alone, and the raw insert (executemany / COPY) of the same sealed rows."""
    chain = Chain()
    started = time.perf_counter()
    sealed = []
    for i in range(0, len(fields), batch):
        rows, head = chain.seal(fields[i : i + batch])
        chain.advance(head)
        sealed.append(rows)
    seal_s = time.perf_counter() - started
    with ReceiptStore(url) as store:
        started = time.perf_counter()
        for rows in sealed:
            store.insert_rows(rows)
        insert_s = time.perf_counter() - started
    return {"seal_per_s": len(fields) / seal_s, "insert_per_s": len(fields) / insert_s}


def export_figures(work: Path, items: Sequence[Receipt]) -> dict[str, float]:
    url = f"sqlite:///{work / 'export.sqlite'}"
    fields = [as_fields(r) for r in items]
    started = time.perf_counter()
    with ReceiptStore(url) as store, progress_bar() as bar:
        task = bar.add_task("loading", total=len(fields))
        for i in range(0, len(fields), 50_000):
            store.append_fields(fields[i : i + 50_000])
            bar.update(task, completed=min(len(fields), i + 50_000))
    load_s = time.perf_counter() - started
    out: dict[str, float] = {"load_s": load_s}

    def timed(name: str, run: Callable[[Any, Callable[[int], None]], int], path: Path) -> None:
        with ReceiptStore(url, migrate=False) as store, progress_bar() as bar:
            task = bar.add_task(name, total=len(items))
            started = time.perf_counter()
            with path.open("w", encoding="utf-8", newline="") as handle:
                n = run(
                    (store.scan_tuples(), handle),
                    lambda done: bar.update(task, completed=done),
                )
            out[name] = time.perf_counter() - started
        assert n == len(items), (name, n)
        out[name.replace("_s", "_bytes")] = path.stat().st_size

    with ReceiptStore(url, migrate=False) as store:
        started = time.perf_counter()
        n = sum(1 for _ in store.scan_tuples())
        out["scan_floor_s"] = time.perf_counter() - started
    timed("export_s", lambda a, p: write_csv(a[0], a[1], p), work / "out.csv")
    timed("export_json_s", lambda a, p: write_json(a[0], a[1], p), work / "out.json")
    timed(
        "export_html_s",
        lambda a, p: write_html(
            a[0],
            a[1],
            title="bench",
            selection="all",
            store=url,
            generated_ns=time.time_ns(),
            progress=p,
        ),
        work / "out.html",
    )
    assert n == len(items)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=300_000, help="receipts per sustained run")
    parser.add_argument("--export-n", type=int, default=1_000_000, help="receipts exported")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get(
            "CMC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="end the output with one JSON line")
    args = parser.parse_args(argv)

    errors.print(f"generating {max(args.n, args.export_n):,} receipts (seed {args.seed})")
    items = receipts(max(args.n, args.export_n), args.seed)
    run = items[: args.n]
    fields = [as_fields(r) for r in run]
    result: dict[str, Any] = {"n": args.n, "export_n": args.export_n}
    with tempfile.TemporaryDirectory(prefix="cmc-bench-receipts-") as tmp:
        work = Path(tmp)
        s = sustained(f"sqlite:///{work / 'sustained.sqlite'}", run, work / "spool-s", "SQLite")
        f = floors(f"sqlite:///{work / 'floor.sqlite'}", fields, WRITER_SETTINGS["batch_size"])
        result |= {
            "receipts_per_s_sqlite": s["per_s"],
            "sqlite_elapsed_s": s["elapsed_s"],
            "sqlite_sender_cpu_s": s["sender_cpu_s"],
            "seal_per_s": f["seal_per_s"],
            "insert_floor_per_s_sqlite": f["insert_per_s"],
        }
        with pg_schema(args.pg_url) as pg:
            if pg is not None:
                s = sustained(pg, run, work / "spool-p", "PostgreSQL")
        with pg_schema(args.pg_url) as pg:
            if pg is not None:
                f = floors(pg, fields, WRITER_SETTINGS["batch_size"])
                result |= {
                    "receipts_per_s_pg": s["per_s"],
                    "pg_elapsed_s": s["elapsed_s"],
                    "pg_sender_cpu_s": s["sender_cpu_s"],
                    "insert_floor_per_s_pg": f["insert_per_s"],
                }
        result |= export_figures(work, items[: args.export_n])

    table = Table(title="receipts: sustained writes and export", title_justify="left")
    for name, justify in (
        ("figure", "left"),
        ("value", "right"),
        ("floor", "right"),
        ("ratio", "right"),
        ("goal", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]

    def rate(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.0f}/s"

    def verdict(ok: bool) -> str:
        return "[green]met[/green]" if ok else "[red]not met[/red]"

    sqlite_rate = result["receipts_per_s_sqlite"]
    table.add_row(
        f"into SQLite ({args.n:,})",
        rate(sqlite_rate),
        f"insert {rate(result['insert_floor_per_s_sqlite'])}",
        f"{sqlite_rate / result['insert_floor_per_s_sqlite']:.2f}",
        f">= 50,000/s {verdict(sqlite_rate >= GOALS['sqlite'])}",
    )
    pg_rate = result.get("receipts_per_s_pg")
    table.add_row(
        f"into PostgreSQL ({args.n:,}, COPY)",
        rate(pg_rate),
        f"COPY {rate(result.get('insert_floor_per_s_pg'))}",
        "n/a" if pg_rate is None else f"{pg_rate / result['insert_floor_per_s_pg']:.2f}",
        f">= 100,000/s {verdict(pg_rate is not None and pg_rate >= GOALS['pg'])}",
    )
    table.add_row("sealing (hash chain, hop times)", rate(result["seal_per_s"]), "", "", "")
    for key, label in (
        ("export_s", "CSV"),
        ("export_json_s", "JSON"),
        ("export_html_s", "HTML report"),
    ):
        table.add_row(
            f"export {args.export_n:,} as {label}",
            f"{result[key]:.2f} s",
            f"scan {result['scan_floor_s']:.2f} s",
            f"{result[key] / result['scan_floor_s']:.2f}",
            f"<= 10 s {verdict(result[key] <= GOALS['export_s'])}" if key == "export_s" else "",
        )
    table.caption = machine_line() + f"; bulk load of the export store {result['load_s']:.1f} s"
    console.print(table)
    if args.json:
        result |= {"machine": machine_info(("quickfix", "SQLAlchemy", "psycopg"))}
        print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
