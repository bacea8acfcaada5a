"""Crash recovery: a gateway killed outright starts again from its receipts and loses,
and duplicates, nothing.

The rebuild (``oms.recovery.rebuild``) is tested from receipts written to a real SQLite
store: orders sent, reported, cancelled, rejected, never arrived, and ones only quickfix's
log had. The OMS's way back to trading (``Resumption``) is driven event by event through
the OMS harness. The whole is tested for real: the `cmc gateway` process trades the gold
pair against two simulated venues in this process, is killed with SIGKILL at a seeded
random moment twenty times, each time restarted on the same receipts, FIX logs and
sequence numbers; the venues' own records of every order that reached them are the judge.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from oms.commands import CancelOrder, SendOrder, StatusRequest
from oms.enums import OrderType, Side, TimeInForce
from oms.events import (
    ExecType,
    ExecutionReceived,
    LineRole,
    LineState,
    LineStateChanged,
    OrdStatus,
)
from oms.orders import RequestKind
from oms.receipts import Receipt, ReceiptStore
from oms.recovery import Snapshot, fix_tags, recover, trade_number
from sessions.codec import decode
from sessions.demo import GW_BACKUP, GW_PRIMARY
from sessions.fixwire import encode
from sessions.gateway import _writer_alive
from sessions.simulator.config import VenueConfig
from sessions.simulator.venue import Venue
from sessions.soak import SoakPlan, soak_gateway_config, venue_settings
from tests.conftest import launch_gateway, wait_until
from tests.oms_harness import Harness, gold

CMC = str(Path(sys.executable).parent / "cmc")
TOKEN = "crash-token-" + os.urandom(12).hex()
SEED = 20240611
CYCLES = 20

# -- the rebuild: receipts in a real SQLite store, a snapshot out -----------------------------

PREFIX = "CMC12345678-"
_seq = iter(range(1, 1_000_000))


def send_receipt(
    n: int,
    venue: str,
    symbol: str,
    side: Side,
    qty: int,
    price: str,
    *,
    trade: str | None,
    leg: str | None,
    sent: bool = True,
    line: str | None = "primary",
) -> Receipt:
    return Receipt.of(
        "command.send_order",
        ts_ns=1_000 + n,
        venue=venue,
        line=line if sent else None,
        symbol=symbol,
        clordid=f"{PREFIX}{n}",
        pair_id=trade,
        verdict="sent" if sent else "not sent",
        reason=None if sent else "no line to the venue is logged on",
        data={
            "side": side.name,
            "qty": qty,
            "price": price,
            "tif": TimeInForce.IOC.name,
            "leg": leg,
            "purpose": "leg",
            "account": None,
        },
    )


def report_raw(
    clordid: str,
    exec_id: str,
    exec_type: ExecType,
    status: OrdStatus,
    *,
    venue: str,
    symbol: str,
    side: Side,
    qty: int,
    cum: int,
    last: int = 0,
    price: str = "560.00",
    poss_dup: bool = False,
    orig: str | None = None,
    order_id: str | None = None,
) -> str:
    leaves = (
        0 if status in (OrdStatus.CANCELED, OrdStatus.REJECTED, OrdStatus.FILLED) else qty - cum
    )
    return encode(
        "8",
        [
            (49, venue),
            (56, GW_PRIMARY),
            (34, next(_seq)),
            (43, "Y" if poss_dup else None),
            (52, "20250102-03:04:05.000000"),
            (37, order_id or f"{venue}-V-{clordid}"),
            (11, clordid),
            (41, orig),
            (17, exec_id),
            (150, exec_type.value),
            (39, status.value),
            (55, symbol),
            (54, side.value),
            (38, qty),
            (32, last or None),
            (31, price if last else None),
            (14, cum),
            (151, leaves),
            (6, price if cum else "0"),
        ],
    )


def event_receipt(raw: str, venue: str, n: int) -> Receipt:
    tags = fix_tags(raw)
    return Receipt.of(
        "event.execution",
        ts_ns=2_000 + n,
        cause_ns=1_990 + n,
        venue=venue,
        line="primary",
        clordid=tags[11],
        exec_id=tags[17],
        raw=raw,
    )


def unrecorded(raw: str, venue: str, direction: str, n: int, line: str = "primary") -> Receipt:
    tags = fix_tags(raw)
    return Receipt.of(
        "fix.unrecorded",
        ts_ns=3_000 + n,
        venue=venue,
        line=line,
        clordid=tags.get(11),
        verdict=direction,
        raw=raw,
        data={"msg_type": tags[35]},
    )


def stored(tmp_path: Path, receipts: list[Receipt]) -> Snapshot:
    """Write ``receipts`` to a fresh SQLite store, close it, and recover from it."""
    url = f"sqlite:///{tmp_path / 'receipts.sqlite'}"
    with ReceiptStore(url) as store:
        store.append_batch(receipts)
    return recover(url, [gold()], decode)


def test_rebuild_replays_orders_fills_and_requests_from_a_sqlite_store(tmp_path: Path) -> None:
    c = [f"{PREFIX}{n}" for n in range(9)]
    au: dict[str, Any] = {"venue": "INNER", "symbol": "AU", "side": Side.BUY, "qty": 28}
    gc: dict[str, Any] = {
        "venue": "OUTER",
        "symbol": "GC",
        "side": Side.SELL,
        "qty": 9,
        "price": "2402.5",
    }
    receipts = [
        # GOLD-1: inner filled in two fills (one of them resent, PossDup), outer part-filled
        send_receipt(1, "INNER", "AU", Side.BUY, 28, "560.10", trade="GOLD-1", leg="inner"),
        send_receipt(2, "OUTER", "GC", Side.SELL, 9, "2402.3", trade="GOLD-1", leg="outer"),
        event_receipt(report_raw(c[1], "I1", ExecType.NEW, OrdStatus.NEW, cum=0, **au), "INNER", 1),
        event_receipt(
            report_raw(
                c[1], "I2", ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, cum=20, last=20, **au
            ),
            "INNER",
            2,
        ),
        event_receipt(
            report_raw(
                c[1],
                "I2",
                ExecType.TRADE,
                OrdStatus.PARTIALLY_FILLED,
                cum=20,
                last=20,
                **au,
                poss_dup=True,
            ),
            "INNER",
            3,
        ),
        event_receipt(
            report_raw(c[1], "I3", ExecType.TRADE, OrdStatus.FILLED, cum=28, last=8, **au),
            "INNER",
            4,
        ),
        event_receipt(report_raw(c[2], "O1", ExecType.NEW, OrdStatus.NEW, cum=0, **gc), "OUTER", 5),
        event_receipt(
            report_raw(c[2], "O2", ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, cum=5, last=5, **gc),
            "OUTER",
            6,
        ),
        event_receipt(
            report_raw(c[2], "O3", ExecType.CANCELED, OrdStatus.CANCELED, cum=5, **gc), "OUTER", 7
        ),
        # GOLD-R4: a top-up never sent (no line), one that never arrived, one still working
        send_receipt(
            3, "OUTER", "GC", Side.SELL, 4, "2402.0", trade="GOLD-R4", leg="outer", sent=False
        ),
        send_receipt(4, "OUTER", "GC", Side.SELL, 4, "2402.0", trade="GOLD-R4", leg="outer"),
        Receipt.of(
            "alert.reconcile",
            ts_ns=4_000,
            venue="OUTER",
            clordid=c[4],
            verdict="never_arrived",
            reason="the venue does not know it on the primary line",
        ),
        send_receipt(5, "OUTER", "GC", Side.SELL, 4, "2402.0", trade="GOLD-R4", leg="outer"),
        # a day order of GOLD-7 with a cancel asked and still unanswered
        send_receipt(6, "INNER", "AU", Side.SELL, 28, "559.90", trade="GOLD-7", leg="inner"),
        event_receipt(
            report_raw(c[6], "I9", ExecType.NEW, OrdStatus.NEW, cum=0, **{**au, "side": Side.SELL}),
            "INNER",
            8,
        ),
        Receipt.of(
            "command.cancel_order",
            ts_ns=5_000,
            venue="INNER",
            symbol="AU",
            clordid=c[7],
            pair_id="GOLD-7",
            verdict="sent",
            data={"orig_clordid": c[6]},
        ),
        Receipt.of(
            "decision.pair_done",
            ts_ns=6_000,
            pair_id="GOLD-M2",
            verdict="filled",
            data={"pair": "GOLD", "position": 1},
        ),
    ]
    snap = stored(tmp_path, receipts)
    orders = {o.key: o for o in snap.orders.all()}

    assert snap.stats.orders == 6 and not snap.stats.problems
    inner = orders[c[1]]
    assert (inner.status, inner.fill_qty, [f.exec_id for f in inner.fills]) == (
        OrdStatus.FILLED,
        28,
        ["I2", "I3"],
    )
    assert snap.stats.duplicates == 1  # the PossDup copy of I2 counted once
    assert inner.line is LineRole.PRIMARY and inner.venue_order_id == f"INNER-V-{c[1]}"
    assert (orders[c[2]].status, orders[c[2]].fill_qty) == (OrdStatus.CANCELED, 5)
    assert orders[c[3]].status is OrdStatus.REJECTED and orders[c[3]].line is None
    assert orders[c[4]].status is OrdStatus.REJECTED  # judged never arrived
    assert orders[c[5]].status is OrdStatus.PENDING_NEW and orders[c[5]].working
    day = orders[c[6]]
    assert day.status is OrdStatus.PENDING_CANCEL and day.pending_kind is RequestKind.CANCEL
    assert day.pending_clordid == c[7] and snap.orders.by_clordid(c[7]) is day
    assert {o.key for o in snap.working} == {c[5], c[6]}

    pair = snap.pairs["GOLD"]
    assert (pair.net_inner, pair.net_outer) == (28, -5)  # inner bought 28, outer sold 5
    assert pair.units == 1  # not aligned: the last finished trade's position
    assert pair.counted[c[1]] == 28 and pair.trades == {"GOLD-1", "GOLD-R4", "GOLD-7"}
    assert pair.numbers == {"": 7, "R": 4, "M": 2}
    assert snap.highest_clordid(PREFIX) == 7 and snap.highest_clordid("OTHER-") == 0


def test_rebuild_takes_what_only_the_fix_log_had(tmp_path: Path) -> None:
    """A kill -9 before the writer flushed: the NewOrderSingle and the venue's answers are
    in quickfix's log only, recorded as ``fix.unrecorded`` at the next start."""
    clordid = f"{PREFIX}11"
    new_order = encode(
        "D",
        [
            (49, GW_BACKUP),
            (56, "OUTER"),
            (34, 77),
            (52, "20250102-03:04:05.000000"),
            (11, clordid),
            (55, "GC"),
            (54, Side.SELL.value),
            (38, 9),
            (40, "2"),
            (44, "2402.3"),
            (59, TimeInForce.IOC.value),
        ],
    )
    gc: dict[str, Any] = {
        "venue": "OUTER",
        "symbol": "GC",
        "side": Side.SELL,
        "qty": 9,
        "price": "2402.3",
    }
    ack = report_raw(clordid, "X1", ExecType.NEW, OrdStatus.NEW, cum=0, **gc)
    fill = report_raw(
        clordid, "X2", ExecType.TRADE, OrdStatus.PARTIALLY_FILLED, cum=3, last=3, **gc
    )
    client = encode(
        "D",
        [(11, f"{PREFIX}12"), (1, "ACME"), (55, "GC"), (54, "1"), (38, 1), (40, "2"), (44, "2400")],
    )
    snap = stored(
        tmp_path,
        [
            unrecorded(new_order, "OUTER", "out", 1, line="backup"),
            unrecorded(ack, "OUTER", "in", 2),
            unrecorded(fill, "OUTER", "in", 3),
            unrecorded(client, "OUTER", "out", 4),
        ],
    )
    order = snap.orders.by_key(clordid)
    assert order is not None
    assert (order.status, order.fill_qty, order.line) == (
        OrdStatus.PARTIALLY_FILLED,
        3,
        LineRole.BACKUP,
    )
    assert (order.pair_id, order.leg) == ("GOLD-recovered", "outer")
    assert snap.stats.unrecorded == 4 and snap.stats.inferred == 1
    assert snap.pairs["GOLD"].net_outer == -3
    client_order = snap.orders.by_key(f"{PREFIX}12")
    assert client_order is not None and client_order.pair_id is None  # a client's: not the pair's


def test_trade_numbers() -> None:
    assert trade_number("GOLD-12", "GOLD") == ("", 12)
    assert trade_number("GOLD-M3", "GOLD") == ("M", 3)
    assert trade_number("GOLD-R2", "GOLD") == ("R", 2)
    assert trade_number("GOLD-recovered", "GOLD") is None
    assert trade_number("SILVER-1", "GOLD") is None


# -- back to trading: the OMS restored, driven event by event ---------------------------------


def half_done_trade(h: Harness, tmp_path: Path) -> tuple[str, str]:
    """Restore ``h``'s OMS from a store where trade GOLD-3 bought its 28 inner lots and the
    process died with its 9 outer lots sent and unanswered: (inner's, outer's ClOrdID)."""
    prefix = h.oms._clordid_prefix
    filled, lost = f"{prefix}1", f"{prefix}2"
    au: dict[str, Any] = {"venue": "INNER", "symbol": "AU", "side": Side.BUY, "qty": 28}
    receipts = [
        Receipt.of(
            "command.send_order",
            ts_ns=1,
            venue="INNER",
            line="primary",
            symbol="AU",
            clordid=filled,
            pair_id="GOLD-3",
            verdict="sent",
            data={"side": "BUY", "qty": 28, "price": "560.10", "tif": "IOC", "leg": "inner"},
        ),
        event_receipt(
            report_raw(filled, "A1", ExecType.NEW, OrdStatus.NEW, cum=0, **au), "INNER", 1
        ),
        event_receipt(
            report_raw(filled, "A2", ExecType.TRADE, OrdStatus.FILLED, cum=28, last=28, **au),
            "INNER",
            2,
        ),
        Receipt.of(
            "command.send_order",
            ts_ns=2,
            venue="OUTER",
            line="primary",
            symbol="GC",
            clordid=lost,
            pair_id="GOLD-3",
            verdict="sent",
            data={"side": "SELL", "qty": 9, "price": "2402.3", "tif": "IOC", "leg": "outer"},
        ),
    ]
    url = f"sqlite:///{tmp_path / 'receipts.sqlite'}"
    with ReceiptStore(url) as store:
        store.append_batch(receipts)
    h.oms.restore(recover(url, [gold()], decode), {"INNER": 1, "OUTER": 1})
    return filled, lost


def lines_up(h: Harness) -> None:
    for venue in ("INNER", "OUTER"):
        h.oms.handle(
            LineStateChanged(
                venue, LineRole.PRIMARY, LineState.LOGGED_ON, LineRole.PRIMARY, next(h.clock)
            )
        )


def test_restored_oms_reconciles_then_repairs_before_any_entry(tmp_path: Path) -> None:
    h = Harness()
    oms = h.oms
    prefix = oms._clordid_prefix
    _, lost = half_done_trade(h, tmp_path)
    assert oms.recovery is not None and oms.pairs["GOLD"].net_inner == 28
    assert oms.risk.exposure("INNER", "AU")[0] == 28  # risk's position too

    # Books where the strategy would buy the inner leg at once (the outer 7.5 USD/oz rich):
    # nothing goes out while recovering.
    h.book("INNER", "AU", [("559.98", 100)], [("560.00", 100)])
    h.book("OUTER", "GC", [("2410.0", 100)], [("2410.1", 100)])
    assert h.sent == []
    lines_up(h)
    (ask,) = h.sent  # only OUTER has a working order to ask after
    assert isinstance(ask, StatusRequest) and ask.clordid == lost
    # The venue does not know it on the line it went out on: it never arrived.
    oms.handle(
        ExecutionReceived(
            venue="OUTER",
            line=LineRole.PRIMARY,
            clordid=lost,
            orig_clordid=None,
            venue_order_id="NONE",
            exec_id="S1",
            exec_type=ExecType.ORDER_STATUS,
            ord_status=OrdStatus.REJECTED,
            symbol="GC",
            side=Side.SELL,
            order_qty=None,
            last_qty=0,
            last_px=None,
            cum_qty=0,
            leaves_qty=0,
            avg_px=Decimal(0),
            transact_ns=None,
            sending_ns=None,
            recv_ns=next(h.clock),
        )
    )
    lost_order = oms.orders.by_key(lost)
    assert lost_order is not None and lost_order.status is OrdStatus.REJECTED
    # The pair is out of ratio (28 inner bought, no outer) and its trade is gone: repaired
    # back to its last aligned position (flat), under the next ClOrdID and a repair number,
    # before any new entry.
    repair = h.sent[-1]
    assert isinstance(repair, SendOrder)
    assert repair.clordid == f"{prefix}3" and repair.venue == "INNER"
    assert (repair.side, repair.qty, repair.pair_id) == (Side.SELL, 28, "GOLD-R1")
    assert "GOLD" not in oms.engine.recovering
    h.fill_in_full(repair, "559.98")
    assert oms.pairs["GOLD"].aligned and oms.pairs["GOLD"].units == 0
    assert oms.recovery.done
    kinds = [r.kind for r in h.receipts]
    assert "recovery.restored" in kinds and "recovery.done" in kinds
    # Free again: the strategy's next entry carries a number after the recovered GOLD-3.
    h.book("OUTER", "GC", [("2410.0", 100)], [("2410.1", 99)])
    entry = h.sent[-1]
    assert isinstance(entry, SendOrder) and entry.pair_id == "GOLD-4"


def test_recovered_order_settled_by_the_venues_resend_needs_no_repair(tmp_path: Path) -> None:
    """The outer leg had filled: the venue resends its reports at the logon (the gateway
    died before reading them), the pair stands aligned at one unit, nothing is cancelled or
    repaired, and the strategy trades on from there."""
    h = Harness()
    _, lost = half_done_trade(h, tmp_path)
    h.book("INNER", "AU", [("559.98", 100)], [("560.00", 100)])
    h.book("OUTER", "GC", [("2410.0", 100)], [("2410.1", 100)])
    resent = SendOrder(
        "OUTER",
        lost,
        "GC",
        Side.SELL,
        9,
        OrderType.LIMIT,
        Decimal("2402.3"),
        TimeInForce.IOC,
        None,
        0,
    )
    h.fill_in_full(resent, "2402.4")
    assert h.sent == [] and "GOLD" in h.oms.engine.recovering  # no line logged on yet
    lines_up(h)
    pair = h.oms.pairs["GOLD"]
    assert pair.aligned and pair.units == 1 and pair.working is None
    assert h.oms.recovery is not None and h.oms.recovery.done
    assert not any(isinstance(c, StatusRequest) for c in h.sent)  # nothing left to ask after
    h.book("OUTER", "GC", [("2410.0", 100)], [("2410.1", 99)])
    entry = h.sent[-1]
    assert isinstance(entry, SendOrder) and entry.pair_id == "GOLD-4"
    assert pair.working is not None and pair.working.from_units == 1


def status_report(
    clordid: str, exec_id: str, exec_type: ExecType, status: OrdStatus, **kw: Any
) -> ExecutionReceived:
    """A report on the inner venue's primary line for the resting order of the test below."""
    fields: dict[str, Any] = {
        "venue": "INNER",
        "line": LineRole.PRIMARY,
        "clordid": clordid,
        "orig_clordid": None,
        "venue_order_id": "V-1",
        "exec_id": exec_id,
        "exec_type": exec_type,
        "ord_status": status,
        "symbol": "AU",
        "side": Side.BUY,
        "order_qty": 28,
        "last_qty": 0,
        "last_px": None,
        "cum_qty": 0,
        "leaves_qty": 28,
        "avg_px": Decimal(0),
        "transact_ns": None,
        "sending_ns": None,
        "recv_ns": 5_000_000,
    }
    fields.update(kw)
    return ExecutionReceived(**fields)


def test_recovered_resting_order_is_asked_after_then_cancelled(tmp_path: Path) -> None:
    """A day-limit leg resting at the venue when the gateway died: the venue confirms it is
    there, the restarted gateway cancels it (its trade is gone), and only once the venue
    says Canceled does the pair trade again."""
    h = Harness()
    resting = f"{PREFIX}1"
    au: dict[str, Any] = {"venue": "INNER", "symbol": "AU", "side": Side.BUY, "qty": 28}
    url = f"sqlite:///{tmp_path / 'receipts.sqlite'}"
    with ReceiptStore(url) as store:
        store.append_batch(
            [
                send_receipt(1, "INNER", "AU", Side.BUY, 28, "559.00", trade="GOLD-5", leg="inner"),
                event_receipt(
                    report_raw(
                        resting, "R1", ExecType.NEW, OrdStatus.NEW, cum=0, order_id="V-1", **au
                    ),
                    "INNER",
                    1,
                ),
            ]
        )
    snapshot = recover(url, [gold()], decode)
    assert [o.key for o in snapshot.working] == [resting]
    h.oms.restore(snapshot, {"INNER": 1, "OUTER": 1})
    h.book("INNER", "AU", [("559.98", 100)], [("560.00", 100)])
    h.book("OUTER", "GC", [("2410.0", 100)], [("2410.1", 100)])
    lines_up(h)
    (ask,) = h.sent
    assert isinstance(ask, StatusRequest) and ask.venue_order_id == "V-1"
    h.oms.handle(status_report(resting, "S1", ExecType.ORDER_STATUS, OrdStatus.NEW))
    cancel = h.sent[-1]
    assert isinstance(cancel, CancelOrder) and cancel.orig_clordid == resting
    h.book("OUTER", "GC", [("2410.0", 100)], [("2410.1", 98)])
    assert h.sent[-1] is cancel  # no entry while the cancel is out
    h.oms.handle(
        status_report(
            cancel.clordid,
            "C1",
            ExecType.CANCELED,
            OrdStatus.CANCELED,
            orig_clordid=resting,
            leaves_qty=0,
        )
    )
    order = h.oms.orders.by_key(resting)
    assert order is not None and order.status is OrdStatus.CANCELED
    assert h.oms.recovery is not None and h.oms.recovery.done
    h.book("OUTER", "GC", [("2410.0", 100)], [("2410.1", 97)])
    entry = h.sent[-1]
    assert isinstance(entry, SendOrder) and entry.pair_id == "GOLD-6"


def sleep_a_while() -> None:
    time.sleep(30)


def test_a_new_gateway_waits_for_the_killed_ones_receipt_writer() -> None:
    """Only a live multiprocessing child counts as the earlier writer: not this process,
    not a process that is gone."""
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=sleep_a_while, daemon=True)
    child.start()
    try:
        assert child.pid is not None
        assert wait_until(lambda: _writer_alive(child.pid or 0), 10)
        assert not _writer_alive(os.getpid())
    finally:
        child.kill()
        child.join(10)
    assert not _writer_alive(child.pid)


# -- the real thing: kill -9, twenty times ---------------------------------------------------


class Arrivals:
    """The venues' own count of every NewOrderSingle that reached them, by ClOrdID."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()

    def market_data_sent(self, session: str, text: str, mono_ns: int) -> None:
        pass

    def order_arrived(self, session: str, clordid: str, mono_ns: int) -> None:
        self.count[clordid] += 1


_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_value(value: Any) -> str:
    """A value as inline TOML (the configuration as one line per key: TOML has no null, so
    None is left out)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        items = (f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items() if v is not None)
        return "{ " + ", ".join(items) + " }"
    raise TypeError(f"no TOML for {value!r}")


def toml_key(key: str) -> str:
    return key if _BARE.match(key) else json.dumps(key)


def write_config(path: Path, data: dict[str, Any]) -> None:
    path.write_text(
        "".join(f"{toml_key(k)} = {toml_value(v)}\n" for k, v in data.items() if v is not None)
    )


class GatewayProcess:
    """`cmc gateway` as a subprocess: started, asked through its admin API, killed."""

    def __init__(self, work: Path, config: Path) -> None:
        self.work = work
        self.log = work / "gateway.log"
        admin = work / "admin.json"
        admin.unlink(missing_ok=True)
        with self.log.open("a") as out:
            out.write(f"\n---- start {time.strftime('%H:%M:%S')} ----\n")
        self.proc = launch_gateway(config, self.log, TOKEN)
        assert wait_until(lambda: admin.exists() or self.proc.poll() is not None, 60), self.tail()
        assert self.proc.poll() is None, f"the gateway exited:\n{self.tail()}"
        self.url = json.loads(admin.read_text())["url"]

    def tail(self) -> str:
        return self.log.read_text()[-4000:] if self.log.exists() else "(no log)"

    def get(self, path: str) -> Any:
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def kill(self) -> None:
        self.proc.kill()  # SIGKILL: no handler, no flush, no logout
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)


class Swings:
    """Pushes the outer market maker's fair value rich and cheap in turn, so that the pair
    always has a trade to make: long when the outer leg is rich, flat and then short when
    it is cheap, and back (the strategy's own thresholds, nothing forced)."""

    def __init__(self, outer: Venue, every_s: float = 0.06) -> None:
        self.outer = outer
        self.every_s = every_s
        close = outer.instruments["GC"].prev_close
        assert close is not None
        self.close = close
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="swings", daemon=True)

    def __enter__(self) -> Swings:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.outer.set_anchor("GC", self.close)  # back together: nothing more to enter

    def _run(self) -> None:
        rich = True
        while not self._stop.wait(self.every_s):
            self.outer.set_anchor("GC", self.close + (SWING if rich else -SWING))
            rich = not rich


SWING = Decimal("5.0")  # USD/oz either way: past the entry (2.0) at the prices a trade gets


@pytest.fixture
def crash_venues() -> Iterator[tuple[list[Venue], Arrivals]]:
    """The soak's two gold venues (deep books, 2 % of orders rejected, 10 % part-filled,
    the outer one answering 15 ms late, so that a kill often finds orders in flight), their
    market makers following their anchors at once, the gateway's two lines linked."""
    plan = SoakPlan(ack_delay_ms=15, linked_lines=True, seed=SEED)
    arrivals = Arrivals()
    venues = []
    for settings in venue_settings(plan):
        settings["comp_id"] = f"CRASH-{settings['id']}"
        settings["liquidity"]["reversion"] = 1.0
        venues.append(Venue(VenueConfig.model_validate(settings), arrivals))
    try:
        for venue in venues:
            venue.start()
            venue.link_clients(GW_PRIMARY, GW_BACKUP)
        yield venues, arrivals
    finally:
        for venue in venues:
            venue.retire()


def gateway_data(venues: list[Venue], work: Path) -> dict[str, Any]:
    """The soak's gateway (linked lines, risk that never refuses a sound order) with the
    admin API, and the demo's thresholds for the pair: enter past 2.0 USD/oz, close once
    back within 0.8, one unit at most."""
    plan = SoakPlan(linked_lines=True, seed=SEED)
    data: dict[str, Any] = soak_gateway_config(venues, work, plan).model_dump(mode="json")
    data["admin"] = {"host": "127.0.0.1", "port": 0, "token_env": "CMC_ADMIN_TOKEN"}
    data["pairs"][0].update(entry_spread="2.0", exit_spread="0.8", max_position=1)
    return data


@pytest.mark.fix
@pytest.mark.timeout(300)
def test_twenty_kill_9_restarts_lose_and_duplicate_no_order(
    tmp_path: Path, crash_venues: tuple[list[Venue], Arrivals]
) -> None:
    venues, arrivals = crash_venues
    rng = random.Random(SEED)
    config = tmp_path / "gateway.toml"
    write_config(config, gateway_data(venues, tmp_path))

    sent_per_cycle = []
    with Swings(venues[1]):
        for _ in range(CYCLES):
            before = sum(arrivals.count.values())
            gateway = GatewayProcess(tmp_path, config)
            # trading resumes once the recovered orders are settled: kill it somewhere after
            time.sleep(rng.uniform(0.4, 2.0))
            gateway.kill()
            sent_per_cycle.append(sum(arrivals.count.values()) - before)

    # A last, clean run with the markets back together: it settles what the last kill
    # left, closes the open unit, and is stopped properly.
    last = GatewayProcess(tmp_path, config)

    def settled() -> bool:
        working = last.get("/v1/orders?working=true")["orders"]
        (pair,) = last.get("/v1/positions")["pairs"]
        return (
            not working
            and not pair["trade_working"]
            and pair["units"] == 0
            and Decimal(pair["imbalance"]) == 0
        )

    assert wait_until(settled, 60, poll_s=0.2), (
        f"{last.get('/v1/positions')}\n{last.get('/v1/orders?working=true')}\n{last.tail()}"
    )
    orders = {o["first_clordid"]: o for o in last.get("/v1/orders")["orders"]}
    (pair,) = last.get("/v1/positions")["pairs"]
    assert last.stop() == 0, last.tail()

    # The venues' own records: every order that reached them, what filled, what works.
    seen: dict[str, tuple[str, int, int]] = {}
    for venue in venues:
        for client in (GW_PRIMARY, GW_BACKUP):
            for clordid, (cum, leaves) in venue.filled_by_clordid(client).items():
                seen[clordid] = (venue.id, cum, leaves)
    reached = set(arrivals.count)
    twice = {c: n for c, n in arrivals.count.items() if n > 1}
    assert not twice, f"ClOrdIDs that reached a venue more than once: {twice}"
    lost = reached - set(orders)
    assert not lost, f"orders the venues have and the gateway lost: {sorted(lost)[:10]}"
    for clordid in reached:
        venue_id, cum, leaves = seen[clordid]
        ours = orders[clordid]
        assert ours["venue"] == venue_id
        assert leaves == 0, f"{clordid} still working at {venue_id}"
        assert ours["filled"] == cum, (
            f"{clordid}: the gateway has {ours['filled']}, {venue_id} {cum}"
        )
        assert not ours["working"]
    for clordid in set(orders) - reached:  # the gateway's orders no venue ever saw
        assert orders[clordid]["status"] == "REJECTED" and orders[clordid]["filled"] == 0
    # The pair's legs are the venues' fills, each counted once: flat and aligned.
    net = {"AU": 0, "GC": 0}
    for clordid in reached:
        o = orders[clordid]
        net[o["symbol"]] += seen[clordid][1] if o["side"] == "BUY" else -seen[clordid][1]
    assert (pair["inner"]["lots"], pair["outer"]["lots"]) == (net["AU"], net["GC"]) == (0, 0)
    assert Decimal(pair["imbalance"]) == 0

    with ReceiptStore(f"sqlite:///{tmp_path / 'receipts.sqlite'}", migrate=False) as store:
        restored = store.query(kind="recovery.restored")
        never = [r for r in store.query(kind="alert.reconcile") if r.verdict == "never_arrived"]
        exec_ids = {
            r.exec_id
            for kind in ("event.execution", "fix.unrecorded")
            for r in store.query(kind=kind)
            if r.raw and fix_tags(r.raw).get(150) == ExecType.TRADE.value
        }
        from_log = Counter(
            f"{r.verdict} {r.data.get('msg_type')}"
            for r in store.query(kind="fix.unrecorded")
            if r.data.get("msg_type") in ("D", "F", "G", "8", "9")
        )
    recovered_working = sum(int(r.data["working"] or 0) for r in restored)
    # Twenty writers, each started while the one of the killed run could still be writing:
    # the hash chain shows that none of them wrote beside another.
    verify = subprocess.run(
        [CMC, "audit", "verify", "--db", f"sqlite:///{tmp_path / 'receipts.sqlite'}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    print(
        f"\ncrash recovery: {CYCLES} kill -9 cycles (+1 clean run); {len(reached)} orders "
        f"reached the venues ({len(orders)} in the gateway), {len(exec_ids)} fills; "
        f"{recovered_working} orders recovered working; {len(never)} judged never received; "
        f"from the FIX log alone: {from_log['out D']} orders sent, {from_log['in 8']} "
        f"execution reports; orders sent per cycle {sent_per_cycle}"
    )
    assert len(restored) == CYCLES + 1  # every start rebuilt from the store (the first: empty)
    assert sum(1 for n in sent_per_cycle if n) >= CYCLES // 2, "the gateway hardly traded"
