"""Messages per second through the matching engine alone: no FIX, no I/O, one core.

The figure bounds what the venue simulator can ever do, so it has to sit well above the
quickfix floors in DESIGN.md (about 10-12k fills/s): the goal is 300,000 messages/s.

The message mix is seeded and generated in full before the clock starts, Decimal prices
included, so that only the engine is timed:

* 60 % adds: DAY limit orders, 1-10 lots, 1-20 ticks away from a fixed mid on their own
  side, so they always rest;
* 25 % cancels of a resting order picked uniformly at random (a shadow book in the generator
  knows which orders still rest, so none should be refused);
* 15 % marketable orders: IOC limits priced 20 ticks through the mid, which walk as many
  levels as they need and cancel what they cannot fill. They are 1-20 lots, plus one lot per
  20 that the side they hit rests above 500 lots: that holds each side near 500 lots (about
  a hundred orders) instead of letting the book grow without bound over a million messages.

The same loop is timed a second time calling a no-op instead of the engine: the "floor", the
cost of the loop and the call itself. The machines are shared and noisy; the ratio to the
floor holds where absolute numbers drift. One message in every ``SAMPLE_EVERY`` is timed on
its own for the percentiles (which include the timer's own cost, reported beside them).

The pre-generated messages are moved out of the garbage collector's sight (``gc.freeze``)
before timing: they are the harness's, and every full collection would otherwise walk their
two million tuples. What the engine itself allocates is collected as in production.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
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

from oms.enums import Side, TimeInForce  # noqa: E402
from oms.instruments import Instrument  # noqa: E402
from sessions.measure import machine_info, percentile  # noqa: E402
from sessions.simulator.matching import MatchingEngine, OrderState  # noqa: E402

SYMBOL = "AU2406"
TICK = Decimal("0.02")
MID_TICKS = 25_000  # 500.00
PASSIVE_RANGE = 20  # adds rest 1..20 ticks from the mid
THROUGH = 20  # takers are priced this many ticks through the mid
TARGET_LOTS = 500  # takers grow past 1-20 lots when a side rests more than this
MIX = (("add", 0.60), ("cancel", 0.25), ("take", 0.15))
SAMPLE_EVERY = 100  # one timed message per chunk of this many
PROGRESS_EVERY = 10_000  # messages between progress-bar updates and deadline checks

Call = tuple[Callable[..., Any], tuple[Any, ...]]


def instrument() -> Instrument:
    return Instrument(
        venue="SIM",
        symbol=SYMBOL,
        currency="CNY",
        tick=TICK,
        lot=1,
        contract_size=Decimal(1000),
        contract_unit="g",
        prev_close=TICK * MID_TICKS,
        price_band_pct=Decimal(10),
        max_order_qty=1000,
    )


class _Shadow:
    """Just enough of a book to know which orders still rest, so cancels can name them.

    Adds never cross (they rest on their own side of the mid) and takers walk the other side
    from the mid outwards in arrival order, so a FIFO per level, with cancelled entries left
    behind as zero quantity, tracks the engine exactly. If the two ever disagreed, the
    engine would refuse cancels, and the result's ``cancels_refused`` would show it.
    """

    def __init__(self) -> None:
        # per side (0 bids, 1 asks), index = ticks from the mid; entries [order id, leaves, side]
        self.queues: tuple[list[deque[list[int]]], ...] = tuple(
            [deque() for _ in range(PASSIVE_RANGE + 1)] for _ in range(2)
        )
        self.lots = [0, 0]
        self.live: list[list[int]] = []  # entries of resting orders, for a uniform pick
        self.pos: dict[int, int] = {}  # order id -> index in ``live``

    def add(self, side: int, away: int, order_id: int, qty: int) -> None:
        entry = [order_id, qty, side]
        self.queues[side][away].append(entry)
        self.lots[side] += qty
        self.pos[order_id] = len(self.live)
        self.live.append(entry)

    def _drop(self, entry: list[int]) -> None:
        i = self.pos.pop(entry[0])
        last = self.live.pop()
        if last is not entry:
            self.live[i] = last
            self.pos[last[0]] = i

    def cancel_random(self, rng: random.Random) -> int:
        entry = self.live[rng.randrange(len(self.live))]
        self._drop(entry)
        self.lots[entry[2]] -= entry[1]
        entry[1] = 0
        return entry[0]

    def take(self, side: int, qty: int) -> None:
        """A taker of ``qty`` lots against ``side`` (0 bids, 1 asks)."""
        for queue in self.queues[side]:
            while queue and qty:
                entry = queue[0]
                done = min(qty, entry[1])
                qty -= done
                entry[1] -= done
                self.lots[side] -= done
                if not entry[1]:
                    queue.popleft()
                    if entry[0] in self.pos:
                        self._drop(entry)
            if not qty:
                return


def generate(n: int, seed: int) -> tuple[list[tuple[str, tuple[Any, ...]]], dict[str, int]]:
    """The message list, as (command, arguments), and how many of each command it holds.

    Order ids are predicted rather than read back: the engine numbers every submit 1, 2, 3...
    """
    rng = random.Random(seed)
    prices = {t: TICK * t for t in range(MID_TICKS - THROUGH, MID_TICKS + THROUGH + 1)}
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    sides = (Side.BUY, Side.SELL)
    day, ioc = TimeInForce.DAY, TimeInForce.IOC
    shadow = _Shadow()
    next_id = 0
    counts = dict.fromkeys(kinds, 0)
    out: list[tuple[str, tuple[Any, ...]]] = []
    for kind in rng.choices(kinds, weights, k=n):
        if kind == "cancel" and not shadow.live:
            kind = "add"
        counts[kind] += 1
        if kind == "cancel":
            out.append(("cancel", (shadow.cancel_random(rng),)))
            continue
        side = rng.randrange(2)  # 0 buy, 1 sell
        next_id += 1
        if kind == "add":
            away = rng.randint(1, PASSIVE_RANGE)
            px = prices[MID_TICKS - away if side == 0 else MID_TICKS + away]
            qty = rng.randint(1, 10)
            shadow.add(side, away, next_id, qty)
            out.append(("submit", ("bench", SYMBOL, sides[side], qty, px, day)))
        else:
            px = prices[MID_TICKS + THROUGH if side == 0 else MID_TICKS - THROUGH]
            hit = 1 - side
            qty = rng.randint(1, 20) + max(0, shadow.lots[hit] - TARGET_LOTS) // 20
            shadow.take(hit, qty)
            out.append(("submit", ("bench", SYMBOL, sides[side], qty, px, ioc)))
    return out, counts


def noop(*_args: Any) -> None:
    """The floor's stand-in for an engine command: a Python call and nothing else."""


def run(
    calls: Sequence[Call], deadline_s: float, progress: Progress, label: str
) -> tuple[int, int, list[int]]:
    """Run ``calls`` in order: (messages run, total ns, per-message ns of the sampled ones).

    Stops early, at a progress step, once ``deadline_s`` has passed, so a slow machine
    gives a figure on fewer messages instead of running for ever.
    """
    task = progress.add_task(label, total=len(calls))
    clock = time.perf_counter_ns
    samples: list[int] = []
    done = 0
    start = clock()
    deadline = start + int(deadline_s * 1e9)
    for base in range(0, len(calls), SAMPLE_EVERY):
        fn, args = calls[base]
        t0 = clock()
        fn(*args)
        samples.append(clock() - t0)
        for fn, args in calls[base + 1 : base + SAMPLE_EVERY]:
            fn(*args)
        done = min(base + SAMPLE_EVERY, len(calls))
        if done % PROGRESS_EVERY == 0:
            progress.update(task, completed=done)
            if clock() > deadline:
                break
    total = clock() - start
    progress.update(task, completed=done)
    return done, total, samples


def timer_overhead_ns() -> int:
    """Median cost of the two clock reads around a sampled message."""
    clock = time.perf_counter_ns
    costs = []
    for _ in range(10_000):
        t0 = clock()
        costs.append(clock() - t0)
    costs.sort()
    return costs[len(costs) // 2]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="messages to run")
    parser.add_argument("--seed", type=int, default=20240601, help="seed of the message mix")
    parser.add_argument(
        "--max-seconds", type=float, default=120.0, help="stop each timed loop after this long"
    )
    parser.add_argument("--json", action="store_true", help="end the output with one JSON line")
    args = parser.parse_args(argv)
    if args.messages < 1:
        parser.error("--messages must be at least 1")

    out = Console()
    if not out.is_terminal:  # piped or redirected: wide enough that no row wraps
        out = Console(width=120)
    err = Console(stderr=True)
    info = machine_info()
    t0 = time.perf_counter()
    messages, counts = generate(args.messages, args.seed)
    generate_s = time.perf_counter() - t0

    engine = MatchingEngine([instrument()], clock=time.time_ns)
    commands: dict[str, Callable[..., Any]] = {"submit": engine.submit, "cancel": engine.cancel}
    calls: list[Call] = [(commands[name], a) for name, a in messages]
    floor_calls: list[Call] = [(noop, a) for _, a in messages]
    del messages
    # The two million pre-generated tuples are the harness's, not the engine's: without this
    # every full collection during the run would walk them too (0.3 s of a 3 s run). What
    # the engine allocates while it runs (its orders, reports and levels) is still collected.
    gc.collect()
    gc.freeze()

    columns = (
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        floor_n, floor_ns, _ = run(floor_calls, args.max_seconds, progress, "floor")
        n, total_ns, samples = run(calls, args.max_seconds, progress, "engine")

    samples.sort()
    total_s = total_ns / 1e9
    floor_s = floor_ns / 1e9
    rate = n / total_s
    floor_rate = floor_n / floor_s
    book = engine.books[SYMBOL]
    orders = engine.orders.values()
    cancels_done = sum(
        1 for o in orders if o.state is OrderState.CANCELED and o.tif is TimeInForce.DAY
    )
    ran_cancels = sum(1 for fn, _ in calls[:n] if fn == engine.cancel)
    result: dict[str, Any] = {
        "messages": n,
        "messages_requested": args.messages,
        "seed": args.seed,
        "mix_pct": {k: round(100 * w) for k, w in MIX},
        "mix_count": counts,
        "messages_per_s": round(rate),
        "total_s": round(total_s, 4),
        "mean_us": round(total_ns / n / 1e3, 3),
        "p50_us": round(percentile(samples, 50) / 1e3, 3),
        "p99_us": round(percentile(samples, 99) / 1e3, 3),
        "p50_p99_sample_messages": len(samples),
        "floor_messages_per_s": round(floor_rate),
        "floor_total_s": round(floor_s, 4),
        "engine_to_floor_time_ratio": round(total_s / n / (floor_s / floor_n), 2),
        "generate_s": round(generate_s, 3),
        "goal_messages_per_s": 300_000,
        "timer_overhead_ns": timer_overhead_ns(),
        "traded_lots": sum(o.cum for o in orders if o.tif is TimeInForce.IOC),
        "cancels_refused": ran_cancels - cancels_done,
        "resting_orders_at_end": sum(1 for _ in book.orders()),
        "resting_levels_at_end": len(book.bid_keys) + len(book.ask_keys),
        **info,
    }

    table = Table(title=f"Matching engine alone: {n:,} messages, seed {args.seed}")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("messages/s", f"{rate:,.0f}")
    table.add_row("goal", "300,000 messages/s")
    table.add_row("total", f"{total_s:.3f} s")
    table.add_row("mean per message", f"{result['mean_us']:.3f} µs")
    table.add_row(f"p50 ({len(samples):,} sampled)", f"{result['p50_us']:.3f} µs")
    table.add_row(f"p99 ({len(samples):,} sampled)", f"{result['p99_us']:.3f} µs")
    table.add_row("timer cost in each sample", f"{result['timer_overhead_ns']} ns")
    table.add_row("floor (no-op loop)", f"{floor_rate:,.0f} messages/s")
    table.add_row("engine / floor, time per message", f"{result['engine_to_floor_time_ratio']}x")
    table.add_row("mix", ", ".join(f"{counts[k]:,} {k}s ({round(100 * w)} %)" for k, w in MIX))
    table.add_row("traded lots (taker side)", f"{result['traded_lots']:,}")
    table.add_row("cancels refused (shadow book disagreed)", f"{result['cancels_refused']:,}")
    table.add_row(
        "book at end",
        f"{result['resting_orders_at_end']} orders on {result['resting_levels_at_end']} levels",
    )
    table.add_row(
        "machine",
        f"{info['cpu_count']} CPUs, {info['python_implementation']} {info['python']}, "
        f"{info['platform']}",
    )
    table.add_row("quickfix", str(info["quickfix"]))
    out.print(table)
    if n < args.messages:
        out.print(f"[yellow]stopped after {args.max_seconds} s: {n:,} of {args.messages:,} run")
    if args.json:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
