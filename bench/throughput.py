"""Client orders per second through the gateway, beside bare quickfix's in the same run.

End to end, an order is done when both its fill report has reached the client and the drop
copy of that fill has reached the drop-copy consumer: client -> gateway (acceptor, OMS,
risk) -> venue -> fill -> gateway -> client report and drop copy. The floor is the same
order flow with the gateway taken out: a client straight to the venue, done at its fill
report. The venue (one AU book with a deep resting ask, so every 1-lot IOC buy fills at
once), the gateway and the clients each run in a process of their own, started with
``spawn``; the gateway's receipt writer is a process of its own too, as in production. Up
to ``--window`` orders are outstanding at a time (200 by default; 0 sends every order at
once), so what is measured is how many orders a second each path completes, not the
latency of one.

Risk runs with every control on; its throttles, open-order caps, loss limit and ack-latency
rule are opened past what a burst of orders queued behind one another would trip (on the
demo's limits, a long run buying at the ask and marking at the mid reaches the daily loss
limit, and queued acks trip the 250 ms ack-latency halt: both rightly).

Beside the rates, the CPU each process spent per order on each path (Linux's /proc: user
plus system, every thread, warm-up included): when both paths keep every CPU busy, as on a
two-CPU machine they do, the rates stand in the inverse ratio of those totals, so the floor's
total over the gateway path's is the most the gateway's rate can be as a share of the floor
there, whatever its latency.

Run: ``.venv/bin/python bench/throughput.py [--orders N] [--window W] [--json]``; with
``CMC_THROUGHPUT_PROFILE=path`` the gateway also writes a cProfile of its OMS thread there.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import logging
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402

from oms.clock import now_ns  # noqa: E402
from oms.enums import Side, TimeInForce  # noqa: E402
from sessions.demo import bench_risk  # noqa: E402
from sessions.fixengine import exit_process  # noqa: E402
from sessions.fixwire import utc_timestamp  # noqa: E402
from sessions.gateway import Gateway  # noqa: E402
from sessions.gateway_config import GatewayConfig  # noqa: E402
from sessions.measure import machine_info, machine_line, process_cpu_s  # noqa: E402
from sessions.ports import free_port  # noqa: E402
from sessions.simulator.client import FixClient  # noqa: E402
from sessions.simulator.config import VenueConfig  # noqa: E402
from sessions.simulator.venue import Venue  # noqa: E402

AU: dict[str, Any] = {
    "symbol": "AU",
    "currency": "CNY",
    "tick": "0.02",
    "lot": 1,
    "contract_size": "1000",
    "contract_unit": "g",
    "prev_close": "560.00",
    "max_order_qty": 10_000_000,
}
ASK = "560.00"
BID = "559.00"
FILL = "\x01150=F\x01"


FILLED = threading.Condition()  # notified on every fill report any counter receives


class Counter(FixClient):
    """A client that counts fill reports instead of keeping every message."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.fills = 0

    def _receive(self, text: str, *, admin: bool) -> None:
        if not admin and FILL in text:
            with FILLED:
                self.fills += 1
                FILLED.notify_all()


def buy(client: FixClient, venue: str | None) -> None:
    fields: list[tuple[int, object]] = [
        (11, client.next_id()),
        (55, "AU"),
        (54, Side.BUY.value),
        (60, utc_timestamp(now_ns())),
        (38, 1),
        (40, "2"),
        (44, ASK),
        (59, TimeInForce.IOC.value),
    ]
    if venue is not None:
        fields.insert(1, (100, venue))
    client.send("D", fields)


def pump(send: Any, done: Any, orders: int, window: int) -> float:
    """Send ``orders`` with at most ``window`` outstanding (0: no limit); orders completed
    per second, from the first send to the last completion."""
    started = time.perf_counter()
    for sent in range(1, orders + 1):
        send()
        if window and sent - done() >= window:
            _wait(lambda sent=sent: sent - done() < window)
    _wait(lambda: done() >= orders, f"{{done}} of {orders} orders completed", done)
    return orders / (time.perf_counter() - started)


def _wait(
    condition: Any,
    what: str = "orders stopped completing",
    done: Any = None,
    timeout_s: float = 60.0,
) -> None:
    """Sleep until ``condition()`` holds, woken by each fill (no polling: the bench must not
    take the CPU from what it measures)."""
    with FILLED:
        if not FILLED.wait_for(condition, timeout_s):
            raise TimeoutError(what.format(done=done() if done else "?"))


def open_risk() -> dict[str, Any]:
    risk = bench_risk()
    risk["max_open_orders"] = 1_000_000
    # buying at the ask and marking at the mid loses half the spread a lot: a long run would
    # reach the daily loss limit and (rightly) be held to reducing orders
    risk["daily_loss_limit"] = "1000000000000"
    risk["defaults"] = {
        **risk["defaults"],
        "burst": 1_000_000,
        "max_open_orders": 1_000_000,
        "stale_after_ms": 600_000,  # the book moves only when the bench trades
        # orders queue behind one another here by design: acks slower than the demo's
        # 250 ms would (rightly) halt the venue
        "ack_latency": {"alert_ms": 60_000, "halt_after": 3},
    }
    return risk


def gateway_config(
    venue_port: int, instruments: list[dict[str, Any]], work: Path, client_port: int
) -> dict[str, Any]:
    return {
        "store_dir": str(work / "store"),
        "receipts_url": f"sqlite:///{work / 'receipts.sqlite'}",
        "reconnect_s": 1,
        "venues": [
            {
                "id": "INNER",
                "lines": [
                    {
                        "role": "primary",
                        "port": venue_port,
                        "sender_comp_id": "GW-PRI",
                        "target_comp_id": "INNER",
                    }
                ],
                "instruments": instruments,
            }
        ],
        "risk": open_risk(),
        "client_acceptor": {
            "comp_id": "CMC",
            "port": client_port,
            "clients": [{"comp_id": "FUND"}],
            "drop_copies": [{"comp_id": "COPY"}],
        },
    }


def _venue_main(conn: Connection, port: int, lots: int) -> None:
    """The venue's process: one AU book with a deep resting ask from MAKER."""
    venue = Venue(
        VenueConfig.model_validate(
            {
                "id": "INNER",
                "comp_id": "INNER",
                "port": port,
                "clients": ["GW-PRI", "BARE", "MAKER"],
                "instruments": [AU],
            }
        )
    )
    venue.start()
    maker = FixClient(port=port, sender="MAKER", target="INNER").start()
    maker.wait_report(maker.new_order("AU", Side.SELL, lots, Decimal(ASK)), "0")
    maker.wait_report(maker.new_order("AU", Side.BUY, 1, Decimal(BID)), "0")  # risk's mid
    instruments = [i.model_dump(mode="json", exclude={"venue"}) for i in venue.instruments.values()]
    conn.send(instruments)
    conn.recv()  # until told to stop
    exit_process(0)


def _gateway_main(conn: Connection, config: dict[str, Any]) -> None:
    """The gateway's process, as in production: its OMS, sessions and acceptor alone."""
    logging.basicConfig(level=logging.ERROR)
    gateway = Gateway(GatewayConfig.model_validate(config))
    gateway.start()
    conn.send(gateway.wait_ready(30))
    # CMC_THROUGHPUT_PROFILE=path: the OMS thread's CPU time by function over the gateway's
    # run, warm-up included like its CPU figure (cProfile on thread CPU time is slow: its
    # figures are for comparing functions, and the rate of such a run means nothing)
    profile = os.environ.get("CMC_THROUGHPUT_PROFILE")
    profiler = cProfile.Profile(time.thread_time) if profile else None
    asked = 0
    while conn.recv() == "cpu":  # CPU seconds of this process (every thread), on request
        conn.send(time.process_time())
        asked += 1
        if profiler is not None and asked <= 2:  # on at the first request, off at the second
            _on_oms_thread(gateway, profiler.enable if asked == 1 else profiler.disable)
    if profiler is not None and profile:
        profiler.dump_stats(profile)
    gateway.stop()
    exit_process(0)


def _on_oms_thread(gateway: Gateway, action: Any) -> None:
    done = threading.Event()

    def run(_oms: Any) -> None:
        action()
        done.set()

    gateway.oms.post(run)  # type: ignore[arg-type]
    done.wait(10)


def _clients_main(
    conn: Connection, path: str, port: int, orders: int, warmup: int, window: int
) -> None:
    """The clients' process: warm up, then measure one path; sends back orders per second."""
    if path == "bare":
        bare = Counter(port=port, sender="BARE", target="INNER").start()
        send, done = (lambda: buy(bare, None)), (lambda: bare.fills)
    else:
        fund = Counter(port=port, sender="FUND", target="CMC").start()
        copy = Counter(port=port, sender="COPY", target="CMC").start()
        send = lambda: buy(fund, "INNER")  # noqa: E731
        done = lambda: min(fund.fills, copy.fills)  # noqa: E731
    pump(send, done, warmup, window)
    base = done()
    conn.send(pump(send, lambda: done() - base, orders, window))
    conn.recv()
    exit_process(0)


def _cpu_s(pid: int) -> float:
    """CPU seconds of ``pid`` and the processes it started (0.0 where /proc cannot say)."""
    return process_cpu_s(pid, descendants=True) or 0.0


def _child(ctx: Any, target: Any, *args: Any) -> tuple[Any, Connection]:
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=target, args=(theirs, *args))
    proc.start()
    return proc, ours


def _answer(conn: Connection, what: str, timeout_s: float = 120.0) -> Any:
    if not conn.poll(timeout_s):
        raise TimeoutError(f"{what} did not answer within {timeout_s:.0f} s")
    return conn.recv()


def run(args: argparse.Namespace, out: Console, err: Console) -> dict[str, Any]:
    ctx = multiprocessing.get_context("spawn")  # never fork beside quickfix's threads
    work = Path(tempfile.mkdtemp(prefix="cmc-throughput-"))
    venue_port, client_port = free_port(), free_port()
    lots = (args.orders + args.warmup) * 2 + 10
    children: list[tuple[Any, Connection]] = []
    columns = (TextColumn("{task.description}"), SpinnerColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=err, transient=True) as progress:
            step = progress.add_task("venue starting")
            children.append(_child(ctx, _venue_main, venue_port, lots))
            instruments = _answer(children[-1][1], "the venue")
            venue_pid = children[-1][0].pid
            progress.update(step, description="bare quickfix: client -> venue")
            venue_cpu = _cpu_s(venue_pid)
            children.append(
                _child(
                    ctx, _clients_main, "bare", venue_port, args.orders, args.warmup, args.window
                )
            )
            floor = float(_answer(children[-1][1], "the bare client"))
            floor_cpu = {
                "venue": _cpu_s(venue_pid) - venue_cpu,
                "clients": _cpu_s(children[-1][0].pid),
            }
            progress.update(step, description="gateway starting")
            config = gateway_config(venue_port, instruments, work, client_port)
            children.append(_child(ctx, _gateway_main, config))
            if not _answer(children[-1][1], "the gateway"):
                raise RuntimeError("the gateway did not log on to the venue within 30 s")
            gateway_conn, gateway_pid = children[-1][1], children[-1][0].pid
            gateway_conn.send("cpu")
            cpu_before = float(_answer(gateway_conn, "the gateway"))
            tree_before, venue_cpu = _cpu_s(gateway_pid), _cpu_s(venue_pid)
            progress.update(step, description="through the gateway")
            children.append(
                _child(
                    ctx,
                    _clients_main,
                    "gateway",
                    client_port,
                    args.orders,
                    args.warmup,
                    args.window,
                )
            )
            gateway_rate = float(_answer(children[-1][1], "the gateway's clients"))
            gateway_conn.send("cpu")
            gateway_cpu = float(_answer(gateway_conn, "the gateway")) - cpu_before
            path_cpu = {
                "venue": _cpu_s(venue_pid) - venue_cpu,
                "clients": _cpu_s(children[-1][0].pid),
                "gateway": gateway_cpu,
                "receipt writer": _cpu_s(gateway_pid) - tree_before - gateway_cpu,
            }
            cpu_per_order_us = gateway_cpu / (args.orders + args.warmup) * 1e6
    finally:
        for proc, conn in reversed(children):  # clients, then the gateway, then the venue
            with contextlib.suppress(OSError):
                conn.send("stop")
            proc.join(15)
            if proc.is_alive():
                proc.kill()
    ratio = gateway_rate / floor if floor else 0.0
    table = Table(title="Client orders per second, end to end", title_justify="left")
    table.add_column("path")
    table.add_column("orders/s", justify="right")
    table.add_column("of the floor", justify="right")
    table.add_row("bare quickfix: client -> venue -> fill report", f"{floor:,.0f}", "100%")
    table.add_row(
        "gateway: client -> gateway -> venue -> fill -> report + drop copy",
        f"{gateway_rate:,.0f}",
        f"{ratio:.0%}",
    )
    table.add_row(
        "gateway process CPU per order (warm-up included)", f"{cpu_per_order_us:,.0f} µs", ""
    )
    per_order = 1e6 / (args.orders + args.warmup)
    floor_us = {k: v * per_order for k, v in floor_cpu.items()}
    path_us = {k: v * per_order for k, v in path_cpu.items()}
    ceiling = sum(floor_us.values()) / sum(path_us.values()) if sum(path_us.values()) else 0.0
    table.add_row(
        "CPU per order, every process: floor",
        f"{sum(floor_us.values()):,.0f} µs",
        ", ".join(f"{k} {v:,.0f}" for k, v in floor_us.items()),
    )
    table.add_row(
        "CPU per order, every process: through the gateway",
        f"{sum(path_us.values()):,.0f} µs",
        ", ".join(f"{k} {v:,.0f}" for k, v in path_us.items()),
    )
    table.add_row("floor CPU / gateway path CPU (the CPU-bound ceiling)", f"{ceiling:.0%}", "")
    table.caption = (
        f"{args.orders:,} orders each, {args.window or 'all'} outstanding; goal >= 50% of "
        f"the floor; venue, gateway and clients in processes of their own; {machine_line()}"
    )
    out.print(table)
    return {
        "orders": args.orders,
        "window": args.window,
        "floor_orders_per_s": round(floor, 1),
        "gateway_orders_per_s": round(gateway_rate, 1),
        "ratio": round(ratio, 4),
        "gateway_cpu_per_order_us": round(cpu_per_order_us, 1),
        "floor_cpu_per_order_us": {k: round(v, 1) for k, v in floor_us.items()},
        "path_cpu_per_order_us": {k: round(v, 1) for k, v in path_us.items()},
        "cpu_ceiling_ratio": round(ceiling, 4),
        "goal_ratio": 0.5,
        "met": ratio >= 0.5,
        "machine": machine_info(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--orders", type=int, default=5_000, help="measured orders per path")
    parser.add_argument("--warmup", type=int, default=300, help="orders first, not counted")
    parser.add_argument(
        "--window",
        type=int,
        default=200,
        help="orders outstanding at a time (0: all sent at once, the path's own queues decide)",
    )
    parser.add_argument("--json", action="store_true", help="end the output with one JSON line")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    out, err = Console(), Console(stderr=True)
    result = run(args, out, err)
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    exit_process(main())
