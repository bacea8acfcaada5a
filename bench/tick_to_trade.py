"""Tick-to-trade through the real gateway: market data out of a venue to both leg orders in.

What is timed, on the one system-wide clock (``time.monotonic_ns`` is CLOCK_MONOTONIC, the
same in every process on Linux):

* **t0**: the OUTER venue's probe stamp just before the market-data message (35=X) that makes
  the spread cross the entry threshold leaves the simulator for the gateway's active line
  (stamped before quickfix builds and writes it, so the venue's own send is inside the
  figure);
* **t1, t2**: each venue's probe stamp when a leg's NewOrderSingle reaches the venue's
  ``fromApp`` (after quickfix has parsed and validated it and the callback has read it);
* tick-to-trade = ``max(t1, t2) - t0``: venue -> gateway -> both venues, one way each.

Processes, all started with the ``spawn`` context (never ``fork`` beside quickfix threads),
so that no GIL is shared between parts that would not share one in production:

* **INNER** and **OUTER**, one venue process each: a ``Venue`` with no liquidity provider
  and a probe that keeps every stamp. (Both venues in one process made the second leg's
  ``fromApp`` wait for the GIL behind the first venue's matching: about 100 µs at the median
  that belonged to the simulator, not to the gateway.) INNER lists gold AU (CNY per gram,
  tick 0.02, no price band) and rests a deep house ask 560.00 and a bid 559.90; OUTER lists
  GC (USD per troy oz, tick 0.1) and rests a bid 2400.0 and an ask 2410.0. 560.00 CNY/g is
  2402.475 USD/oz at 7.25, so nothing crosses. Each trigger is a house bid of 9 lots at
  2407.0 on OUTER, 4.525 over the converted inner ask, past the entry of 2.0. The gateway
  buys 28 AU and sells 9 GC, IOC, and the GC fill takes the trigger bid out again, so every
  trigger starts from the same books. (The ask sits at 2410.0, not 2405.0: a 2407.0 bid
  would trade against an ask below it.)
* the **gateway**: the real ``Gateway`` (OMS thread, one quickfix initiator with a primary
  and a backup line to each venue, the receipt writer as a process of its own, receipts
  into SQLite in a temp dir), configured like ``tests/test_gateway.py`` with a GOLD pair
  that never closes (exit_spread -1000) and never reaches its cap (max_position 10^6).
* this process, the **orchestrator**, which drives: it asks OUTER for a trigger, then
  leaves every process alone for a quiet window (``--quiet-ms``), then collects the probes'
  stamps, waits until both legs are done on the venues and the gateway's pair is idle again,
  and pauses for a fixed settle plus a seeded jitter (so that the triggers do not beat in
  phase with the receipt sender's 5 ms wake-ups). A trigger without both legs within 1 s
  is missed; triggers slower than the quiet window are counted, since the collection
  polls may have run beside them.

The venues hold each fill report 1 ms (``--fill-delay-ms``) so that it reaches the gateway
after the book update that the fill caused. With fill reports first, the gateway finishes
the pair, sees the other venue's next book update while its own book view still holds the
bid it has just sold into, trades again on it, and is left with one leg filled and the pair
blocked for good (run with ``--fill-delay-ms 0`` to see it: the run stops with "idle with an
imbalance"). Real venues publish market data and execution reports on different channels
with no order between them, so this is a gateway bug, not a simulator quirk; the delay only
keeps the bench measuring latency rather than that bug.

The floor, measured first in the same run with nothing else running: a bare quickfix
initiator process sends a NewOrderSingle, a bare acceptor process answers each from
``fromApp`` with one ExecutionReport (messages composed as text, built with one
``fix.Message(text, dd, False)`` call, as the project does), the project's session settings
with a MemoryStore; the round trip is timed on the initiator and paced like the triggers.
The floor is a round trip through two processes; tick-to-trade is two one-way hops through
three (venue -> gateway -> venue) with the gateway's work between them.

Where the time goes: the receipts carry the gateway's own wall-clock stamps (receive time of
the market data, when the OMS applied it, decided, sent each order). After the run they are
put on the monotonic clock (CLOCK_REALTIME - CLOCK_MONOTONIC is one system-wide offset,
measured before and after) and joined with the probes' stamps trigger by trigger. With
``--trace`` every stage is also stamped by wrappers in the gateway and venue processes.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import multiprocessing
import os
import random
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from decimal import Decimal
from multiprocessing.connection import Connection
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

from sessions.demo import bench_risk  # noqa: E402
from sessions.measure import machine_info, percentile, process_cpu_s  # noqa: E402

# -- the market ---------------------------------------------------------------------------------

INNER_INSTRUMENT: dict[str, Any] = {  # GOLD_INNER of tests/conftest.py without band or size cap
    "symbol": "AU",
    "currency": "CNY",
    "tick": "0.02",
    "lot": 1,
    "contract_size": "1000",
    "contract_unit": "g",
    "prev_close": "560.00",
}
OUTER_INSTRUMENT: dict[str, Any] = {  # GOLD_OUTER of tests/test_gateway.py
    "symbol": "GC",
    "currency": "USD",
    "tick": "0.1",
    "contract_size": "100",
    "contract_unit": "troy_oz",
    "prev_close": "2402.5",
}
FX_RATE = "7.25"
ENTRY_SPREAD = "2.0"
EXIT_SPREAD = "-1000"  # never closes: every trigger is an entry
MAX_POSITION = 10**6
INNER_ASK, INNER_BID = Decimal("560.00"), Decimal("559.90")
OUTER_BID, OUTER_ASK = Decimal("2400.0"), Decimal("2410.0")  # the ask above the trigger bid
TRIGGER_PX = Decimal("2407.0")  # captures 2407.0 - 2402.475 = 4.525 > 2.0
INNER_LOTS, OUTER_LOTS = 28, 9  # one pair unit: 28 x 1,000 g against 9 x 100 troy oz
BASE_LOTS = 1_000  # the other resting house orders
GATEWAY_LINES = ("GW-PRI", "GW-BAK")

MISS_AFTER_S = 1.0  # a trigger without both legs by then is missed
FILL_DELAY_MS = 1  # venue fill reports trail the book update (see the module docstring)
GOAL_P50_US = 300.0
GOAL_P99_US = 1000.0


def _child_logging() -> None:
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(processName)s %(name)s: %(message)s"
    )


def _pin(cpus: list[int] | None, pid: int = 0) -> None:
    """Keep a process on these CPUs (``--pin``); nothing when not pinning."""
    if cpus:
        os.sched_setaffinity(pid, cpus)


def _send(conn: Connection, *msg: object) -> None:
    with contextlib.suppress(OSError):
        conn.send(msg)


# -- --trace: stamps at every stage --------------------------------------------------------------
#
# Off by default: the wrappers cost about a microsecond per stamped call, and the headline
# figure is taken without them. With ``--trace`` the gateway and venue processes wrap the
# functions on the path (class attributes and module globals, replaced before anything is
# built), each call leaving ``monotonic ns << 6 | tag`` in a flat array (one C-level append,
# so threads cannot interleave a stamp); the orchestrator cuts each trigger's window
# [t0, last leg in] out of them afterwards.

TRACE_TAGS = (
    "gw.fromApp>", "gw.fromApp<", "gw.received>", "gw.received<", "gw.decode>", "gw.decode<",
    "oms.handle>", "oms.handle<", "oms.apply>", "oms.apply<", "oms.evaluate>", "oms.evaluate<",
    "oms.submit>", "oms.submit<", "oms.receipt>", "oms.receipt<", "oms.append>", "oms.append<",
    "gw.encode>", "gw.encode<", "gw.msg>", "gw.send>", "gw.send<", "writer.ship>",
    "writer.ship<", "gw.gc>", "gw.gc<", "v.msg>", "v.send>", "v.send<", "in.fromApp>",
    "out.fromApp>", "v.gc>", "v.gc<", "writer.commit>", "writer.commit<", "writer.gc>",
    "writer.gc<",
)  # fmt: skip
_TAG_CODE = {tag: i for i, tag in enumerate(TRACE_TAGS)}
_TAG_BITS = 6


class _Stamps:
    def __init__(self) -> None:
        import array

        self.stamps = array.array("q")

    def add(self, tag: str) -> Callable[[], None]:
        code = _TAG_CODE[tag]
        append, clock = self.stamps.append, time.monotonic_ns

        def stamp() -> None:
            append(clock() << _TAG_BITS | code)

        return stamp

    def around(self, owner: Any, name: str, tag: str) -> None:
        """Replace ``owner.name`` with a wrapper that stamps ``tag>`` and ``tag<``."""
        original = getattr(owner, name)
        enter, leave = self.add(tag + ">"), self.add(tag + "<")

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            enter()
            try:
                return original(*args, **kwargs)
            finally:
                leave()

        setattr(owner, name, wrapper)

    def gc_hook(self, prefix: str) -> None:
        import gc

        start, stop = self.add(prefix + ".gc>"), self.add(prefix + ".gc<")
        gc.callbacks.append(lambda phase, _info: start() if phase == "start" else stop())

    def traced_send_text(self, prefix: str) -> Callable[[str, Any, Any], bool]:
        """``fixengine.send_text`` with stamps around its two quickfix calls."""
        import quickfix as fix

        msg, send, sent = (self.add(f"{prefix}.{t}") for t in ("msg>", "send>", "send<"))

        def send_text(text: str, session_id: Any, data_dictionary: Any) -> bool:
            msg()
            message = fix.Message(text, data_dictionary, False)
            send()
            try:
                return bool(fix.Session.sendToTarget(message, session_id))
            except fix.SessionNotFound:
                return False
            finally:
                sent()

        return send_text

    def dump(self) -> bytes:
        return self.stamps.tobytes()


def _trace_gateway(stamps: _Stamps, spec_work: str) -> None:
    import oms.core
    import sessions.venue_link as link
    from oms.market import MarketView
    from oms.orders import Orders
    from oms.receipt_writer import ReceiptWriter
    from oms.receipts import Receipt
    from oms.strategy import SpreadStrategy

    stamps.around(link.GatewayApplication, "fromApp", "gw.fromApp")
    stamps.around(link.GatewaySessions, "_received", "gw.received")
    stamps.around(link, "decode", "gw.decode")
    stamps.around(link, "encode_command", "gw.encode")
    setattr(link, "send_text", stamps.traced_send_text("gw"))  # noqa: B010
    stamps.around(oms.core.Oms, "handle", "oms.handle")
    stamps.around(MarketView, "apply", "oms.apply")
    stamps.around(SpreadStrategy, "evaluate", "oms.evaluate")
    stamps.around(Orders, "submit", "oms.submit")
    stamps.around(Receipt, "of", "oms.receipt")
    stamps.around(ReceiptWriter, "append", "oms.append")
    stamps.around(ReceiptWriter, "_ship", "writer.ship")
    stamps.gc_hook("gw")
    import oms.receipt_writer

    os.environ[WRITER_STAMPS_ENV] = str(Path(spec_work) / "writer.stamps")
    setattr(oms.receipt_writer, "_child_main", _traced_writer_main)  # noqa: B010


WRITER_STAMPS_ENV = "CMC_TICK_TO_TRADE_WRITER_STAMPS"


def _traced_writer_main(*args: Any) -> None:
    """The receipt writer process's main under ``--trace``: the real one, with its commits
    and collections stamped, the stamps left in a file when it ends."""
    from oms import receipt_writer
    from oms.receipts import ReceiptStore

    stamps = _Stamps()
    stamps.around(ReceiptStore, "append_fields", "writer.commit")
    stamps.gc_hook("writer")
    try:
        receipt_writer._child_main(*args)  # this process imported the module afresh
    finally:
        with contextlib.suppress(OSError, KeyError):
            Path(os.environ[WRITER_STAMPS_ENV]).write_bytes(stamps.dump())


def _trace_venue(stamps: _Stamps, venue: Any, tag: str) -> None:
    import sessions.simulator.venue as venue_module

    setattr(venue_module, "send_text", stamps.traced_send_text("v"))  # noqa: B010
    app = venue.application
    original, enter = app.fromApp, stamps.add(tag + ">")

    def from_app(message: Any, session_id: Any) -> None:
        enter()
        original(message, session_id)

    app.fromApp = from_app  # quickfix's director looks the callback up at every call
    stamps.gc_hook("v")


# -- a venue process ------------------------------------------------------------------------------


class _Probe:
    """A venue's ``VenueProbe``: keeps every stamp; the orchestrator matches them to triggers.

    Lists only grow, and a list append is atomic under the GIL, so the venue thread, the
    quickfix thread and the control loop need no lock.
    """

    def __init__(self, marker: str) -> None:
        self.md_session = ""  # "OUTER->GW-PRI": the gateway's active line, set once known
        self.marker = marker  # the X entry that adds the trigger bid
        self.t0s: list[int] = []
        self.arrivals: list[tuple[str, str, int]] = []  # (session, ClOrdID, ns)

    def market_data_sent(self, session: str, text: str, mono_ns: int) -> None:
        if session == self.md_session and self.marker in text:
            self.t0s.append(mono_ns)

    def order_arrived(self, session: str, clordid: str, mono_ns: int) -> None:
        self.arrivals.append((session, clordid, mono_ns))


def _leg_state(v: Any, session: str, clordid: str) -> tuple[str, int, int] | None:
    """(state, cum, qty) of a client order, read on the venue thread."""
    rec = v._by_clordid.get((session, clordid))  # a bench reading its own venue
    if rec is None:
        return None
    order = rec.order
    return order.state.value, order.cum, order.qty


def _venue_main(conn: Connection, spec: dict[str, Any], venue_id: str) -> None:
    """One venue, answering the orchestrator's requests one at a time until "stop"."""
    _child_logging()
    _pin(spec["pin"]["others"])
    try:
        from oms.enums import Side, TimeInForce
        from sessions.fixwire import decimal_text
        from sessions.simulator.config import VenueConfig
        from sessions.simulator.venue import Venue

        inner = venue_id == "INNER"
        instrument = INNER_INSTRUMENT if inner else OUTER_INSTRUMENT
        symbol = instrument["symbol"]
        probe = _Probe(
            f"\x01279=0\x01269=0\x0155={OUTER_INSTRUMENT['symbol']}\x01"
            f"270={decimal_text(TRIGGER_PX)}\x01"
        )
        config = VenueConfig.model_validate(
            {
                "id": venue_id,
                "comp_id": venue_id,
                "port": spec["ports"][venue_id],
                "clients": list(GATEWAY_LINES),
                "instruments": [instrument],
                "faults": {"fill_delay_ms": spec["fill_delay_ms"]},
            }
        )
        venue = Venue(config, probe=probe)
        stamps = _Stamps() if spec["trace"] else None
        if stamps is not None:
            _trace_venue(stamps, venue, "in.fromApp" if inner else "out.fromApp")
        venue.start()
        if inner:
            venue.house_order(symbol, Side.SELL, spec["inner_ask_lots"], INNER_ASK)
            venue.house_order(symbol, Side.BUY, BASE_LOTS, INNER_BID)
        else:
            venue.house_order(symbol, Side.BUY, BASE_LOTS, OUTER_BID)
            venue.house_order(symbol, Side.SELL, BASE_LOTS, OUTER_ASK)
        _send(conn, "ready", os.getpid())
    except BaseException:
        _send(conn, "error", traceback.format_exc())
        sys.stderr.flush()
        os._exit(1)

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            msg = ("stop",)
        kind = msg[0]
        try:
            reply: object = None
            if kind == "trigger":
                reply = venue.house_order(symbol, Side.BUY, OUTER_LOTS, TRIGGER_PX, TimeInForce.DAY)
            elif kind == "since":
                reply = (probe.t0s[msg[1] :], probe.arrivals[msg[2] :])
            elif kind == "leg":
                reply = venue.call(functools.partial(_leg_state, session=msg[1], clordid=msg[2]))
            elif kind == "cancel":
                reply = venue.cancel_house_order(msg[1])
            elif kind == "md_session":
                probe.md_session = msg[1]
            elif kind == "stamps":
                reply = stamps.dump() if stamps is not None else b""
            elif kind == "stop":
                still = venue.retire()
                cpu_s = round(sum(os.times()[:2]), 2)
                stats = {"still_logged_on": still, "stats": dict(venue.stats), "cpu_s": cpu_s}
                _send(conn, "ok", stats)
                sys.stdout.flush()
                sys.stderr.flush()
                # Not Venue.stop(): quickfix 1.16's acceptor stop can crash (FixEngine.retire).
                os._exit(0)
            _send(conn, "ok", reply)
        except BaseException:
            _send(conn, "error", traceback.format_exc())


# -- the gateway process --------------------------------------------------------------------------


def _gateway_config(spec: dict[str, Any]) -> Any:
    from sessions.gateway_config import GatewayConfig

    def venue(venue_id: str, instrument: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": venue_id,
            "lines": [
                {
                    "role": role,
                    "port": spec["ports"][venue_id],
                    "sender_comp_id": sender,
                    "target_comp_id": venue_id,
                }
                for role, sender in zip(("primary", "backup"), GATEWAY_LINES, strict=True)
            ],
            "instruments": [instrument],
        }

    return GatewayConfig.model_validate(
        {
            "store_dir": str(Path(spec["work"]) / "store"),
            "receipts_url": spec["receipts_url"],
            "reconnect_s": 1,
            "venues": [venue("INNER", INNER_INSTRUMENT), venue("OUTER", OUTER_INSTRUMENT)],
            "pairs": [
                {
                    "id": "GOLD",
                    "inner": {"venue": "INNER", "symbol": INNER_INSTRUMENT["symbol"]},
                    "outer": {"venue": "OUTER", "symbol": OUTER_INSTRUMENT["symbol"]},
                    "fx_rate": FX_RATE,
                    "entry_spread": ENTRY_SPREAD,
                    "exit_spread": EXIT_SPREAD,
                    "max_position": MAX_POSITION,
                }
            ],
            "risk": bench_risk(),
        }
    )


def _line_report(gateway: Any) -> dict[str, Any]:
    return {
        "active": {v: (r.value if r else None) for v, r in gateway.sessions.active_lines().items()},
        "logged_on": {
            f"{link.venue.id}/{line.role.value}": line.logged_on
            for link in gateway.sessions.links.values()
            for line in link.lines.values()
        },
    }


def _gateway_main(conn: Connection, spec: dict[str, Any]) -> None:
    """The real gateway, answering "idle" between triggers, until "stop"."""
    _child_logging()
    _pin(spec["pin"]["gateway"])
    gateway: Any = None
    try:
        from sessions.gateway import Gateway

        stamps = _Stamps() if spec["trace"] else None
        if stamps is not None:
            _trace_gateway(stamps, spec["work"])
        gateway = Gateway(_gateway_config(spec))
        gateway.start()
        _pin(spec["pin"]["others"], gateway.receipts.pid)  # the writer started on ours
        ready = gateway.wait_ready(30.0)
        # Both lines of both venues up, so that a late backup logon does not land mid-run.
        lines = [line for link in gateway.sessions.links.values() for line in link.lines.values()]
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and not all(line.logged_on for line in lines):
            time.sleep(0.05)
        _send(conn, "ready", {"ready": ready, **_line_report(gateway)})
    except BaseException:
        _send(conn, "error", traceback.format_exc())
        if gateway is not None:
            with contextlib.suppress(Exception):
                gateway.stop()
        return

    def idle(oms: Any) -> tuple[bool, str]:
        pair = oms.pairs["GOLD"]
        return pair.working is not None, str(pair.imbalance)

    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            msg = ("stop",)
        try:
            if msg[0] == "idle":
                _send(conn, "ok", gateway.oms.call(idle))
            elif msg[0] == "stop":
                stopped = _stop_gateway(gateway)
                if stamps is not None:
                    stopped["stamps"] = stamps.dump()
                _send(conn, "ok", stopped)
                return
        except BaseException:
            _send(conn, "error", traceback.format_exc())
            if msg[0] == "stop":
                return


def _stop_gateway(gateway: Any) -> dict[str, Any]:
    def pair_state(oms: Any) -> dict[str, Any]:
        pair = oms.pairs["GOLD"]
        return {
            "trades_done": len(pair.done),
            "position": pair.position,
            "imbalance": str(pair.imbalance),
            "oms_errors": oms.errors,
        }

    out: dict[str, Any] = {**_line_report(gateway), **gateway.oms.call(pair_state)}
    out["callback_errors"] = gateway.sessions.application.callback_errors
    out["gateway_cpu_s"] = round(sum(os.times()[:2]), 2)
    writer_cpu_s = process_cpu_s(gateway.receipts.pid)
    out["writer_cpu_s"] = None if writer_cpu_s is None else round(writer_cpu_s, 2)
    gateway.stop()  # sessions (log out), the OMS thread, then the receipt writer (flushes)
    try:
        out["receipts_written"] = gateway.receipts.close()  # close() again: the same answer
    except Exception as exc:  # ReceiptLossError, with its counts
        out["receipts_written"] = gateway.receipts.stats().written
        out["receipt_error"] = repr(exc)
    stats = gateway.receipts.stats()
    out["receipts_appended"] = stats.appended
    out["writer_pid"] = stats.child_pid
    out["writer_exitcode"] = stats.child_exitcode
    out["writer_max_burst_us"] = round(stats.max_burst_ns / 1e3, 1)
    return out


# -- the floor: bare quickfix, two processes -------------------------------------------------------

FLOOR_INITIATOR, FLOOR_ACCEPTOR = "FLOOR-I", "FLOOR-A"


def _floor_settings(port: int, acceptor: bool) -> Any:
    from sessions.fixengine import build_settings, common_defaults

    default = common_defaults(None)  # the project's session settings, without a FileStore
    if acceptor:
        default |= {
            "ConnectionType": "acceptor",
            "SocketAcceptPort": port,
            "SocketReuseAddress": True,
        }
        session: dict[str, str | int] = {
            "SenderCompID": FLOOR_ACCEPTOR,
            "TargetCompID": FLOOR_INITIATOR,
        }
    else:
        default |= {"ConnectionType": "initiator", "ReconnectInterval": 1}
        session = {
            "SenderCompID": FLOOR_INITIATOR,
            "TargetCompID": FLOOR_ACCEPTOR,
            "SocketConnectHost": "127.0.0.1",
            "SocketConnectPort": port,
        }
    return build_settings(default, [session])


def _floor_acceptor_main(conn: Connection, port: int, pin: list[int] | None) -> None:
    _child_logging()
    _pin(pin)
    try:
        import quickfix as fix

        from sessions.fixengine import data_dictionary
        from sessions.fixwire import encode, utc_timestamp

        dd = data_dictionary()
        sid = fix.SessionID("FIX.4.4", FLOOR_ACCEPTOR, FLOOR_INITIATOR)

        class Answer(fix.Application):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__()
                self.n = 0
                self.errors = 0

            def onCreate(self, session_id: Any) -> None: ...
            def onLogon(self, session_id: Any) -> None: ...
            def onLogout(self, session_id: Any) -> None: ...
            def toAdmin(self, message: Any, session_id: Any) -> None: ...
            def fromAdmin(self, message: Any, session_id: Any) -> None: ...
            def toApp(self, message: Any, session_id: Any) -> None: ...

            def fromApp(self, message: Any, session_id: Any) -> None:
                try:
                    self.n += 1
                    text = encode(
                        "8",
                        [
                            (37, f"O{self.n}"),
                            (11, message.getField(11)),
                            (17, f"E{self.n}"),
                            (150, "F"),
                            (39, "2"),
                            (55, "GC"),
                            (54, "2"),
                            (38, 9),
                            (32, 9),
                            (31, "2407"),
                            (151, 0),
                            (14, 9),
                            (6, "2407"),
                            (60, utc_timestamp(time.time_ns())),
                        ],
                    )
                    fix.Session.sendToTarget(fix.Message(text, dd, False), sid)
                except Exception:  # an escaping exception would hang the process
                    self.errors += 1

        app = Answer()
        acceptor = fix.SocketAcceptor(app, fix.MemoryStoreFactory(), _floor_settings(port, True))
        acceptor.start()
        _send(conn, "ready")
        with contextlib.suppress(EOFError, OSError):
            conn.recv()  # "exit", once the initiator has logged out
        _send(conn, "ok", {"answered": app.n, "errors": app.errors})
    except BaseException:
        _send(conn, "error", traceback.format_exc())
    sys.stderr.flush()
    os._exit(0)  # not acceptor.stop(): quickfix 1.16 can crash there (upstream PR #740)


def _floor_initiator_main(conn: Connection, port: int, params: dict[str, Any]) -> None:
    _child_logging()
    _pin(params["pin"])
    try:
        import threading

        import quickfix as fix

        from sessions.fixengine import data_dictionary
        from sessions.fixwire import encode, utc_timestamp

        dd = data_dictionary()
        sid = fix.SessionID("FIX.4.4", FLOOR_INITIATOR, FLOOR_ACCEPTOR)

        class Ask(fix.Application):  # type: ignore[misc]
            def __init__(self) -> None:
                super().__init__()
                self.logged_on = threading.Event()
                self.answered = threading.Event()
                self.recv_ns = 0
                self.clordid = ""

            def onCreate(self, session_id: Any) -> None: ...

            def onLogon(self, session_id: Any) -> None:
                self.logged_on.set()

            def onLogout(self, session_id: Any) -> None:
                self.logged_on.clear()

            def toAdmin(self, message: Any, session_id: Any) -> None: ...
            def fromAdmin(self, message: Any, session_id: Any) -> None: ...
            def toApp(self, message: Any, session_id: Any) -> None: ...

            def fromApp(self, message: Any, session_id: Any) -> None:
                try:
                    t = time.monotonic_ns()
                    self.clordid = message.getField(11)
                    self.recv_ns = t
                    self.answered.set()
                except Exception:
                    pass

        app = Ask()
        initiator = fix.SocketInitiator(app, fix.MemoryStoreFactory(), _floor_settings(port, False))
        initiator.start()
        if not app.logged_on.wait(15):
            raise RuntimeError("the floor initiator did not log on")
        rng = random.Random(params["seed"])
        warmup, rounds = params["warmup"], params["rounds"]
        gap_s, jitter_s = params["gap_ms"] / 1e3, params["jitter_ms"] / 1e3
        samples: list[int] = []
        lost = 0
        for i in range(warmup + rounds):
            if time.monotonic_ns() > params["deadline_mono_ns"]:
                break
            clordid = f"F{i}"
            text = encode(
                "D",
                [
                    (11, clordid),
                    (55, "GC"),
                    (54, "2"),
                    (60, utc_timestamp(time.time_ns())),
                    (38, 9),
                    (40, "2"),
                    (44, "2407"),
                    (59, "3"),
                ],
            )
            app.answered.clear()
            t = time.monotonic_ns()
            fix.Session.sendToTarget(fix.Message(text, dd, False), sid)
            if not app.answered.wait(MISS_AFTER_S) or app.clordid != clordid:
                lost += 1
            elif i >= warmup:
                samples.append(app.recv_ns - t)
            time.sleep(gap_s + rng.random() * jitter_s)
        session = fix.Session.lookupSession(sid)
        session.logout("floor done")
        deadline = time.monotonic() + 3
        while session.isLoggedOn() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.25)
        initiator.stop()
        _send(conn, "ok", {"samples": samples, "lost": lost})
    except BaseException:
        _send(conn, "error", traceback.format_exc())
    sys.stderr.flush()
    os._exit(0)


# -- the orchestrator ------------------------------------------------------------------------------


class BenchError(RuntimeError):
    pass


class _Child:
    """A process this bench started, and the pipe it answers on."""

    def __init__(self, ctx: Any, name: str, target: Callable[..., None], *args: Any) -> None:
        self.name = name
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(theirs, *args), name=name)
        self.proc.start()
        theirs.close()  # so that our end sees EOF if the child dies

    def expect(self, timeout_s: float) -> tuple[Any, ...]:
        """The next message; raises if it is an error, or the child dies or stays silent."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self.conn.poll(min(0.1, max(0.0, deadline - time.monotonic()))):
                try:
                    msg = self.conn.recv()
                except (EOFError, OSError):
                    raise BenchError(f"{self.name}: the process closed its pipe") from None
                if msg[0] == "error":
                    raise BenchError(f"{self.name} failed:\n{msg[1]}")
                return msg  # type: ignore[no-any-return]
            if not self.proc.is_alive():
                raise BenchError(f"{self.name}: the process ended (exit code {self.proc.exitcode})")
            if time.monotonic() >= deadline:
                raise BenchError(f"{self.name}: no answer within {timeout_s} s")

    def ask(self, *msg: object, timeout_s: float = 10.0) -> Any:
        self.conn.send(msg)
        return self.expect(timeout_s)[1]

    def reap(self, timeout_s: float) -> int | None:
        """Join; terminate, then kill, if it will not end. Never leaves it running."""
        proc = self.proc
        proc.join(timeout_s)
        if proc.is_alive():
            proc.terminate()
            proc.join(3)
        if proc.is_alive():
            proc.kill()
            proc.join(3)
        return proc.exitcode  # type: ignore[no-any-return]


def cpu_layout(pin: bool) -> dict[str, list[int] | None]:
    """``--pin``: the gateway (and the floor's initiator) alone on the first CPU it may use,
    everything else (venues, receipt writer, this process, the floor's acceptor) on the rest."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return {"gateway": None, "others": None}
    return {"gateway": cpus[:1], "others": cpus[1:]}


def wall_minus_mono_ns() -> int:
    """CLOCK_REALTIME - CLOCK_MONOTONIC, from the tightest of a few paired reads."""
    best: tuple[int, int] | None = None
    for _ in range(50):
        a = time.monotonic_ns()
        w = time.time_ns()
        b = time.monotonic_ns()
        if best is None or b - a < best[0]:
            best = (b - a, w - (a + b) // 2)
    assert best is not None
    return best[1]


def run_floor(
    ctx: Any, args: argparse.Namespace, deadline_ns: int, pins: dict[str, list[int] | None]
) -> dict[str, Any]:
    from sessions.ports import free_port

    port = free_port()
    acceptor = _Child(ctx, "floor acceptor", _floor_acceptor_main, port, pins["others"])
    initiator: _Child | None = None
    try:
        acceptor.expect(60)
        params = {
            "rounds": args.floor_rounds,
            "warmup": args.floor_warmup,
            "gap_ms": args.settle_ms,
            "jitter_ms": args.jitter_ms,
            "seed": args.seed,
            "deadline_mono_ns": deadline_ns,
            "pin": pins["gateway"],
        }
        initiator = _Child(ctx, "floor initiator", _floor_initiator_main, port, params)
        budget_s = (deadline_ns - time.monotonic_ns()) / 1e9 + 30
        result: dict[str, Any] = initiator.expect(budget_s)[1]
        result["acceptor"] = acceptor.ask("exit", timeout_s=10)
        return result
    finally:
        if initiator is not None:
            initiator.reap(10)
        _send(acceptor.conn, "exit")
        acceptor.reap(10)


class _Unbalanced(Exception):
    """The gateway's pair holds legs out of ratio: it takes no new entry from here on."""


Sample = tuple[int, int, int, str, str]  # t0, t_inner, t_outer, inner ClOrdID, outer ClOrdID


def drive(
    venues: dict[str, _Child],
    gateway: _Child,
    args: argparse.Namespace,
    deadline_ns: int,
    progress: Progress,
) -> dict[str, Any]:
    """Run the triggers; every stamp is on the monotonic clock of the machine."""
    rng = random.Random(args.seed)
    inner, outer = venues["INNER"], venues["OUTER"]
    task = progress.add_task("triggers", total=args.triggers)
    seen = {"t0": 0, "INNER": 0, "OUTER": 0}
    samples: list[Sample] = []
    missed = no_t0 = unfilled = stray = over_quiet = measured_run = warm_done = 0
    notes: list[str] = []
    aborted: str | None = None

    def gateway_idle(timeout_s: float) -> bool:
        """Poll the gateway until its pair has no trade working (False at the timeout)."""
        end = time.monotonic() + timeout_s
        while True:
            working, imbalance = gateway.ask("idle")
            if not working:
                if imbalance != "0":
                    raise _Unbalanced(
                        f"the gateway's pair is idle with an imbalance of {imbalance}"
                    )
                return True
            if time.monotonic() > end:
                return False
            time.sleep(0.0005)

    def leg_done(venue: _Child, session: str, clordid: str) -> tuple[str, int, int] | None:
        """The leg's (state, cum, qty) once no longer working. The probe stamps an order
        before the venue thread has it, so this polls."""
        end = time.monotonic() + 2.0
        while True:
            state = venue.ask("leg", session, clordid)
            if (state is not None and state[0] != "working") or time.monotonic() > end:
                return state  # type: ignore[no-any-return]
            time.sleep(0.0002)

    try:
        gateway_idle(5.0)
    except _Unbalanced as exc:
        aborted = str(exc)
    quiet_s = args.quiet_ms / 1e3
    for i in range(0 if aborted else args.warmup + args.triggers):
        if time.monotonic_ns() > deadline_ns:
            break
        measured = i >= args.warmup
        asked = time.monotonic_ns()
        order_id = outer.ask("trigger")
        time.sleep(quiet_s)  # nothing asks any process anything while the trigger is in flight
        t0: int | None = None
        legs: dict[str, tuple[str, str, int]] = {}
        give_up = asked + int(MISS_AFTER_S * 1e9)
        pause = 0.001
        while True:
            t0s, arrived_out = outer.ask("since", seen["t0"], seen["OUTER"])
            _, arrived_in = inner.ask("since", 0, seen["INNER"])
            seen["t0"] += len(t0s)
            seen["OUTER"] += len(arrived_out)
            seen["INNER"] += len(arrived_in)
            t0 = t0 if t0 is not None else next((t for t in t0s if t >= asked), None)
            for venue_id, arrived in (("INNER", arrived_in), ("OUTER", arrived_out)):
                for arrival in arrived:
                    if arrival[2] >= asked and venue_id not in legs:
                        legs[venue_id] = arrival
                    else:
                        stray += 1  # a late leg of an earlier trigger, or a second order
            if len(legs) == 2 or time.monotonic_ns() > give_up:
                break
            time.sleep(pause)
            pause = min(2 * pause, 0.02)
        states = {v: leg_done(venues[v], s, c) for v, (s, c, _) in legs.items()}
        want = {"INNER": INNER_LOTS, "OUTER": OUTER_LOTS}
        filled = len(legs) == 2 and all(
            s is not None and s[0] == "filled" and s[1] == want[v] for v, s in states.items()
        )
        if not filled:
            outer.ask("cancel", order_id)  # False if it traded after all
        try:
            idle = gateway_idle(5.0)
        except _Unbalanced as exc:
            aborted = f"after trigger {i}: {exc}"
            idle = True
        if measured:
            measured_run += 1
            if len(legs) < 2:
                missed += 1
                if len(notes) < 10:
                    notes.append(f"trigger {i}: legs {sorted(legs)}, t0 {t0 is not None}")
            elif t0 is None:
                no_t0 += 1
            elif not filled:
                unfilled += 1
            else:
                (_, c_in, t_in), (_, c_out, t_out) = legs["INNER"], legs["OUTER"]
                samples.append((t0, t_in, t_out, c_in, c_out))
                if max(t_in, t_out) - asked > quiet_s * 1e9:
                    over_quiet += 1
        else:
            warm_done += 1
        if aborted:
            break
        if not idle and len(notes) < 10:
            notes.append(f"trigger {i}: the gateway's pair still working after 5 s")
        if measured and measured_run % 50 == 0:
            progress.update(task, completed=measured_run)
        time.sleep(args.settle_ms / 1e3 + rng.random() * args.jitter_ms / 1e3)
    progress.update(task, completed=measured_run)
    return {
        "warmup_done": warm_done,
        "triggers_run": measured_run,
        "samples": samples,
        "missed": missed,
        "notes": notes,
        "no_t0": no_t0,
        "unfilled": unfilled,
        "stray_orders": stray,
        "over_quiet": over_quiet,
        "aborted": aborted,
    }


# -- where the time goes ---------------------------------------------------------------------------

RECEIPT_HOPS: dict[str, str] = {
    "wire_in": "venue X send -> gateway receive (venue fix.Message + send, loopback, gateway "
    "wake, quickfix parse/validate)",
    "decode_hop_apply": "gateway decode -> OMS queue hop -> book apply",
    "strategy": "market-data receipt + strategy evaluate",
    "leg1_send": "intent receipt + 2 orders created + leg 1 encode/send",
    "leg2_send": "leg 1 receipt + leg 2 encode/send",
    "leg1_wire_out": "leg 1 send returned -> venue fromApp (< 0: the venue got the CPU first)",
    "leg2_wire_out": "leg 2 send returned -> venue fromApp",
    "total": "tick-to-trade (same triggers)",
}


def stages_from_receipts(
    receipts_url: str, samples: list[Sample], offset_ns: int
) -> dict[str, list[int]]:
    """Per-hop times of every measured trigger, from the gateway's receipts (ns)."""
    from oms.receipts import ReceiptStore

    with ReceiptStore(receipts_url) as store:
        sends = {r.clordid: r for r in store.query(kind="command.send_order")}
        intents = {r.pair_id: r for r in store.query(kind="decision.spread_intent")}
        md = {r.cause_ns: r for r in store.query(kind="event.market_data") if r.venue == "OUTER"}
    hops: dict[str, list[int]] = {k: [] for k in RECEIPT_HOPS}
    for t0, t_in, t_out, c_in, c_out in samples:
        s_in, s_out = sends.get(c_in), sends.get(c_out)
        if s_in is None or s_out is None:
            continue
        intent = intents.get(s_in.pair_id)
        if intent is None or intent.cause_ns is None:
            continue
        mdr = md.get(intent.cause_ns)
        if mdr is None:
            continue
        recv = intent.cause_ns - offset_ns  # wall clock -> monotonic
        md_ts = mdr.ts_ns - offset_ns
        intent_ts = intent.ts_ns - offset_ns
        first, second = sorted(((s_in.ts_ns - offset_ns, t_in), (s_out.ts_ns - offset_ns, t_out)))
        hops["wire_in"].append(recv - t0)
        hops["decode_hop_apply"].append(md_ts - recv)
        hops["strategy"].append(intent_ts - md_ts)
        hops["leg1_send"].append(first[0] - intent_ts)
        hops["leg2_send"].append(second[0] - first[0])
        hops["leg1_wire_out"].append(first[1] - first[0])
        hops["leg2_wire_out"].append(second[1] - second[0])
        hops["total"].append(max(t_in, t_out) - t0)
    return hops


TRACE_STAGES: dict[str, str] = {
    "v_md_send": "OUTER: X fix.Message + sendToTarget returned (the gateway may run first)",
    "wire_in": "t0 -> gateway fromApp (X build + write, loopback, wake, quickfix parse/validate)",
    "gw_tostring": "gateway fromApp -> _received (toString, session key)",
    "decode": "gateway decode (codec: parse, Decimals, MdEntry)",
    "post_hop": "OMS post + queue hop (quickfix thread -> OMS thread)",
    "apply": "OMS handle -> book applied",
    "md_receipt": "market-data receipt (Receipt.of + append) + consider",
    "evaluate": "strategy evaluate",
    "to_first_msg": "intent receipt + 2 orders submitted + leg 1 encode",
    "submit_x2": "  of which Orders.submit x 2",
    "encode_1": "  of which encode_command (leg 1)",
    "msg_1": "leg 1 fix.Message(text, dd, False)",
    "send_1": "leg 1 sendToTarget (FileStore + socket write)",
    "between": "leg 1 receipt + leg 2 encode",
    "msg_2": "leg 2 fix.Message",
    "send_2": "leg 2 sendToTarget",
    "wire_out_1": "leg 1 sendToTarget start -> INNER fromApp (loopback, wake, parse)",
    "wire_out_2": "leg 2 sendToTarget start -> OUTER fromApp",
    "v_recv_1": "INNER fromApp -> probe stamp (toString, parse, flat)",
    "v_recv_2": "OUTER fromApp -> probe stamp",
    "receipts_all": "all Receipt.of + append on the path (inside the rows above)",
    "total": "tick-to-trade (traced triggers)",
}
_INTERFERENCE = ("gw.gc", "writer.ship", "v.gc", "writer.commit", "writer.gc")
# The stages that follow one another from t0 to the last leg's stamp (either leg's path).
_CHAIN = (
    "wire_in", "gw_tostring", "decode", "post_hop", "apply", "md_receipt", "evaluate",
    "to_first_msg", "msg_1", "send_1", "between", "msg_2", "wire_out_1", "wire_out_2",
    "v_recv_1", "v_recv_2",
)  # fmt: skip
SEND_RETURN_SLACK_NS = 2_000_000


def _load_stamps(*raws: bytes) -> tuple[list[int], list[str]]:
    import array

    values = array.array("q")
    for raw in raws:
        values.frombytes(raw)
    ordered = sorted(values)
    mask = (1 << _TAG_BITS) - 1
    return [v >> _TAG_BITS for v in ordered], [TRACE_TAGS[v & mask] for v in ordered]


def trace_stages(
    samples: list[Sample], gw_raw: bytes, writer_raw: bytes, *venue_raws: bytes
) -> dict[str, Any]:
    """Each traced trigger cut into the stages of ``TRACE_STAGES`` (ns), and what else ran
    inside the slow triggers' windows (a collection, the receipt sender shipping)."""
    import bisect

    g_ns, g_tag = _load_stamps(gw_raw)
    v_ns, v_tag = _load_stamps(*venue_raws)
    w_ns, w_tag = _load_stamps(writer_raw)
    stages: dict[str, list[int]] = {k: [] for k in TRACE_STAGES}
    rows: list[dict[str, int]] = []
    extras: list[dict[str, int]] = []
    skipped = 0

    def cut(ns: list[int], tags: list[str], lo: int, hi: int) -> list[tuple[int, str]]:
        a, b = bisect.bisect_left(ns, lo), bisect.bisect_right(ns, hi)
        return list(zip(ns[a:b], tags[a:b], strict=True))

    def first(events: list[tuple[int, str]], tag: str, after: int = 0) -> int:
        found = next((t for t, k in events if k == tag and t >= after), None)
        if found is None:
            raise LookupError(tag)
        return found

    def busy(ns: list[int], tags: list[str], tag: str, lo: int, hi: int) -> int:
        """How much of [lo, hi] lies inside ``tag>``..``tag<`` intervals."""
        total, opened = 0, None
        start = bisect.bisect_left(ns, lo - 50_000_000)  # intervals open at most 50 ms
        for t, k in zip(ns[start:], tags[start:], strict=False):
            if t > hi:
                break
            if k == tag + ">":
                opened = t
            elif k == tag + "<" and opened is not None:
                total += max(0, min(t, hi) - max(opened, lo))
                opened = None
        if opened is not None:
            total += max(0, hi - max(opened, lo))
        return total

    def spent(events: list[tuple[int, str]], tag: str) -> int:
        total, opened = 0, None
        for t, k in events:
            if k == tag + ">":
                opened = t
            elif k == tag + "<" and opened is not None:
                total += t - opened
                opened = None
        return total

    for t0, t_in, t_out, _, _ in samples:
        end = max(t_in, t_out)
        # The venue's wake-up can preempt the gateway before its last sendToTarget returns:
        # the gateway's stamps are cut a little past the last arrival.
        g_all = cut(g_ns, g_tag, t0, end + SEND_RETURN_SLACK_NS)
        v = cut(v_ns, v_tag, t0, end)
        try:
            ev1 = first(g_all, "oms.evaluate<")
            msg1 = first(g_all, "gw.msg>", ev1)
            send1 = first(g_all, "gw.send>", msg1)
            sent1 = first(g_all, "gw.send<", send1)
            msg2 = first(g_all, "gw.msg>", sent1)
            send2 = first(g_all, "gw.send>", msg2)
            sent2 = first(g_all, "gw.send<", send2)
            g = [e for e in g_all if e[0] <= sent2]  # the path only, not what follows it
            enc0 = first(g, "gw.encode>", ev1)
            dec1 = first(g, "gw.decode<")
            handle = first(g, "oms.handle>", dec1)
            ap1 = first(g, "oms.apply<", handle)
            ev0 = first(g, "oms.evaluate>", ap1)
            in_app, out_app = first(v, "in.fromApp>"), first(v, "out.fromApp>")
            g_in = first(g, "gw.fromApp>")
            row = {
                "v_md_send": first(v, "v.send<") - t0,
                "wire_in": g_in - t0,
                "gw_tostring": first(g, "gw.received>") - g_in,
                "decode": dec1 - first(g, "gw.decode>"),
                "post_hop": handle - dec1,
                "apply": ap1 - handle,
                "md_receipt": ev0 - ap1,
                "evaluate": ev1 - ev0,
                "to_first_msg": msg1 - ev1,
                "submit_x2": spent(g, "oms.submit"),
                "encode_1": first(g, "gw.encode<", enc0) - enc0,
                "msg_1": send1 - msg1,
                "send_1": sent1 - send1,
                "between": msg2 - sent1,
                "msg_2": send2 - msg2,
                "send_2": sent2 - send2,
                "wire_out_1": in_app - send1,
                "wire_out_2": out_app - send2,
                "v_recv_1": t_in - in_app,
                "v_recv_2": t_out - out_app,
                "receipts_all": spent(g, "oms.receipt") + spent(g, "oms.append"),
                "total": end - t0,
            }
        except LookupError:
            skipped += 1
            continue
        for key, value in row.items():
            stages[key].append(value)
        rows.append(row)
        extras.append(
            {
                "gw.gc": busy(g_ns, g_tag, "gw.gc", t0, end),
                "writer.ship": busy(g_ns, g_tag, "writer.ship", t0, end),
                "v.gc": busy(v_ns, v_tag, "v.gc", t0, end),
                "writer.commit": busy(w_ns, w_tag, "writer.commit", t0, end),
                "writer.gc": busy(w_ns, w_tag, "writer.gc", t0, end),
            }
        )

    medians = {key: percentile(sorted(values), 50) for key, values in stages.items()}
    order = sorted(range(len(rows)), key=lambda i: rows[i]["total"])
    slow = order[len(order) - max(1, len(order) // 100) :] if order else []
    dominant: dict[str, int] = {}
    for i in slow:
        worst = max(_CHAIN, key=lambda k: rows[i][k] - medians[k])
        dominant[worst] = dominant.get(worst, 0) + 1

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else 0.0

    return {
        "stages": stages,
        "slowest_1pct_median": {
            key: percentile(sorted(rows[i][key] for i in slow), 50) for key in TRACE_STAGES
        },
        "traced": len(rows),
        "skipped": skipped,
        "slowest": len(slow),
        "slowest_excess_ns": mean([rows[i]["total"] - medians["total"] for i in slow]),
        "slowest_in_window_ns": {w: mean([extras[i][w] for i in slow]) for w in _INTERFERENCE},
        "all_in_window_ns": {w: mean([x[w] for x in extras]) for w in _INTERFERENCE},
        "slowest_overlapped_pct": {
            w: round(100 * mean([extras[i][w] > 0 for i in slow]), 1) for w in _INTERFERENCE
        },
        "all_overlapped_pct": {
            w: round(100 * mean([x[w] > 0 for x in extras]), 1) for w in _INTERFERENCE
        },
        "slowest_dominant": dict(sorted(dominant.items(), key=lambda kv: -kv[1])),
    }


# -- main ------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--triggers", type=int, default=10_000, help="measured triggers")
    parser.add_argument("--warmup", type=int, default=200, help="triggers run first, not counted")
    parser.add_argument(
        "--quiet-ms",
        type=float,
        default=3.0,
        help="leave every process alone this long per trigger",
    )
    parser.add_argument("--settle-ms", type=float, default=2.0, help="pause between triggers")
    parser.add_argument(
        "--jitter-ms", type=float, default=1.0, help="seeded random pause added to the settle"
    )
    parser.add_argument(
        "--fill-delay-ms",
        type=int,
        default=FILL_DELAY_MS,
        help="venues hold fill reports this long (0: fills go out before the book update)",
    )
    parser.add_argument("--floor-rounds", type=int, default=2_000, help="floor round trips")
    parser.add_argument("--floor-warmup", type=int, default=200, help="floor round trips first")
    parser.add_argument("--seed", type=int, default=20240601, help="seed of the pauses' jitter")
    parser.add_argument(
        "--max-seconds", type=float, default=240.0, help="stop triggering after about this long"
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="also stamp every stage in the gateway and venue processes (perturbs a little)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="keep the gateway alone on one CPU and every other process on the others",
    )
    parser.add_argument("--json", action="store_true", help="end the output with one JSON line")
    args = parser.parse_args(argv)
    if args.triggers < 1 or args.floor_rounds < 1:
        parser.error("--triggers and --floor-rounds must be at least 1")

    out = Console()
    if not out.is_terminal:  # piped or redirected: wide enough that no row wraps
        out = Console(width=140)
    err = Console(stderr=True)
    try:
        return _run(args, out, err)
    except BenchError as exc:
        err.print(f"[red]tick_to_trade: {exc}")
        return 2


def _run(args: argparse.Namespace, out: Console, err: Console) -> int:
    info = machine_info()
    started = time.monotonic()
    start_ns = time.monotonic_ns()
    # The floor gets a fifth of the time; the triggers stop early enough to stop everything
    # (a few seconds) and read the receipts (about a second per 2,000 triggers) in time.
    floor_deadline_ns = start_ns + int(max(5.0, args.max_seconds * 0.2) * 1e9)
    reserve_s = 8.0 + (args.warmup + args.triggers) / 2_000
    deadline_ns = start_ns + int(max(10.0, args.max_seconds - reserve_s) * 1e9)
    ctx = multiprocessing.get_context("spawn")

    from sessions.ports import free_port

    columns = (
        TextColumn("{task.description:>10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    pins = cpu_layout(args.pin)
    own_cpus = os.sched_getaffinity(0)
    _pin(pins["others"])  # this process too: it polls between triggers
    children: list[_Child] = []
    gateway: _Child | None = None
    venues: dict[str, _Child] = {}
    gw_stop: dict[str, Any] = {}
    venue_stop: dict[str, Any] = {}
    traced: dict[str, Any] | None = None
    with (
        tempfile.TemporaryDirectory(prefix="cmc-tick-to-trade-") as tmp,
        Progress(*columns, console=err, transient=True, refresh_per_second=4) as progress,
    ):
        work = Path(tmp)
        try:
            step = progress.add_task("floor", total=None)
            floor = run_floor(ctx, args, floor_deadline_ns, pins)
            progress.remove_task(step)

            step = progress.add_task("start", total=None)
            spec = {
                "ports": {"INNER": free_port(), "OUTER": free_port()},
                "work": str(work),
                "receipts_url": f"sqlite:///{work / 'receipts.sqlite'}",
                "inner_ask_lots": max(10**6, 2 * INNER_LOTS * (args.triggers + args.warmup)),
                "fill_delay_ms": args.fill_delay_ms,
                "trace": args.trace,
                "pin": pins,
            }
            for venue_id in ("INNER", "OUTER"):
                venues[venue_id] = _Child(ctx, venue_id, _venue_main, spec, venue_id)
                children.append(venues[venue_id])
            for child in venues.values():
                child.expect(60)
            gateway = _Child(ctx, "gateway", _gateway_main, spec)
            children.insert(0, gateway)  # stopped first
            gw_ready = gateway.expect(90)[1]
            if not gw_ready["ready"] or gw_ready["active"].get("OUTER") is None:
                raise BenchError(f"the gateway did not get ready: {gw_ready}")
            line = GATEWAY_LINES[0 if gw_ready["active"]["OUTER"] == "primary" else 1]
            venues["OUTER"].ask("md_session", f"OUTER->{line}")
            progress.remove_task(step)

            offset_before = wall_minus_mono_ns()
            result = drive(venues, gateway, args, deadline_ns, progress)
            offset_after = wall_minus_mono_ns()
            stamps = (
                [venues[v].ask("stamps", timeout_s=60) for v in ("OUTER", "INNER")]
                if args.trace
                else []
            )

            # Stop: the gateway first (it logs out of both venues), then the venues.
            step = progress.add_task("stop", total=None)
            gw_stop = gateway.ask("stop", timeout_s=90)
            gateway.reap(30)
            for venue_id, child in venues.items():
                venue_stop[venue_id] = child.ask("stop", timeout_s=30)
                child.reap(15)
            progress.remove_task(step)

            step = progress.add_task("receipts", total=None)
            hops = stages_from_receipts(
                spec["receipts_url"], result["samples"], (offset_before + offset_after) // 2
            )
            if args.trace:
                writer_file = work / "writer.stamps"
                writer_raw = writer_file.read_bytes() if writer_file.exists() else b""
                traced = trace_stages(result["samples"], gw_stop.pop("stamps"), writer_raw, *stamps)
            progress.remove_task(step)
        finally:
            # Whatever happened, nothing this bench started is left running.
            for child in children:
                if child.proc.is_alive():
                    _send(child.conn, "stop")
                child.reap(30 if child is gateway else 15)
    os.sched_setaffinity(0, own_cpus)
    run_s = time.monotonic() - started
    report(out, args, info, floor, result, gw_stop, venue_stop, hops, traced, run_s)
    return 0 if result["samples"] and not result["missed"] and not result["aborted"] else 1


def report(
    out: Console,
    args: argparse.Namespace,
    info: dict[str, Any],
    floor: dict[str, Any],
    result: dict[str, Any],
    gw_stop: dict[str, Any],
    venue_stop: dict[str, Any],
    hops: dict[str, list[int]],
    traced: dict[str, Any] | None,
    run_s: float,
) -> None:
    samples: list[Sample] = result["samples"]
    t2t = sorted(max(t_in, t_out) - t0 for t0, t_in, t_out, _, _ in samples)
    inner_leg = sorted(t_in - t0 for t0, t_in, _, _, _ in samples)
    outer_leg = sorted(t_out - t0 for t0, _, t_out, _, _ in samples)
    floor_s = sorted(floor["samples"])

    def us(ns: float) -> float:
        return round(ns / 1e3, 1)

    n = len(t2t)
    p50, p99 = us(percentile(t2t, 50)), us(percentile(t2t, 99))
    p999, worst = us(percentile(t2t, 99.9)), us(t2t[-1] if t2t else 0)
    f50, f99 = us(percentile(floor_s, 50)), us(percentile(floor_s, 99))
    ratio = round(p50 / f50, 2) if f50 and n else None
    hop_p50 = {k: us(percentile(sorted(v), 50)) for k, v in hops.items()}
    hop_p99 = {k: us(percentile(sorted(v), 99)) for k, v in hops.items()}
    summary: dict[str, Any] = {
        "triggers": n,
        "triggers_requested": args.triggers,
        "warmup_triggers": result["warmup_done"],
        "missed": result["missed"],
        "p50_us": p50,
        "p99_us": p99,
        "p999_us": p999,
        "max_us": worst,
        "mean_us": us(sum(t2t) / n) if n else 0.0,
        "inner_leg_p50_us": us(percentile(inner_leg, 50)),
        "outer_leg_p50_us": us(percentile(outer_leg, 50)),
        "goal_p50_us": GOAL_P50_US,
        "goal_p99_us": GOAL_P99_US,
        "meets_goals": bool(n) and p50 <= GOAL_P50_US and p99 <= GOAL_P99_US,
        "floor_p50_us": f50,
        "floor_p99_us": f99,
        "floor_round_trips": len(floor_s),
        "floor_lost": floor["lost"],
        "p50_to_floor_ratio": ratio,
        "receipts_written": gw_stop.get("receipts_written"),
        "receipts_appended": gw_stop.get("receipts_appended"),
        "gateway_trades_done": gw_stop.get("trades_done"),
        "gateway_position": gw_stop.get("position"),
        "gateway_imbalance": gw_stop.get("imbalance"),
        "gateway_oms_errors": gw_stop.get("oms_errors"),
        "gateway_callback_errors": gw_stop.get("callback_errors"),
        "cpu_s": {
            "gateway": gw_stop.get("gateway_cpu_s"),
            "receipt_writer": gw_stop.get("writer_cpu_s"),
            **{v.lower(): venue_stop.get(v, {}).get("cpu_s") for v in ("INNER", "OUTER")},
        },
        "unfilled": result["unfilled"],
        "no_t0": result["no_t0"],
        "stray_orders": result["stray_orders"],
        "slower_than_quiet_window": result["over_quiet"],
        "aborted": result["aborted"],
        "hop_p50_us": hop_p50,
        "hop_p99_us": hop_p99,
        "hop_triggers": len(hops["total"]),
        "quiet_ms": args.quiet_ms,
        "settle_ms": args.settle_ms,
        "jitter_ms": args.jitter_ms,
        "fill_delay_ms": args.fill_delay_ms,
        "pinned": args.pin,
        "seed": args.seed,
        "run_s": round(run_s, 1),
        **info,
    }
    if "receipt_error" in gw_stop:
        summary["receipt_error"] = gw_stop["receipt_error"]

    def goal(value: float, target: float) -> str:
        if not n:
            return f"{target:,.0f} µs (no figure)"
        mark = "[green]met[/green]" if value <= target else "[red]missed[/red]"
        return f"≤ {target:,.0f} µs: {mark}"

    table = Table(
        title=f"Tick-to-trade through the gateway: {n:,} triggers, seed {args.seed}",
        caption="tick-to-trade: the X that crosses the spread leaves OUTER -> the gateway -> "
        "both leg orders reach the venues' fromApp (two one-way hops through 3 processes). "
        "Floor: bare quickfix NewOrderSingle -> ExecutionReport round trip (2 processes).",
    )
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("goal / note", justify="right")
    table.add_row("triggers measured", f"{n:,}", f"after {result['warmup_done']} warm-up")
    table.add_row("missed (no legs within 1 s)", f"{result['missed']:,}", "must be 0")
    table.add_row("tick-to-trade p50", f"{p50:,.1f} µs", goal(p50, GOAL_P50_US))
    table.add_row("tick-to-trade p99", f"{p99:,.1f} µs", goal(p99, GOAL_P99_US))
    table.add_row("tick-to-trade p99.9", f"{p999:,.1f} µs", "")
    table.add_row("tick-to-trade max", f"{worst:,.1f} µs", "")
    table.add_row(
        "per leg p50 (inner AU / outer GC)",
        f"{summary['inner_leg_p50_us']:,.1f} / {summary['outer_leg_p50_us']:,.1f} µs",
        "the inner leg is sent first",
    )
    table.add_row(
        "floor p50 / p99 (bare quickfix round trip)",
        f"{f50:,.1f} / {f99:,.1f} µs",
        f"{len(floor_s):,} round trips, MemoryStore, paced like the triggers",
    )
    table.add_row("tick-to-trade p50 / floor p50", f"{ratio}x" if ratio else "n/a", "")
    table.add_row(
        "receipts written (writer process)",
        f"{gw_stop.get('receipts_written') or 0:,}",
        f"of {gw_stop.get('receipts_appended') or 0:,} appended",
    )
    table.add_row(
        "gateway trades done / position / imbalance",
        f"{gw_stop.get('trades_done', 0):,} / {gw_stop.get('position', 0):,} / "
        f"{gw_stop.get('imbalance', '?')}",
        f"legs not filled {result['unfilled']}, stray orders {result['stray_orders']}",
    )
    table.add_row(
        f"slower than the {args.quiet_ms:g} ms quiet window",
        f"{result['over_quiet']:,}",
        "polled while in flight",
    )
    cpu = summary["cpu_s"]
    table.add_row(
        "CPU used: gateway / receipt writer / INNER / OUTER",
        " / ".join(f"{cpu[k]} s" for k in ("gateway", "receipt_writer", "inner", "outer")),
        f"of {info['cpu_count']} CPUs x the run",
    )
    table.add_row(
        "pace",
        f"{args.settle_ms:g} ms + 0..{args.jitter_ms:g} ms",
        f"after the pair is idle; venue fill delay {args.fill_delay_ms} ms"
        + ("; gateway pinned to its own CPU" if args.pin else ""),
    )
    table.add_row(
        "machine",
        f"{info['cpu_count']} CPUs, {info['python_implementation']} {info['python']}",
        info["platform"],
    )
    table.add_row("quickfix", str(info["quickfix"]), "")
    table.add_row("run time", f"{run_s:.1f} s", f"cap {args.max_seconds:g} s")
    out.print(table)

    hop_table = Table(
        title=f"Where the time goes, from the receipts ({len(hops['total']):,} triggers)",
        caption="the gateway's receipt stamps (wall clock put on the monotonic one) joined "
        "with the venues' probes; medians do not add up exactly",
    )
    hop_table.add_column("hop")
    hop_table.add_column("p50 µs", justify="right")
    hop_table.add_column("p99 µs", justify="right")
    for key, label in RECEIPT_HOPS.items():
        hop_table.add_row(label, f"{hop_p50[key]:,.1f}", f"{hop_p99[key]:,.1f}")
    out.print(hop_table)

    if traced is not None:
        trace_table = Table(
            title=f"Stage trace (--trace: {traced['traced']:,} triggers, "
            f"{traced['skipped']} not cut)",
            caption="wrapper stamps in the gateway and venue processes, one monotonic clock. "
            f"The slowest {traced['slowest']} triggers ran "
            f"{us(traced['slowest_excess_ns']):,.0f} µs over the median; inside their windows "
            "on average: "
            + ", ".join(
                f"{k} {us(v):,.0f} µs ({traced['slowest_overlapped_pct'][k]} % of them)"
                for k, v in traced["slowest_in_window_ns"].items()
            )
            + "; all triggers: "
            + ", ".join(
                f"{k} {us(v):,.0f} µs ({traced['all_overlapped_pct'][k]} %)"
                for k, v in traced["all_in_window_ns"].items()
            )
            + ". The stage that grew most in each: "
            + ", ".join(f"{k} {v}" for k, v in traced["slowest_dominant"].items()),
        )
        trace_table.add_column("stage")
        trace_table.add_column("p50 µs", justify="right")
        trace_table.add_column("p99 µs", justify="right")
        trace_table.add_column("slowest 1 %: p50 µs", justify="right")
        stage_json: dict[str, Any] = {}
        for key, label in TRACE_STAGES.items():
            values = sorted(traced["stages"][key])
            a, b = us(percentile(values, 50)), us(percentile(values, 99))
            c = us(traced["slowest_1pct_median"][key])
            stage_json[key] = {"p50_us": a, "p99_us": b, "slowest_1pct_p50_us": c}
            trace_table.add_row(label, f"{a:,.1f}", f"{b:,.1f}", f"{c:,.1f}")
        out.print(trace_table)
        summary["trace"] = {
            "stages": stage_json,
            "traced": traced["traced"],
            "slowest_excess_us": us(traced["slowest_excess_ns"]),
            "slowest_in_window_us": {k: us(v) for k, v in traced["slowest_in_window_ns"].items()},
            "all_in_window_us": {k: us(v) for k, v in traced["all_in_window_ns"].items()},
            "slowest_overlapped_pct": traced["slowest_overlapped_pct"],
            "all_overlapped_pct": traced["all_overlapped_pct"],
            "slowest_dominant_stage": traced["slowest_dominant"],
        }

    if result["aborted"]:
        out.print(f"[red]run stopped: {result['aborted']}")
    elif result["triggers_run"] < args.triggers:
        out.print(
            f"[yellow]stopped at the time cap: {result['triggers_run']:,} of "
            f"{args.triggers:,} triggers run"
        )
    for note in result["notes"]:
        out.print(f"[yellow]{note}")
    if "receipt_error" in gw_stop:
        out.print(f"[red]receipt writer: {gw_stop['receipt_error']}")
    still = [s for v in venue_stop.values() for s in v.get("still_logged_on", [])]
    if still:
        out.print(f"[yellow]still logged on at the venues' exit: {', '.join(still)}")
    if args.json:
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
