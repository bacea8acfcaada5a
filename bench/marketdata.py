"""Market data to trigger decision: updates decoded and applied per second, and how old a book
is when the strategy decides on it.

Two parts, each bounded in time and seeded:

* **decode + apply, one core, no FIX.** Two simulated venues (``MatchingEngine`` with a
  seeded ``LiquidityProvider`` each, gold AU in CNY/g and GC in USD/oz) publish through the
  simulator's own ``MarketDataPublisher``; every snapshot and update it writes, with a
  SendingTime added, is kept as FIX text. Then, with the clock running, each text goes
  through the gateway's ``codec.decode`` and ``MarketView.apply`` (clock calibration
  included), and, in a second pass, through the strategy's ``evaluate`` as well: the OMS
  thread's market-data path without receipts. The floor is the same loop around
  ``fixwire.parse`` alone (the cheapest look at a message there is).
* **through the real gateway, loopback FIX.** The same two venues with their liquidity
  providers requoting every ``--interval-ms``, in a process of their own (spawned: no GIL
  shared with the gateway). First the floor: a bare quickfix initiator (the simulator's
  ``FixClient``) subscribes to both books, and each message's age on arrival is its
  receive time minus its SendingTime(52). Then the real ``Gateway`` (OMS thread, receipt
  writer process, a primary and a backup line per venue) with a GOLD pair; every time the
  strategy decides (each market-data message on either leg), the age of the book that
  caused it is taken right after ``evaluate`` returns: raw (decision time minus the
  venue's SendingTime; one machine, one clock) and as the OMS sees it (corrected by the
  venue's estimated clock offset, ``oms.calibration``). Ratio to the floor beside it.

The gateway runs in this process (the bench's own thread only sleeps meanwhile), with the
interpreter's GIL switch interval as the product leaves it unless ``--switch-interval-us``
says otherwise: the OMS thread and quickfix's thread share one GIL, and a thread that wants
it can wait a whole interval for the other to let go.

SendingTime carries microseconds (quickfix stamps it when it writes the message), so ages
are good to about a microsecond. The goal is a p99 age at decision of at most 1 ms (the
product guide claims 30 ms for market-data sync).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import multiprocessing
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from sessions.demo import bench_risk  # noqa: E402
from sessions.measure import machine_info, machine_line, percentile  # noqa: E402

INNER: dict[str, Any] = {
    "symbol": "AU",
    "currency": "CNY",
    "tick": "0.02",
    "contract_size": "1000",
    "contract_unit": "g",
    "prev_close": "560.00",
}
OUTER: dict[str, Any] = {
    "symbol": "GC",
    "currency": "USD",
    "tick": "0.1",
    "contract_size": "100",
    "contract_unit": "troy_oz",
    "prev_close": "2402.5",
}
PAIR: dict[str, Any] = {
    "id": "GOLD",
    "inner": {"venue": "INNER", "symbol": "AU"},
    "outer": {"venue": "OUTER", "symbol": "GC"},
    "fx_rate": "7.25",
    "entry_spread": "2.0",
    "exit_spread": "0.8",
    "max_position": 1,
}
CLIENTS = ("GW-PRI", "GW-BAK", "FLOOR")
GOAL_P99_US = 1000.0
DEPTH = 5


def liquidity(seed: int, interval_ms: int) -> dict[str, Any]:
    return {"enabled": True, "seed": seed, "interval_ms": interval_ms, "levels": 5, "size": 10}


# -- part 1: decode + apply ----------------------------------------------------------------------


def _collect(box: list[str]) -> Callable[[str, str], None]:
    def send(_session: str, text: str) -> None:
        box.append(text)

    return send


def generate(messages: int, seed: int) -> list[tuple[str, str]]:
    """(venue, FIX text) of ``messages`` market-data messages from both venues, interleaved."""
    from oms.instruments import Instrument
    from sessions.fixwire import utc_timestamp
    from sessions.simulator.commands import MarketDataRequest
    from sessions.simulator.config import LiquidityConfig
    from sessions.simulator.liquidity import LiquidityProvider
    from sessions.simulator.market_data import MarketDataPublisher
    from sessions.simulator.matching import MatchingEngine

    out: list[tuple[str, str]] = []
    feeds = []
    for n, (venue, spec) in enumerate((("INNER", INNER), ("OUTER", OUTER))):
        engine = MatchingEngine([Instrument.model_validate({**spec, "venue": venue})])
        lp = LiquidityProvider(engine, LiquidityConfig.model_validate(liquidity(seed + n, 1)))
        sent: list[str] = []
        publisher = MarketDataPublisher(engine, _collect(sent), 10)
        request = ("BENCH", f"{venue}-1", "1", DEPTH, "1", ("0", "1", "2"), (spec["symbol"],))
        publisher.request(MarketDataRequest(*request))
        feeds.append((venue, spec["symbol"], lp, publisher, sent))
    stamp = time.time_ns()
    while len(out) < messages:
        for venue, symbol, lp, publisher, sent in feeds:
            lp.refresh()
            publisher.touched(symbol)
            publisher.flush()
            for text in sent:
                stamp += 50_000
                kind = "W" if "\x0135=W\x01" in text else "X"
                header = f"\x0135={kind}\x0152={utc_timestamp(stamp)}\x01"
                out.append((venue, text.replace(f"\x0135={kind}\x01", header, 1)))
            sent.clear()
    return out[:messages]


def decode_apply(texts: list[tuple[str, str]], max_s: float) -> dict[str, Any]:
    from oms.events import LineRole, MarketDataReceived
    from oms.instruments import Instrument
    from oms.market import MarketView
    from oms.pairs import PairConfig, PairSpec
    from oms.strategy import SpreadStrategy
    from sessions.codec import decode
    from sessions.fixwire import parse

    primary = LineRole.PRIMARY
    spec = PairSpec.build(
        PairConfig.model_validate(PAIR),
        Instrument.model_validate({**INNER, "venue": "INNER"}),
        Instrument.model_validate({**OUTER, "venue": "OUTER"}),
    )
    clock = time.perf_counter_ns

    def run(evaluate: bool, floor: bool) -> tuple[int, int, list[int]]:
        market = MarketView()
        strategy = SpreadStrategy(spec)
        samples: list[int] = []
        deadline = clock() + int(max_s * 1e9)
        started = clock()
        n = 0
        for venue, text in texts:
            t0 = clock()
            if floor:
                parse(text)
            else:
                event = decode(text, venue, primary, t0)
                assert isinstance(event, MarketDataReceived)
                market.apply(event)
                if evaluate:
                    strategy.evaluate(market, 0, t0)
            t1 = clock()
            samples.append(t1 - t0)
            n += 1
            if t1 > deadline:
                break
        return n, clock() - started, samples

    gc.collect()
    gc.freeze()
    results: dict[str, Any] = {}
    for name, evaluate, floor in (
        ("floor", False, True),
        ("apply", False, False),
        ("evaluate", True, False),
    ):
        n, total_ns, samples = run(evaluate, floor)
        samples.sort()
        results[name] = {
            "messages": n,
            "per_s": n / (total_ns / 1e9),
            "p50_us": percentile(samples, 50) / 1e3,
            "p99_us": percentile(samples, 99) / 1e3,
        }
    gc.unfreeze()
    return results


# -- part 2: the venues' process ---------------------------------------------------------------


def _venues_main(conn: Connection, ports: dict[str, int], seed: int, interval_ms: int) -> None:
    try:
        from sessions.simulator.config import VenueConfig
        from sessions.simulator.venue import Venue

        venues = []
        for n, (venue_id, spec) in enumerate((("INNER", INNER), ("OUTER", OUTER))):
            config = VenueConfig.model_validate(
                {
                    "id": venue_id,
                    "comp_id": venue_id,
                    "port": ports[venue_id],
                    "clients": list(CLIENTS),
                    "instruments": [spec],
                    "liquidity": liquidity(seed + n, interval_ms),
                }
            )
            venue = Venue(config)
            venue.start()
            venues.append(venue)
        conn.send(("ready", os.getpid()))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        os._exit(1)
    with contextlib.suppress(EOFError, OSError):
        conn.recv()
    sent = [v.md.messages_sent for v in venues]
    for venue in venues:
        venue.retire()
    with contextlib.suppress(OSError):
        conn.send(("stopped", sent))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # retired acceptors are never stopped (FixEngine.retire)


def floor_run(ports: dict[str, int], seconds: float) -> list[int]:
    """Ages (ns) on arrival at a bare quickfix initiator: receive time minus SendingTime."""
    from sessions.fixwire import parse_utc_timestamp
    from sessions.simulator.client import FixClient

    ages: list[int] = []
    clients = []
    for venue_id, spec in (("INNER", INNER), ("OUTER", OUTER)):
        client = FixClient(port=ports[venue_id], sender="FLOOR", target=venue_id)
        client.start(wait_logon_s=15)
        client.subscribe([spec["symbol"]], depth=DEPTH)
        clients.append(client)
    time.sleep(seconds)
    for client in clients:
        client.stop()
        for msg in client.received:
            if msg.msg_type == "X" and 52 in msg.tags:
                ages.append(msg.recv_ns - parse_utc_timestamp(msg.tags[52]))
    return ages


def gateway_run(ports: dict[str, int], seconds: float, work: Path) -> dict[str, Any]:
    """Runs the real gateway for ``seconds``; the age of the deciding book at each decision."""
    from oms.clock import now_ns
    from oms.market import MarketView
    from oms.strategy import SpreadStrategy
    from sessions.gateway import Gateway
    from sessions.gateway_config import GatewayConfig

    raw: list[int] = []
    corrected: list[int] = []
    in_oms: list[int] = []
    fired = [0]
    measuring = [False]
    original = SpreadStrategy.evaluate

    def evaluate(self: SpreadStrategy, market: MarketView, position: int, cause_ns: int) -> Any:
        intent = original(self, market, position, cause_ns)
        decided = now_ns()
        if measuring[0]:
            for key in (self.view.inner_key, self.view.outer_key):
                book = market.books.get(key)
                if book is not None and book.updated_ns == cause_ns:
                    if book.sending_ns is not None:
                        raw.append(decided - book.sending_ns)
                    corrected.append(decided - book.stamped_ns)
                    in_oms.append(decided - cause_ns)
                    break
            fired[0] += intent is not None
        return intent

    SpreadStrategy.evaluate = evaluate  # type: ignore[method-assign]
    config = GatewayConfig.model_validate(
        {
            "store_dir": str(work / "store"),
            "receipts_url": f"sqlite:///{work / 'receipts.sqlite'}",
            "reconnect_s": 1,
            "venues": [
                {
                    "id": venue_id,
                    "lines": [
                        {
                            "role": role,
                            "port": ports[venue_id],
                            "sender_comp_id": sender,
                            "target_comp_id": venue_id,
                        }
                        for role, sender in (("primary", "GW-PRI"), ("backup", "GW-BAK"))
                    ],
                    "instruments": [spec],
                    "market_data_depth": DEPTH,
                }
                for venue_id, spec in (("INNER", INNER), ("OUTER", OUTER))
            ],
            "pairs": [PAIR],
            "risk": bench_risk(),
        }
    )
    gateway = Gateway(config)
    gateway.start()
    try:
        if not gateway.wait_ready(30):
            raise RuntimeError("the gateway did not get both books within 30 s")
        time.sleep(0.5)  # both lines logged on, the first snapshots behind us
        measuring[0] = True
        time.sleep(seconds)
        measuring[0] = False

        def state(oms: Any) -> dict[str, Any]:
            return {
                "offsets_us": {
                    v: (o / 1e3 if (o := oms.market.clock_offset_ns(v)) is not None else None)
                    for v in ("INNER", "OUTER")
                },
                "delay_us": {
                    v: (c.delay_ns / 1e3 if c.delay_ns is not None else None)
                    for v, c in oms.market.clocks.items()
                },
                "evaluations": oms.pairs["GOLD"].strategy.view.evaluations,
                "oms_errors": oms.errors,
            }

        found = gateway.oms.call(state)
    finally:
        gateway.stop()
        SpreadStrategy.evaluate = original  # type: ignore[method-assign]
    return {**found, "raw": raw, "corrected": corrected, "in_oms": in_oms, "fired": fired[0]}


# -- the report ----------------------------------------------------------------------------------


def us(values: Sequence[int], q: float) -> float:
    return round(percentile(values, q) / 1e3, 1)


def ratio(values: Sequence[int], floor: Sequence[int], q: float) -> float:
    return round(percentile(values, q) / max(1.0, percentile(floor, q)), 2)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=50_000, help="part 1: messages")
    parser.add_argument("--seconds", type=float, default=8.0, help="part 2: gateway run")
    parser.add_argument("--floor-seconds", type=float, default=3.0, help="part 2: floor run")
    parser.add_argument("--interval-ms", type=int, default=5, help="market maker requote")
    parser.add_argument("--seed", type=int, default=20240601)
    parser.add_argument("--max-seconds", type=float, default=20.0, help="part 1: per loop")
    parser.add_argument("--skip-fix", action="store_true", help="part 1 only")
    parser.add_argument(
        "--switch-interval-us",
        type=float,
        default=None,
        help="set the gateway process's GIL switch interval (Python's default: 5000 us)",
    )
    parser.add_argument("--json", action="store_true", help="end the output with one JSON line")
    args = parser.parse_args(argv)

    out = Console() if sys.stdout.isatty() else Console(width=120)
    info = machine_info()
    texts = generate(args.messages, args.seed)
    part1 = decode_apply(texts, args.max_seconds)

    part2: dict[str, Any] | None = None
    floor: list[int] = []
    if not args.skip_fix:
        from sessions.ports import free_port

        if args.switch_interval_us is not None:
            sys.setswitchinterval(args.switch_interval_us / 1e6)
        ports = {"INNER": free_port(), "OUTER": free_port()}
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_venues_main, args=(child, ports, args.seed, args.interval_ms), daemon=True
        )
        proc.start()
        kind, detail = parent.recv()
        if kind != "ready":
            out.print(f"[red]the venues did not start:\n{detail}")
            return 1
        try:
            floor = sorted(floor_run(ports, args.floor_seconds))
            with tempfile.TemporaryDirectory(prefix="cmc-bench-md-") as work:
                part2 = gateway_run(ports, args.seconds, Path(work))
        finally:
            with contextlib.suppress(OSError):
                parent.send("stop")
            with contextlib.suppress(EOFError, OSError):
                if parent.poll(10):
                    parent.recv()
            proc.join(10)

    apply, evaluate, loop = part1["apply"], part1["evaluate"], part1["floor"]
    result: dict[str, Any] = {
        "messages": apply["messages"],
        "seed": args.seed,
        "updates_per_s": round(apply["per_s"]),
        "decode_apply_p50_us": round(apply["p50_us"], 2),
        "decode_apply_p99_us": round(apply["p99_us"], 2),
        "with_evaluate_per_s": round(evaluate["per_s"]),
        "with_evaluate_p50_us": round(evaluate["p50_us"], 2),
        "with_evaluate_p99_us": round(evaluate["p99_us"], 2),
        "parse_floor_per_s": round(loop["per_s"]),
        "decode_apply_to_parse_ratio": round(loop["per_s"] / apply["per_s"], 2),
        "goal_age_p99_us": GOAL_P99_US,
        **info,
    }
    if part2 is not None:
        raw, corrected, in_oms = (sorted(part2[k]) for k in ("raw", "corrected", "in_oms"))
        result |= {
            "interval_ms": args.interval_ms,
            "switch_interval_us": round(sys.getswitchinterval() * 1e6),
            "decisions": len(corrected),
            "fired": part2["fired"],
            "age_p50_us": us(raw, 50),
            "age_p99_us": us(raw, 99),
            "age_max_us": us(raw, 100),
            "corrected_age_p50_us": us(corrected, 50),
            "corrected_age_p99_us": us(corrected, 99),
            "receive_to_decision_p50_us": us(in_oms, 50),
            "receive_to_decision_p99_us": us(in_oms, 99),
            "floor_messages": len(floor),
            "floor_age_p50_us": us(floor, 50),
            "floor_age_p99_us": us(floor, 99),
            "age_to_floor_p50_ratio": round(
                percentile(raw, 50) / max(1.0, percentile(floor, 50)), 2
            ),
            "age_to_floor_p99_ratio": round(
                percentile(raw, 99) / max(1.0, percentile(floor, 99)), 2
            ),
            "clock_offset_us": part2["offsets_us"],
            "oms_errors": part2["oms_errors"],
            "goal_met": bool(raw) and percentile(raw, 99) / 1e3 <= GOAL_P99_US,
        }

    table = Table(title="Market data: decoded, applied, decided on")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row(
        f"decode + apply ({apply['messages']:,} messages, seed {args.seed})",
        f"{result['updates_per_s']:,} updates/s",
    )
    table.add_row("  per message p50 / p99", f"{apply['p50_us']:.2f} / {apply['p99_us']:.2f} µs")
    table.add_row("  floor: parse alone", f"{result['parse_floor_per_s']:,} messages/s")
    table.add_row("  decode + apply / parse, time", f"{result['decode_apply_to_parse_ratio']}x")
    table.add_row("decode + apply + evaluate", f"{result['with_evaluate_per_s']:,} updates/s")
    table.add_row(
        "  per message p50 / p99", f"{evaluate['p50_us']:.2f} / {evaluate['p99_us']:.2f} µs"
    )
    if part2 is not None:
        table.add_row(
            f"gateway: decisions in {args.seconds:g} s (requote every {args.interval_ms} ms)",
            f"{result['decisions']:,} ({result['fired']} fired)",
        )
        table.add_row(
            "book age at decision p50 / p99 (SendingTime -> decided)",
            f"{result['age_p50_us']} / {result['age_p99_us']} µs",
        )
        table.add_row(
            "  corrected for clock offset p50 / p99",
            f"{result['corrected_age_p50_us']} / {result['corrected_age_p99_us']} µs",
        )
        table.add_row(
            "  of which receive -> decided p50 / p99",
            f"{result['receive_to_decision_p50_us']} / {result['receive_to_decision_p99_us']} µs",
        )
        table.add_row(
            f"floor: bare initiator, age on arrival ({len(floor):,} msgs) p50 / p99",
            f"{result['floor_age_p50_us']} / {result['floor_age_p99_us']} µs",
        )
        table.add_row(
            "age / floor p50, p99",
            f"{result['age_to_floor_p50_ratio']}x, {result['age_to_floor_p99_ratio']}x",
        )
        table.add_row(
            "goal: age p99 <= 1 ms",
            "[green]met" if result["goal_met"] else "[red]not met",
        )
        offsets = ", ".join(f"{v} {o} µs" for v, o in result["clock_offset_us"].items())
        table.add_row("estimated clock offsets (venue - ours)", offsets)
        table.add_row("GIL switch interval", f"{result['switch_interval_us']} µs")
    table.add_row("machine", machine_line())
    out.print(table)
    if args.json:
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
