"""Paired legs under faults: how often a spread trade completes, and how fast a fault is answered.

The gateway trades the gold pair (28 AU lots in CNY per gram against 9 GC lots in USD per
troy ounce) one pair unit at a time, alternating direction, against two simulated venues
with market makers that reject 2 % of orders, part-fill 10 % and answer 1 ms late on the
outer venue; half-way through, the inner venue cuts every connection once. Everything is
real: FIX over loopback, the OMS thread, the receipt writer process, SQLite receipts.

What is reported (``sessions/soak.py`` computes it):

* success rate: trades that ended with both legs filled, topped up within the pair's
  slippage bound included, of the trades sent (goal >= 97 %);
* top-up and unwind rounds;
* first fault to pair balanced: from the receive time of the report that showed a leg
  short (a reject, an IOC's cancelled remainder) to the trade ending aligned on whole
  units, p50 / p99 (goal: every fault answered within 50 ms p99);
* unhedged exposure, in inner lots: the worst imbalance left once the venues had answered
  and before the repair went out ("held"), and the worst at any instant, legs in flight
  included ("peak"). The goal's "5 % of the pair's notional" is taken against the pair's
  notional at its position limit (``--max-position`` units); the share of one unit is
  printed beside it, since one rejected 28-lot leg is, for its few milliseconds, one whole
  unit unhedged;
* at the end: the residual imbalance (must be 0), orders left working (0) and every order
  reconciled with the venues' own fills (0 mismatches).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sessions.measure import machine_info, machine_line, percentile
from sessions.soak import SoakPlan, SoakResult, run_soak

NS_PER_MS = 1_000_000


def figures(result: SoakResult) -> dict[str, object]:
    faults = sorted(result.fault_to_balanced_ns)
    return {
        "attempts": result.attempts,
        "success_rate": round(result.success_rate, 5),
        "outcomes": dict(result.outcomes),
        "top_up_rounds": result.top_up_rounds,
        "unwind_rounds": result.unwind_rounds,
        "faults": len(faults),
        "fault_to_balanced_p50_ms": round(percentile(faults, 50) / NS_PER_MS, 3),
        "fault_to_balanced_p99_ms": round(percentile(faults, 99) / NS_PER_MS, 3),
        "fault_to_balanced_max_ms": round((faults[-1] if faults else 0) / NS_PER_MS, 3),
        "held_imbalance_lots": str(result.held_imbalance_lots),
        "peak_imbalance_lots": str(result.peak_imbalance_lots),
        "exposure_share_of_limit": round(result.exposure_share, 5),
        "exposure_share_of_unit": round(float(result.held_imbalance_lots) / result.unit_lots, 5)
        if result.unit_lots
        else 0.0,
        "residual_imbalance_lots": str(result.residual_imbalance),
        "working_orders": result.working_orders + result.venue_working,
        "mismatches": len(result.mismatches),
        "orders": result.orders,
        "connections_dropped": result.drops,
        "stuck_trades": result.stuck,
        "run_s": round(result.duration_s, 2),
    }


def table(plan: SoakPlan, f: dict[str, object]) -> Table:
    t = Table(
        title=f"Paired legs under faults: {plan.attempts:,} spread attempts, seed {plan.seed}"
    )
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("goal / note", justify="right")

    def met(ok: bool) -> str:
        return "met" if ok else "[red]missed[/red]"

    success = float(f["success_rate"])  # type: ignore[arg-type]
    p99 = float(f["fault_to_balanced_p99_ms"])  # type: ignore[arg-type]
    share = float(f["exposure_share_of_limit"])  # type: ignore[arg-type]
    t.add_row("success rate", f"{success:.2%}", f">= 97 %: {met(success >= 0.97)}")
    t.add_row("outcomes", ", ".join(f"{k} {v}" for k, v in f["outcomes"].items()), "")  # type: ignore[attr-defined]
    t.add_row("top-up / unwind rounds", f"{f['top_up_rounds']} / {f['unwind_rounds']}", "")
    t.add_row(
        "first fault -> balanced p50 / p99 / max",
        f"{f['fault_to_balanced_p50_ms']} / {p99} / {f['fault_to_balanced_max_ms']} ms",
        f"p99 <= 50 ms: {met(p99 <= 50)}; {f['faults']} faults",
    )
    t.add_row(
        "worst unhedged, held / peak (inner lots)",
        f"{f['held_imbalance_lots']} / {f['peak_imbalance_lots']}",
        "held: after the venues answered; peak: legs in flight",
    )
    t.add_row(
        f"held, share of the notional at {plan.max_position} units",
        f"{share:.2%}",
        f"<= 5 %: {met(share <= 0.05)}; of one unit: {f['exposure_share_of_unit']:.0%}",
    )
    t.add_row("residual imbalance (inner lots)", str(f["residual_imbalance_lots"]), "must be 0")
    t.add_row("orders left working (OMS + venues)", str(f["working_orders"]), "must be 0")
    t.add_row("orders not matching the venues' fills", str(f["mismatches"]), "must be 0")
    t.add_row(
        "orders sent / connections dropped", f"{f['orders']:,} / {f['connections_dropped']}", ""
    )
    t.add_row("run time", f"{f['run_s']} s", machine_line())
    return t


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--attempts", type=int, default=10_000)
    parser.add_argument("--reject-rate", type=float, default=0.02)
    parser.add_argument("--partial-fill-rate", type=float, default=0.10)
    parser.add_argument("--ack-delay-ms", type=int, default=1)
    parser.add_argument("--max-position", type=int, default=20, help="pair units: the notional")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    args = parser.parse_args(argv)
    plan = SoakPlan(
        attempts=args.attempts,
        reject_rate=args.reject_rate,
        partial_fill_rate=args.partial_fill_rate,
        ack_delay_ms=args.ack_delay_ms,
        max_position=args.max_position,
        seed=args.seed,
    )
    console = Console()
    with (
        tempfile.TemporaryDirectory(prefix="cmc-soak-") as work,
        Progress(
            TextColumn("spread attempts"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task("soak", total=plan.attempts)
        result = run_soak(plan, Path(work), lambda n: progress.update(task, completed=n))
    f = figures(result)
    console.print(table(plan, f))
    for line in result.mismatches[:10]:
        console.print(f"[red]mismatch[/red] {line}")
    if args.json:
        print(json.dumps({**f, "machine": machine_info()}))
    clean = not result.mismatches and result.residual_imbalance == 0 and not f["working_orders"]
    return 0 if clean else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # quickfix's acceptors are retired, not stopped (stopping one can crash the process):
    # leave without running their destructors.
    import os

    os._exit(code)
