"""What recording a receipt costs the OMS thread, and how fast the writer process stores them.

Four measurements in one run, on the same seeded receipts (a mix of execution reports and
order commands with their FIX text, spread decisions with Decimal data, line changes),
generated in full before any clock starts:

1. **floor**: ``queue.SimpleQueue.put`` of each receipt, timed call by call: the least a
   hand-off to another thread can cost.
2. **append**: ``ReceiptWriter.append`` of the same receipts, timed call by call, while the
   writer's sender thread and process run; then ``close()``. ``written_per_s`` counts from the
   first append until ``close()`` has returned, every receipt committed.
3. **multiprocessing.Queue.put**, for reference: what the obvious design would cost the
   caller (its feeder thread then pickles every receipt on its own, in this process).
4. **hot-path probe**: a 200-byte ping-pong between this thread and an echo thread over a
   socketpair (a stand-in for a quickfix callback thread), appending four receipts after
   every round trip: to a bare deque on an idle machine; to a bare deque beside a process
   that keeps a core busy (the floor: the writer's process takes a core too, and on a
   two-core VM that alone changes how the two threads are woken, so the idle figure is no
   fair floor); and to a running writer, flat out (the child cannot keep up, so its sender
   ships without pause: the worst case). DESIGN.md measured one busy Python thread turning a
   126 µs round trip into 21 ms; this shows what the writer's sender thread does to a round
   trip in the same process.

The machines are shared and noisy: the ratios to the floors hold where absolute numbers drift.
"""

from __future__ import annotations

import argparse
import gc
import json
import multiprocessing
import queue
import random
import socket
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.progress import (  # noqa: E402
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table  # noqa: E402

from oms.receipt_writer import ReceiptWriter  # noqa: E402
from oms.receipts import Receipt, ReceiptStore  # noqa: E402
from sessions.measure import machine_info, percentile  # noqa: E402

PROGRESS_EVERY = 5_000
PROBE_MESSAGE = b"x" * 200
PROBE_RECEIPTS_PER_ROUND = 4
BASE_NS = 1_717_200_000_000_000_000
SOH = "\x01"


# --- the receipts -----------------------------------------------------------------------------


def _fix(fields: Sequence[tuple[int, str]]) -> str:
    return SOH.join(f"{tag}={value}" for tag, value in fields) + SOH


def generate(n: int, seed: int) -> tuple[list[Receipt], list[int]]:
    """``n`` receipts, and the cost of building a sample of them with ``Receipt.of`` (ns)."""
    rng = random.Random(seed)
    venues = ("SHFE", "LME")
    out: list[Receipt] = []
    of_ns: list[int] = []
    clock = time.perf_counter_ns
    ts = BASE_NS
    for i in range(n):
        ts += rng.randint(2_000, 40_000)
        cause = ts - rng.randint(20_000, 200_000)
        venue = venues[i % 2]
        clordid = f"GW{seed % 1000:03d}-{i // 4:08d}"
        pair = f"P{i // 8:07d}"
        px = Decimal(56_000 + rng.randint(-50, 50)) / 100
        qty = rng.randint(1, 20)
        roll = rng.random()
        if roll < 0.45:
            raw = _fix(
                [
                    (8, "FIX.4.4"),
                    (9, "190"),
                    (35, "8"),
                    (49, venue),
                    (56, "CMC"),
                    (34, str(i)),
                    (52, "20240601-09:30:00.123456"),
                    (37, f"V{i}"),
                    (11, clordid),
                    (17, f"E{i}"),
                    (150, "F"),
                    (39, "1"),
                    (55, "AU2406"),
                    (54, "1"),
                    (38, "20"),
                    (32, str(qty)),
                    (31, str(px)),
                    (14, str(qty)),
                    (151, str(20 - qty)),
                    (6, str(px)),
                    (10, "000"),
                ]
            )
            t0 = clock()
            r = Receipt.of(
                "event.execution",
                ts_ns=ts,
                cause_ns=cause,
                venue=venue,
                line="primary",
                symbol="AU2406",
                clordid=clordid,
                venue_order_id=f"V{i}",
                exec_id=f"E{i}",
                pair_id=pair,
                raw=raw,
                data={"last_px": px, "last_qty": qty, "cum_qty": qty, "leaves_qty": 20 - qty},
            )
        elif roll < 0.80:
            raw = _fix(
                [
                    (8, "FIX.4.4"),
                    (9, "150"),
                    (35, "D"),
                    (49, "CMC"),
                    (56, venue),
                    (34, str(i)),
                    (52, "20240601-09:30:00.123456"),
                    (11, clordid),
                    (55, "AU2406"),
                    (54, "2"),
                    (38, str(qty)),
                    (40, "2"),
                    (44, str(px)),
                    (59, "3"),
                    (60, "20240601-09:30:00.123400"),
                    (10, "000"),
                ]
            )
            t0 = clock()
            r = Receipt.of(
                "command.send_order",
                ts_ns=ts,
                cause_ns=cause,
                venue=venue,
                symbol="AU2406",
                clordid=clordid,
                pair_id=pair,
                raw=raw,
                data={"price": px, "qty": qty, "side": "SELL", "tif": "IOC"},
            )
        elif roll < 0.97:
            t0 = clock()
            r = Receipt.of(
                "decision.spread_intent",
                ts_ns=ts,
                cause_ns=cause,
                pair_id=pair,
                verdict="accepted" if rng.random() < 0.8 else "rejected",
                reason="spread 1.84 CNY/g over threshold 1.50",
                data={
                    "spread": Decimal(rng.randint(150, 250)) / 100,
                    "threshold": Decimal("1.50"),
                    "fx": Decimal("7.2315"),
                    "qty_a": qty,
                    "qty_b": qty * 32,
                },
            )
        else:
            t0 = clock()
            r = Receipt.of(
                "line.state",
                ts_ns=ts,
                venue=venue,
                line="backup",
                verdict="active",
                reason="primary heartbeat missed",
            )
        of_ns.append(clock() - t0)
        out.append(r)
    return out, of_ns


# --- timing -----------------------------------------------------------------------------------


def time_calls(
    fn: Callable[[Receipt], object],
    items: Sequence[Receipt],
    deadline_s: float,
    progress: Progress,
    label: str,
) -> list[int]:
    """Call ``fn`` on each item, timing every call (ns); stop early past the deadline."""
    task = progress.add_task(label, total=len(items))
    clock = time.perf_counter_ns
    samples: list[int] = []
    add = samples.append
    deadline = clock() + int(deadline_s * 1e9)
    for base in range(0, len(items), PROGRESS_EVERY):
        for item in items[base : base + PROGRESS_EVERY]:
            t0 = clock()
            fn(item)
            add(clock() - t0)
        progress.update(task, completed=len(samples))
        if clock() > deadline:
            break
    return samples


def _echo(sock: socket.socket) -> None:
    while True:
        data = sock.recv(4096)
        if not data:
            return
        sock.sendall(data)


def probe(
    sink: Callable[[Receipt], object],
    receipts: Sequence[Receipt],
    rounds: int,
    deadline_s: float,
    progress: Progress,
    label: str,
) -> list[int]:
    """Round trips (ns) of a 200-byte ping-pong with an echo thread, appending receipts after
    each one, as the OMS thread would between two messages."""
    a, b = socket.socketpair()
    echo = threading.Thread(target=_echo, args=(b,), daemon=True)
    echo.start()
    task = progress.add_task(label, total=rounds)
    clock = time.perf_counter_ns
    samples: list[int] = []
    size = len(PROBE_MESSAGE)
    deadline = clock() + int(deadline_s * 1e9)
    k = PROBE_RECEIPTS_PER_ROUND
    n = len(receipts)
    try:
        for i in range(rounds):
            t0 = clock()
            a.sendall(PROBE_MESSAGE)
            got = 0
            while got < size:
                got += len(a.recv(4096))
            samples.append(clock() - t0)
            j = (i * k) % n
            for receipt in receipts[j : j + k]:
                sink(receipt)
            if i % 1_000 == 0:
                progress.update(task, completed=i)
                if clock() > deadline:
                    break
        progress.update(task, completed=len(samples))
    finally:
        a.close()
        echo.join(5.0)
        b.close()
    return samples


def _burn() -> None:
    """A process that keeps one core busy: the probe's floor under the same CPU load."""
    while True:
        pass


def _drain(q: Any) -> None:
    """The consumer of the multiprocessing.Queue reference: takes receipts, does nothing."""
    while q.get() is not None:
        pass


# --- main -------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--receipts", type=int, default=200_000, help="receipts to append")
    parser.add_argument("--seed", type=int, default=20240601, help="seed of the receipt mix")
    parser.add_argument(
        "--url",
        default=None,
        help="the store to write (default: a SQLite file in a temporary directory); "
        "the bench appends to its receipts table",
    )
    parser.add_argument("--batch-size", type=int, default=1_000, help="writer batch size")
    parser.add_argument("--interval-ms", type=float, default=50.0, help="writer interval")
    parser.add_argument("--chunk", type=int, default=64, help="receipts per message to child")
    parser.add_argument(
        "--probe-rounds", type=int, default=20_000, help="ping-pong round trips per probe"
    )
    parser.add_argument("--no-mpqueue", action="store_true", help="skip the mp.Queue reference")
    parser.add_argument(
        "--max-seconds", type=float, default=60.0, help="stop each timed loop after this long"
    )
    parser.add_argument("--json", action="store_true", help="end the output with one JSON line")
    args = parser.parse_args(argv)
    if args.receipts < 1_000 or args.probe_rounds < 100:
        parser.error("--receipts must be at least 1,000 and --probe-rounds at least 100")

    out = Console()
    err = Console(stderr=True)
    info = machine_info(("quickfix", "SQLAlchemy"))
    tmp = tempfile.TemporaryDirectory(prefix="cmc-bench-receipts-")
    url = args.url or f"sqlite:///{tmp.name}/receipts.sqlite"
    probe_url = args.url or f"sqlite:///{tmp.name}/probe.sqlite"
    writer_opts: dict[str, Any] = {
        "batch_size": args.batch_size,
        "interval_ms": args.interval_ms,
        "chunk": args.chunk,
    }

    t0 = time.perf_counter()
    receipts, of_ns = generate(args.receipts, args.seed)
    generate_s = time.perf_counter() - t0
    # The pre-built receipts are the harness's: keep the collector from walking them.
    gc.collect()
    gc.freeze()

    columns = (
        TextColumn("{task.description:>14}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        # 1. the floor
        floor_q: queue.SimpleQueue[Receipt] = queue.SimpleQueue()
        floor = time_calls(floor_q.put, receipts, args.max_seconds, progress, "floor put")
        del floor_q

        # 2. the writer
        writer = ReceiptWriter(url, **writer_opts).start()
        start = time.perf_counter()
        appended = time_calls(writer.append, receipts, args.max_seconds, progress, "append")
        appended_s = time.perf_counter() - start
        written = writer.close(timeout=max(60.0, args.max_seconds * 5))
        total_s = time.perf_counter() - start
        stats = writer.stats()

        # 3. multiprocessing.Queue, for reference
        mpq: list[int] = []
        mpq_s = 0.0
        if not args.no_mpqueue:
            ctx = multiprocessing.get_context("spawn")
            mp_queue: Any = ctx.Queue()
            drain = ctx.Process(target=_drain, args=(mp_queue,), daemon=True)
            drain.start()
            start = time.perf_counter()
            mpq = time_calls(mp_queue.put, receipts, args.max_seconds, progress, "mp.Queue.put")
            mp_queue.put(None)
            drain.join(max(60.0, args.max_seconds * 5))
            mpq_s = time.perf_counter() - start
            mp_queue.close()

        # 4. the hot-path probe: alone, beside a busy process, beside a running writer
        sink: deque[Receipt] = deque()
        probe_idle = probe(
            sink.append, receipts, args.probe_rounds, args.max_seconds, progress, "probe idle"
        )
        sink.clear()
        burner = multiprocessing.get_context("spawn").Process(target=_burn, daemon=True)
        burner.start()
        time.sleep(0.5)  # let it start spinning
        probe_floor = probe(
            sink.append, receipts, args.probe_rounds, args.max_seconds, progress, "probe + busy"
        )
        burner.kill()
        burner.join()
        sink.clear()
        probe_writer = ReceiptWriter(probe_url, **writer_opts).start()
        probed = probe(
            probe_writer.append,
            receipts,
            args.probe_rounds,
            args.max_seconds,
            progress,
            "probe + writer",
        )
        probe_written = probe_writer.close()
        probe_stats = probe_writer.stats()

    if args.url is None:
        with ReceiptStore(url) as store:
            in_table = store.count()
        assert in_table == written == len(appended), (in_table, written, len(appended))
    tmp.cleanup()

    for samples in (floor, appended, mpq, probe_idle, probe_floor, probed, of_ns):
        samples.sort()
    n = len(appended)
    a50, a99 = percentile(appended, 50), percentile(appended, 99)
    f50, f99 = percentile(floor, 50), percentile(floor, 99)
    p50i, p99i = percentile(probe_idle, 50), percentile(probe_idle, 99)
    p50f, p99f = percentile(probe_floor, 50), percentile(probe_floor, 99)
    p50w, p99w = percentile(probed, 50), percentile(probed, 99)
    result: dict[str, Any] = {
        "receipts": n,
        "receipts_requested": args.receipts,
        "seed": args.seed,
        "store": "sqlite (temporary file)" if args.url is None else "given --url",
        "batch_size": args.batch_size,
        "interval_ms": args.interval_ms,
        "chunk": args.chunk,
        "append_p50_ns": a50,
        "append_p99_ns": a99,
        "append_p999_ns": percentile(appended, 99.9),
        "append_max_ns": float(appended[-1]),
        "append_mean_ns": round(sum(appended) / n, 1),
        "floor_p50_ns": f50,
        "floor_p99_ns": f99,
        "floor_max_ns": float(floor[-1]),
        "append_to_floor_p50_ratio": round(a50 / f50, 2),
        "append_to_floor_p99_ratio": round(a99 / f99, 2),
        "mpqueue_put_p50_ns": percentile(mpq, 50) if mpq else None,
        "mpqueue_put_p99_ns": percentile(mpq, 99) if mpq else None,
        "mpqueue_to_floor_p50_ratio": round(percentile(mpq, 50) / f50, 2) if mpq else None,
        "mpqueue_drained_per_s": round(len(mpq) / mpq_s) if mpq else None,
        "receipt_of_p50_ns": percentile(of_ns, 50),
        "receipt_of_p99_ns": percentile(of_ns, 99),
        "written": written,
        "written_per_s": round(written / total_s),
        "write_total_s": round(total_s, 3),
        "append_loop_s": round(appended_s, 3),
        "close_s": round(total_s - appended_s, 3),
        "sender_cpu_ns_per_receipt": round(stats.sender_cpu_ns / max(1, written), 1),
        "sender_max_burst_us": round(stats.max_burst_ns / 1e3, 1),
        "probe_rounds": len(probed),
        "probe_receipts_per_round": PROBE_RECEIPTS_PER_ROUND,
        "probe_idle_p50_us": round(p50i / 1e3, 2),
        "probe_idle_p99_us": round(p99i / 1e3, 2),
        "probe_floor_p50_us": round(p50f / 1e3, 2),
        "probe_floor_p99_us": round(p99f / 1e3, 2),
        "probe_p50_us": round(p50w / 1e3, 2),
        "probe_p99_us": round(p99w / 1e3, 2),
        "probe_p50_ratio": round(p50w / p50f, 2),
        "probe_p99_ratio": round(p99w / p99f, 2),
        "probe_p99_to_idle_ratio": round(p99w / p99i, 2),
        "probe_written": probe_written,
        "probe_sender_max_burst_us": round(probe_stats.max_burst_ns / 1e3, 1),
        "generate_s": round(generate_s, 3),
        **info,
    }

    table = Table(title=f"Receipt writer: {n:,} receipts, seed {args.seed}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("floor / reference", justify="right")
    table.add_column("ratio", justify="right")
    table.add_row(
        "append() p50 (caller's thread)",
        f"{a50:,.0f} ns",
        f"SimpleQueue.put {f50:,.0f} ns",
        f"{result['append_to_floor_p50_ratio']}x",
    )
    table.add_row(
        "append() p99",
        f"{a99:,.0f} ns",
        f"SimpleQueue.put {f99:,.0f} ns",
        f"{result['append_to_floor_p99_ratio']}x",
    )
    table.add_row(
        "append() p99.9 / max",
        f"{result['append_p999_ns']:,.0f} / {result['append_max_ns']:,.0f} ns",
        f"max {result['floor_max_ns']:,.0f} ns",
        "",
    )
    if mpq:
        table.add_row(
            "multiprocessing.Queue.put p50 / p99",
            f"{result['mpqueue_put_p50_ns']:,.0f} / {result['mpqueue_put_p99_ns']:,.0f} ns",
            "(the design not taken)",
            f"{result['mpqueue_to_floor_p50_ratio']}x",
        )
    table.add_row(
        "Receipt.of() p50 / p99 (to build one)",
        f"{result['receipt_of_p50_ns']:,.0f} / {result['receipt_of_p99_ns']:,.0f} ns",
        "",
        "",
    )
    table.add_row(
        "written end to end",
        f"{result['written_per_s']:,} receipts/s",
        f"{written:,} in {total_s:.2f} s",
        "",
    )
    table.add_row(
        "append loop / close() drain", f"{appended_s:.3f} s / {total_s - appended_s:.3f} s", "", ""
    )
    table.add_row(
        "sender thread CPU in this process",
        f"{result['sender_cpu_ns_per_receipt']:,} ns/receipt",
        f"longest chunk {result['sender_max_burst_us']} µs CPU",
        "",
    )
    table.add_row(
        f"probe round trip p50 (+{PROBE_RECEIPTS_PER_ROUND} appends), writer running",
        f"{result['probe_p50_us']} µs",
        f"busy process {result['probe_floor_p50_us']} µs",
        f"{result['probe_p50_ratio']}x",
    )
    table.add_row(
        "probe round trip p99, writer running",
        f"{result['probe_p99_us']} µs",
        f"busy process {result['probe_floor_p99_us']} µs",
        f"{result['probe_p99_ratio']}x",
    )
    table.add_row(
        "probe round trip p50 / p99, idle machine",
        f"{result['probe_idle_p50_us']} / {result['probe_idle_p99_us']} µs",
        "(cross-core wake-ups)",
        f"{result['probe_p99_to_idle_ratio']}x",
    )
    table.add_row(
        "writer settings",
        f"batch {args.batch_size}, {args.interval_ms} ms, chunk {args.chunk}",
        "",
        "",
    )
    table.add_row(
        "machine",
        f"{info['cpu_count']} CPUs, {info['python_implementation']} {info['python']}",
        str(info["platform"]),
        "",
    )
    table.add_row("SQLAlchemy / quickfix", f"{info['sqlalchemy']} / {info['quickfix']}", "", "")
    out.print(table)
    if n < args.receipts:
        out.print(f"[yellow]stopped after {args.max_seconds} s: {n:,} of {args.receipts:,} run")
    if args.json:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
