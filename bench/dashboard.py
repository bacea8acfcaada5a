"""Dashboard: snapshots a second to a reader that keeps up and to one that does not, how old
each snapshot is when read, and what a snapshot costs the OMS thread.

The demo's two venues (market makers requoting every 100 ms) and the demo's gateway with its
admin API run in this process; two readers take the stream as the page does (plain HTTP,
the bearer token in a header). One reads as fast as snapshots come, and a page
thread beside it draws the newest every ``--slow-ms`` (as the page does: it reads the
stream as it comes and draws only the latest); the other reads its socket only every
``--slow-ms``. Each snapshot says when it was taken (``at_ns``), so its age when read or
drawn shows whether a reader falls behind: the page never does; the stalled client falls
behind by what the TCP buffers hold (the gateway's send buffer is kept small for this), a
fixed number of snapshots, and the gateway skips the rest for it. Then ``capture`` is timed
on the OMS thread itself, the only part the OMS thread pays, against an empty ``oms.call``
(the floor), and the rendering and JSON encoding beside it.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from oms.clock import now_ns  # noqa: E402
from oms.core import Oms  # noqa: E402
from sessions.dashboard import Capture, capture, pair_specs, render  # noqa: E402
from sessions.demo import GW_BACKUP, GW_PRIMARY, gateway_config  # noqa: E402
from sessions.gateway import Gateway  # noqa: E402
from sessions.gateway_config import AdminConfig  # noqa: E402
from sessions.measure import machine_info, machine_line, percentile  # noqa: E402
from sessions.simulator.demo import demo_config  # noqa: E402
from sessions.simulator.venue import Venue  # noqa: E402

TOKEN_ENV = "CMC_BENCH_DASHBOARD_TOKEN"


class Reader(threading.Thread):
    """One stream reader. ``pause_s`` 0: it reads every snapshot as it comes. Otherwise it
    reads the socket only every ``pause_s`` (a stalled client: what piles up for it is what
    the TCP buffers hold, a bounded number of snapshots, never a queue in the gateway)."""

    def __init__(self, url: str, token: str, pause_s: float, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.pause_s, self.stop = url, token, pause_s, stop
        self.ages_ns: list[int] = []  # in reading order
        self.seqs: list[int] = []
        self.sizes: list[int] = []
        self.latest: tuple[int, int] | None = None  # (seq, at_ns) of the newest read

    def run(self) -> None:
        host_port = self.url.split("//", 1)[1]
        conn = http.client.HTTPConnection(host_port, timeout=10)
        conn.request(
            "GET", "/v1/dashboard/stream", headers={"Authorization": f"Bearer {self.token}"}
        )
        response = conn.getresponse()
        assert response.status == 200, response.status
        while not self.stop.is_set():
            line = response.readline()
            if not line:
                break
            if not line.startswith(b"data: "):
                continue
            snap = json.loads(line[6:])
            self.latest = (snap["seq"], snap["at_ns"])
            self.ages_ns.append(now_ns() - snap["at_ns"])
            self.seqs.append(snap["seq"])
            self.sizes.append(len(line))
            if self.pause_s:
                time.sleep(self.pause_s)
        conn.close()


class Page(threading.Thread):
    """The page's way: the stream read as it comes (by ``reader``), drawn only every
    ``pause_s``, the newest snapshot each time (a page too busy to draw them all)."""

    def __init__(self, reader: Reader, pause_s: float, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.reader, self.pause_s, self.stop = reader, pause_s, stop
        self.ages_ns: list[int] = []

    def run(self) -> None:
        while not self.stop.wait(self.pause_s):
            latest = self.reader.latest
            if latest is not None:
                self.ages_ns.append(now_ns() - latest[1])


def _timed_capture(oms: Oms, recent: Any) -> tuple[int, Capture]:
    started = time.perf_counter_ns()
    cap = capture(oms, recent)
    return time.perf_counter_ns() - started, cap


def _timed_nothing(oms: Oms) -> int:
    started = time.perf_counter_ns()
    return time.perf_counter_ns() - started


def run(seconds: float, slow_ms: float) -> dict[str, Any]:
    token = os.urandom(16).hex()
    os.environ[TOKEN_ENV] = token
    sim = demo_config(opening_auction=False, clients=[GW_PRIMARY, GW_BACKUP])
    venues = [Venue(v) for v in sim.venues]
    gateway: Gateway | None = None
    with tempfile.TemporaryDirectory(prefix="cmc-bench-dashboard-") as work:
        try:
            for venue in venues:
                venue.start()
            config = gateway_config(venues, Path(work))
            config = config.model_copy(update={"admin": AdminConfig(token_env=TOKEN_ENV)})
            gateway = Gateway(config)
            gateway.start()
            if not gateway.wait_ready(20):
                raise SystemExit("the gateway did not log on to both venues in 20 s")
            assert gateway.admin is not None and gateway.admin.url is not None
            stop = threading.Event()
            fast = Reader(gateway.admin.url, token, 0.0, stop)
            page = Page(fast, slow_ms / 1000, stop)
            stalled = Reader(gateway.admin.url, token, slow_ms / 1000, stop)
            for thread in (fast, page, stalled):
                thread.start()
            time.sleep(seconds)
            stop.set()
            for thread in (fast, page, stalled):
                thread.join(5)

            recent = gateway.recent_receipts
            oms = gateway.oms
            specs = oms.call(pair_specs)
            floor, cost, render_ns = [], [], []
            for _ in range(300):
                floor.append(oms.call(_timed_nothing))
                took, cap = oms.call(lambda o: _timed_capture(o, recent))
                cost.append(took)
                lines = gateway.sessions.status()
                started = time.perf_counter_ns()
                json.dumps(render(cap, lines, specs, 1))
                render_ns.append(time.perf_counter_ns() - started)
                time.sleep(0.002)
        finally:
            if gateway is not None:
                gateway.stop()
            for venue in venues:
                venue.retire()
    ages, page_ages = sorted(fast.ages_ns), sorted(page.ages_ns)
    for values in (fast.sizes, cost, floor, render_ns):
        values.sort()
    seqs, stalled_last = stalled.seqs, (stalled.ages_ns or [0])[-1]
    return {
        "seconds": seconds,
        "snapshots_per_s": len(fast.seqs) / seconds,
        "age_p50_ms": percentile(ages, 50) / 1e6,
        "age_max_ms": (ages or [0])[-1] / 1e6,
        "slow_ms": slow_ms,
        "page_age_p50_ms": percentile(page_ages, 50) / 1e6,
        "page_age_max_ms": (page_ages or [0])[-1] / 1e6,
        "stalled_reads": len(seqs),
        "stalled_skipped": (seqs[-1] - seqs[0] + 1 - len(seqs)) if seqs else 0,
        "stalled_age_last_ms": stalled_last / 1e6,
        "stalled_in_flight": round(stalled_last / 1e6 / slow_ms),
        "snapshot_bytes_p50": percentile(fast.sizes, 50),
        "capture_on_oms_p50_us": percentile(cost, 50) / 1e3,
        "capture_on_oms_p99_us": percentile(cost, 99) / 1e3,
        "empty_call_on_oms_p50_us": percentile(floor, 50) / 1e3,
        "render_json_p50_us": percentile(render_ns, 50) / 1e3,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the readers read")
    parser.add_argument("--slow-ms", type=float, default=250.0, help="the slow readers' pause")
    parser.add_argument("--json", action="store_true", help="end the output with one JSON line")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    r = run(args.seconds, args.slow_ms)
    slow = f"{args.slow_ms:g} ms"
    table = Table(title="dashboard stream", title_justify="left")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("snapshots a second, read as they come", f"{r['snapshots_per_s']:.1f}")
    table.add_row(
        "their age when read: p50 / max", f"{r['age_p50_ms']:.1f} / {r['age_max_ms']:.1f} ms"
    )
    table.add_row(
        f"a page drawing every {slow}: age of what it draws, p50 / max",
        f"{r['page_age_p50_ms']:.1f} / {r['page_age_max_ms']:.1f} ms",
    )
    table.add_row(
        f"a client reading the socket every {slow}: reads / snapshots skipped",
        f"{r['stalled_reads']} / {r['stalled_skipped']}",
    )
    table.add_row(
        "  the age of its last read (snapshots held in the TCP buffers)",
        f"{r['stalled_age_last_ms']:.0f} ms ({r['stalled_in_flight']})",
    )
    table.add_row("snapshot size, p50", f"{r['snapshot_bytes_p50']:,.0f} bytes")
    table.add_row(
        "capture on the OMS thread: p50 / p99",
        f"{r['capture_on_oms_p50_us']:.0f} / {r['capture_on_oms_p99_us']:.0f} µs",
    )
    table.add_row(
        "empty oms.call on the OMS thread, p50", f"{r['empty_call_on_oms_p50_us']:.1f} µs"
    )
    table.add_row("render + JSON on a worker thread, p50", f"{r['render_json_p50_us']:.0f} µs")
    table.add_row("machine", machine_line())
    Console().print(table)
    if args.json:
        print(json.dumps({**r, "machine": machine_info()}))
    return 0


if __name__ == "__main__":
    from sessions.fixengine import exit_process

    exit_process(main())
