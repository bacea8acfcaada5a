"""The gateway's own audit trail, end to end over real FIX: its FIX log, and the halt.

The gateway logs every FIX message it sends and receives (quickfix's FileLog, in the
configuration's ``fix_log_dir``); after a run, ``reconcile`` must match its receipts one to
one with that log, and must report a message or a receipt taken away. Market data on a line
that is not the venue's active one leaves a receipt and never reaches the books. With the
receipt database gone and the spool full, the gateway sends nothing: the venues' own
records show no order.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from oms.audit.fixlog import message_files
from oms.audit.reconcile import FixLogSpec, reconcile
from oms.enums import Side
from oms.events import LineRole, MarketDataIgnored
from oms.receipt_writer import ReceiptLossError
from oms.receipts import ReceiptStore
from sessions.codec import market_data_request
from sessions.demo import gateway_config
from sessions.fixengine import data_dictionary, send_text
from sessions.gateway import Gateway, session_map
from sessions.simulator.client import FixClient
from sessions.simulator.venue import Venue
from sessions.tcp_relay import TcpRelay
from tests.conftest import GATEWAY_CLIENTS as CLIENTS
from tests.conftest import GOLD_INNER, GOLD_OUTER, wait_until
from tests.test_audit_reconcile import CMC, SOH, gateway_toml, run_one_trade
from tests.test_audit_spool import proxied  # noqa: F401  (a fixture)
from tests.test_gateway import rest
from tests.test_receipts import pg_url  # noqa: F401  (a fixture)

pytestmark = pytest.mark.fix


def reconcile_cli(toml: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CMC, "audit", "reconcile", "--config", str(toml), *extra],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "1000"},  # whole lines: no message wrapped
    )


def test_the_gateways_own_fix_log_matches_its_receipts_one_to_one(
    make_venue: Callable[..., Venue], make_client: Callable[..., FixClient], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'receipts.sqlite'}"
    config, venue_log = run_one_trade(make_venue, make_client, tmp_path, url)
    fix_log = config.fix_log_path()
    assert fix_log == tmp_path / "fixlog"
    names = [p.name for p in message_files(fix_log)]
    assert len(names) == 4, names  # both lines of both venues
    spec = FixLogSpec(fix_log, session_map(config))
    with ReceiptStore(url) as store:
        result = reconcile(store, spec)
        sent = store.query(kind="command.send_order")
    assert result.ok, ([m.text for m in result.unreceipted], result.unlogged)
    # both legs went out, each was acknowledged and filled, and both books were read
    assert result.matched["out D"] == 2 == len(sent)
    assert result.matched["in 8"] >= 4 and result.matched["in W"] >= 2
    assert result.not_receipted["out A"] >= 4 and result.not_receipted["out V"] >= 2
    assert result.messages == sum(result.matched.values()) + sum(result.not_receipted.values())
    # The gateway's log is the wire: what it sent is what the venues logged as received.
    with ReceiptStore(url) as store:
        theirs = reconcile(store, FixLogSpec(venue_log, session_map(config)))
    assert theirs.matched["out D"] == result.matched["out D"]
    assert theirs.matched["in 8"] == result.matched["in 8"]

    toml = tmp_path / "gateway.toml"
    toml.write_text(gateway_toml(config, url))
    done = reconcile_cli(toml)  # the FIX log of the configuration, no --fix-log needed
    assert done.returncode == 0, done.stdout + done.stderr
    assert "matched: out D" in done.stdout and "OK" in done.stdout

    # A message taken out of the log: its receipt is reported as not logged.
    cut_log = tmp_path / "fixlog-cut"
    shutil.copytree(fix_log, cut_log)
    path = next(p for p in message_files(cut_log) if f"{SOH}35=8{SOH}" in p.read_text())
    lines = path.read_text().splitlines(keepends=True)
    removed = next(line for line in lines if f"{SOH}35=8{SOH}" in line)
    path.write_text("".join(line for line in lines if line is not removed))
    with ReceiptStore(url) as store:
        cut = reconcile(store, FixLogSpec(cut_log, session_map(config)))
    assert not cut.ok and cut.unreceipted == []
    sender, seq_num = (removed.split(f"{SOH}{tag}=", 1)[1].split(SOH, 1)[0] for tag in (49, 34))
    [(_, kind, what)] = cut.unlogged
    assert kind == "event.execution" and what.startswith(f"in {sender} ") and seq_num in what
    done = reconcile_cli(toml, "--fix-log", str(cut_log))
    assert done.returncode == 1 and "GAPS" in done.stdout, done.stdout + done.stderr
    assert "not in the log" in done.stdout

    # A receipt taken out of the store (on a copy, past its append-only guard): the order
    # in the log is reported as having none.
    copy = tmp_path / "tampered.sqlite"
    shutil.copy(tmp_path / "receipts.sqlite", copy)
    with sqlite3.connect(copy) as db:
        db.execute("DROP TRIGGER receipts_append_only_delete")
        clordid = db.execute(
            "SELECT clordid FROM receipts WHERE kind = 'command.send_order' ORDER BY seq"
        ).fetchone()[0]
        db.execute(
            "DELETE FROM receipts WHERE kind = 'command.send_order' AND clordid = ?", [clordid]
        )
    with ReceiptStore(f"sqlite:///{copy}", migrate=False) as store:
        missing = reconcile(store, spec)
    assert [(m.msg_type, m.tags.get(11)) for m in missing.unreceipted] == [("D", clordid)]
    assert missing.unlogged == []
    done = reconcile_cli(toml, "--db", f"sqlite:///{copy}")
    assert done.returncode == 1 and "no receipt" in done.stdout and clordid in done.stdout


def test_market_data_on_a_line_that_is_not_active_leaves_a_receipt_and_no_book_change(
    make_venue: Callable[..., Venue], make_client: Callable[..., FixClient], tmp_path: Path
) -> None:
    inner = make_venue(id="INNER", comp_id="INNER", clients=CLIENTS, instruments=[GOLD_INNER])
    outer = make_venue(id="OUTER", comp_id="OUTER", clients=CLIENTS, instruments=[GOLD_OUTER])
    rest(make_client(inner, "T1"), "AU", Side.SELL, 5, "561.00")
    rest(make_client(outer, "T1"), "GC", Side.SELL, 5, "2410.0")
    config = gateway_config([inner, outer], tmp_path)
    gateway = Gateway(config)
    ignored: list[MarketDataIgnored] = []
    gateway.oms.hooks.append(
        lambda event, _oms: ignored.append(event) if isinstance(event, MarketDataIgnored) else None
    )
    try:
        gateway.start()
        assert gateway.wait_ready(20), "the gateway did not log on to both venues"
        link = gateway.sessions.links["INNER"]
        backup = link.lines[LineRole.BACKUP]
        assert wait_until(lambda: backup.logged_on, 10), "the backup line did not log on"
        assert link.active is LineRole.PRIMARY

        def book_updated(oms: Any) -> int:
            return int(oms.market.books[("INNER", "AU")].updated_ns)

        before = gateway.oms.call(book_updated)
        seen = len(ignored)  # the backup may have streamed already while the primary logged on

        def standby() -> list[MarketDataIgnored]:
            return [e for e in ignored[seen:] if e.venue == "INNER"]

        # The venue streams to whichever session subscribes: here the standby line, as it
        # does after a switch until the unsubscription reaches it.
        sent = send_text(
            market_data_request("STANDBY-1", ["AU"], 5), backup.session_id, data_dictionary()
        )
        assert sent
        assert wait_until(lambda: len(standby()) >= 1, 10), "no market data came on the backup"
        assert gateway.oms.call(book_updated) == before  # the books never saw it
    finally:
        gateway.stop()

    first = standby()[0]
    assert (first.venue, first.line, first.snapshot, first.symbols) == (
        "INNER",
        LineRole.BACKUP,
        True,
        "AU",
    )
    with ReceiptStore(config.receipts_url) as store:
        receipts = store.query(kind="event.market_data_ignored")
        result = reconcile(store, FixLogSpec(config.fix_log_path(), session_map(config)))
    assert len(receipts) == len(ignored) and {r.line for r in receipts} == {"backup"}
    mine = [r for r in receipts if r.cause_ns == first.recv_ns]
    assert [(r.venue, r.symbol, r.data["snapshot"]) for r in mine] == [("INNER", "AU", 1)]
    assert mine[0].data["sending_ns"] == first.sending_ns
    assert "active line" in str(mine[0].reason)
    # every such message is in the log and matched by its receipt, one to one
    assert result.ok, ([m.text for m in result.unreceipted], result.unlogged)
    assert result.matched["in W"] >= 2 + sum(1 for r in receipts if r.data["snapshot"])


def test_no_order_goes_out_while_receipts_cannot_be_kept(
    proxied: tuple[str, str, TcpRelay],  # noqa: F811
    make_venue: Callable[..., Venue],
    make_client: Callable[..., FixClient],
    tmp_path: Path,
) -> None:
    """The receipt database becomes unreachable and the spool cannot take a byte: the
    writer halts, and a spread the gateway would trade at once is not traded."""
    direct, url, proxy = proxied
    inner = make_venue(id="INNER", comp_id="INNER", clients=CLIENTS, instruments=[GOLD_INNER])
    outer = make_venue(id="OUTER", comp_id="OUTER", clients=CLIENTS, instruments=[GOLD_OUTER])
    maker_in, maker_out = make_client(inner, "T1"), make_client(outer, "T1")
    # Both books, priced with no spread worth trading (as in test_gateway, the wrong way).
    rest(maker_in, "AU", Side.BUY, 30, "559.90")
    rest(maker_out, "GC", Side.SELL, 10, "2406.5")
    config = gateway_config([inner, outer], tmp_path).model_copy(
        update={
            "receipts_url": url,
            "receipt_spool_dir": tmp_path / "spool",
            "receipt_spool_max_bytes": 1,
        }
    )
    gateway = Gateway(config)
    try:
        gateway.start()
        assert gateway.wait_ready(20), "the gateway did not log on to both venues"
        assert wait_until(lambda: gateway.receipts.stats().written > 0, 10)
        assert gateway.receipts.halted is None

        proxy.cut()
        rest(maker_in, "AU", Side.BUY, 1, "559.80")  # market data: receipts to keep
        assert wait_until(lambda: gateway.receipts.halted is not None, 20), "no halt"
        assert "spool" in str(gateway.receipts.halted)

        # Now the spread is there: inner ask 560.00 against outer bid 2406.0 (3.5 USD/oz).
        rest(maker_in, "AU", Side.SELL, 30, "560.00")
        rest(maker_out, "GC", Side.BUY, 10, "2406.0")

        def refused(oms: Any) -> bool:
            return any(o.pair_id is not None for o in oms.orders.all())

        assert wait_until(lambda: gateway.oms.call(refused), 10), "the gateway never tried"
        # What each venue's own books say the gateway sent: nothing, on either line.
        for venue in (inner, outer):
            for line in ("GW-PRI", "GW-BAK"):
                assert venue.filled_by_clordid(line) == {}, (venue.id, line)
        assert gateway.receipts.halted is not None
        with pytest.raises(ReceiptLossError):
            gateway.stop()  # receipts it could not keep are reported, held in memory
    finally:
        gateway.stop()

    held = gateway.receipts.unwritten()
    orders = [r for r in held if r.kind == "command.send_order"]
    assert orders and all(r.verdict == "not sent" for r in orders), orders
    assert {r.venue for r in orders} <= {"INNER", "OUTER"}
    assert any(r.kind == "decision.spread_intent" for r in held)
    with ReceiptStore(direct) as store:  # what was kept before the outage is all there is
        assert store.count(kind="command.send_order") == 0
