"""How fast a spool left by a database outage goes back into PostgreSQL.

While the receipt store is unreachable the writer process seals every batch and appends it
to the local spool (``oms.receipt_spool``); once the store answers again it replays the
spool, oldest first, before anything newer. A replay slower than the gateway records
receipts would never catch up, and a gateway stopping soon after the restore waits for it.

Two figures on the same seeded receipts (``bench/receipts.py``), sealed and spooled the way
the writer spools them (batches of ``--batch``, one fsync each) before any clock starts:

1. **replay**: ``Recorder.replay()`` of the whole spool into an empty store, receipts/s:
   the file read and decoded into COPY, as the writer does it.
2. **COPY floor**: ``ReceiptStore.insert_rows`` of the same sealed rows, already in memory,
   in the same slices: what the server and the driver take alone.

Each into a fresh schema of its own (dropped afterwards) on ``--pg-url`` (default
``CMC_TEST_PG_URL``), with the garbage collector frozen and off, as in the writer process.
The machines are shared and noisy: the ratio to the floor holds where absolute numbers
drift.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.receipts import pg_schema, receipts  # noqa: E402
from oms.receipt_chain import Chain, SealedRow  # noqa: E402
from oms.receipt_recorder import REPLAY_BATCH, Recorder  # noqa: E402
from oms.receipt_spool import Spool  # noqa: E402
from oms.receipts import ReceiptStore, as_fields, safe_url  # noqa: E402
from sessions.measure import machine_line  # noqa: E402

console = Console()


def sealed_rows(n: int, seed: int) -> list[SealedRow]:
    rows, _ = Chain().seal([as_fields(r) for r in receipts(n, seed)])
    return list(rows)


def replay_rate(url: str, rows: Sequence[SealedRow], batch: int, work: Path) -> dict[str, float]:
    """Receipts/s of ``Recorder.replay`` from a spool holding ``rows``."""
    spool = Spool(work / "spool", max_bytes=1 << 40)
    for i in range(0, len(rows), batch):
        spool.append(rows[i : i + batch])
    size = spool.size
    with ReceiptStore(url) as store:
        recorder = Recorder(store, spool, lambda *_: None)
        assert recorder.spooling and recorder.spooled == len(rows)
        started = time.perf_counter()
        assert recorder.replay(), recorder.last_error
        elapsed = time.perf_counter() - started
        assert store.count() == len(rows) and not spool.path.exists()
    return {"per_s": len(rows) / elapsed, "elapsed_s": elapsed, "spool_mb": size / 1e6}


def copy_floor(url: str, rows: Sequence[SealedRow]) -> dict[str, float]:
    """Receipts/s of the raw COPY of the same rows, in the replay's slices."""
    with ReceiptStore(url) as store:
        started = time.perf_counter()
        for i in range(0, len(rows), REPLAY_BATCH):
            store.insert_rows(rows[i : i + REPLAY_BATCH])
        elapsed = time.perf_counter() - started
        assert store.count() == len(rows)
    return {"per_s": len(rows) / elapsed, "elapsed_s": elapsed}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--n", type=int, default=200_000, help="receipts in the spool")
    parser.add_argument("--batch", type=int, default=1_000, help="receipts per spooled batch")
    parser.add_argument("--pg-url", default=os.environ.get("CMC_TEST_PG_URL"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="end the output with one JSON line")
    args = parser.parse_args(argv)
    if not args.pg_url:
        console.print("no PostgreSQL URL: give --pg-url or set CMC_TEST_PG_URL")
        return 2
    rows = sealed_rows(args.n, args.seed)
    gc.freeze()
    gc.disable()
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="cmc-replay-") as tmp:
        with pg_schema(args.pg_url) as url:
            if url is None:
                return 2
            results["replay"] = replay_rate(url, rows, args.batch, Path(tmp))
        with pg_schema(args.pg_url) as url:
            assert url is not None
            results["copy"] = copy_floor(url, rows)
    table = Table(title=f"spool replay into {safe_url(args.pg_url)}: {args.n:,} receipts")
    table.add_column("what")
    table.add_column("receipts/s", justify="right")
    table.add_column("seconds", justify="right")
    table.add_row(
        f"replay (spool of {results['replay']['spool_mb']:.0f} MB)",
        f"{results['replay']['per_s']:,.0f}",
        f"{results['replay']['elapsed_s']:.2f}",
    )
    table.add_row(
        "COPY floor", f"{results['copy']['per_s']:,.0f}", f"{results['copy']['elapsed_s']:.2f}"
    )
    ratio = results["replay"]["per_s"] / results["copy"]["per_s"]
    table.caption = f"replay / floor {ratio:.2f}; {machine_line()}"
    console.print(table)
    if args.json:
        print(json.dumps({"n": args.n, **{k: v["per_s"] for k, v in results.items()}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
