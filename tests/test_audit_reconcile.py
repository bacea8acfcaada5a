"""Receipts against the FIX messages on the wire, one to one, from a real gateway run.

Two simulated venues log every FIX message through quickfix's FileLog; the gateway trades
one spread (as in test_gateway.py) and records its receipts in SQLite or in PostgreSQL.
The venues' logs are the wire seen from the other end: what they received the gateway
sent, what they sent the gateway received. Every such message must match exactly one
receipt, and every receipt that says a message went or came must match one in the log.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from oms.audit.reconcile import (
    RECONCILE_KIND,
    UNRECORDED_KIND,
    FixLogSpec,
    reconcile,
)
from oms.enums import Side
from oms.receipt_writer import ReceiptWriter
from oms.receipts import Receipt, ReceiptStore
from sessions.demo import gateway_config
from sessions.gateway import Gateway, session_map
from sessions.gateway_config import GatewayConfig
from sessions.simulator.client import FixClient
from sessions.simulator.venue import Venue
from tests.conftest import GATEWAY_CLIENTS as CLIENTS
from tests.conftest import GOLD_INNER, GOLD_OUTER, wait_until
from tests.test_gateway import rest
from tests.test_receipts import pg_url  # noqa: F401  (a fixture)

pytestmark = pytest.mark.fix

CMC = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "cmc")
SOH = "\x01"


def run_one_trade(
    make_venue: Callable[..., Venue],
    make_client: Callable[..., FixClient],
    work: Path,
    receipts_url: str,
) -> tuple[GatewayConfig, Path]:
    """One spread trade through a real gateway; returns its config and the venues' log."""
    log_dir = work / "venue-log"
    inner = make_venue(
        id="INNER", comp_id="INNER", clients=CLIENTS, instruments=[GOLD_INNER], log_dir=log_dir
    )
    outer = make_venue(
        id="OUTER", comp_id="OUTER", clients=CLIENTS, instruments=[GOLD_OUTER], log_dir=log_dir
    )
    maker_in, maker_out = make_client(inner, "T1"), make_client(outer, "T1")
    rest(maker_in, "AU", Side.SELL, 30, "560.00")
    rest(maker_in, "AU", Side.BUY, 30, "559.90")
    rest(maker_out, "GC", Side.BUY, 10, "2406.0")
    rest(maker_out, "GC", Side.SELL, 10, "2406.5")
    config = gateway_config([inner, outer], work).model_copy(update={"receipts_url": receipts_url})
    gateway = Gateway(config)
    try:
        gateway.start()
        assert gateway.wait_ready(20), "the gateway did not log on to both venues"

        def done(oms: Any) -> Any:
            return len(oms.pairs["GOLD"].done) == 1

        assert wait_until(lambda: gateway.oms.call(done), 10), "the spread trade did not finish"
    finally:
        gateway.stop()
    return config, log_dir


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_receipts_match_the_fix_messages_one_to_one(
    backend: str,
    request: pytest.FixtureRequest,
    make_venue: Callable[..., Venue],
    make_client: Callable[..., FixClient],
    tmp_path: Path,
) -> None:
    url = (
        f"sqlite:///{tmp_path / 'receipts.sqlite'}"
        if backend == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    config, log_dir = run_one_trade(make_venue, make_client, tmp_path, url)
    sessions = session_map(config)
    spec = FixLogSpec(log_dir, sessions)
    with ReceiptStore(url) as store:
        first = reconcile(store, spec)
    assert first.unlogged == []  # every receipt of a message sent or received is on the wire
    # and every message has its receipt, market data on a line that was not the venue's
    # active one too (the backup line, when it logged on first and subscribed before the
    # primary took over): not applied, but recorded.
    assert first.unreceipted == [], [m.text.replace(SOH, "|") for m in first.unreceipted]
    with ReceiptStore(url) as store:
        ignored = store.query(kind="event.market_data_ignored")
    assert all(r.line == "backup" for r in ignored), ignored

    # The gateway's next start reconciles its own FIX log before anything else.
    again = Gateway(config)
    again.receipts.start()
    again.receipts.close()

    with ReceiptStore(url) as store:
        result = reconcile(store, spec)
        sent = store.query(kind="command.send_order")
        recovered = store.query(kind=UNRECORDED_KIND)
        summary = store.query(kind=RECONCILE_KIND)[-1]
    assert [r.raw for r in recovered] == [m.text for m in first.unreceipted]
    assert summary.data["unreceipted"] == len(first.unreceipted)
    assert summary.verdict == "ok" and int(summary.data["matched"] or 0) > 5, summary
    assert result.ok, ([m.text for m in result.unreceipted], result.unlogged)
    # both legs went out, each was acknowledged and filled, and both books were read
    assert result.matched["out D"] == 2 == len(sent)
    assert result.matched["in 8"] >= 4
    assert result.matched["in W"] >= 2
    # logons, heartbeats and market data subscriptions are counted, never receipted
    assert result.not_receipted["out A"] >= 2 and result.not_receipted["out V"] >= 2
    assert result.messages == sum(result.matched.values()) + sum(result.not_receipted.values())

    # the same through the CLI, as an operator runs it
    toml = tmp_path / "gateway.toml"
    toml.write_text(gateway_toml(config, url))
    done = subprocess.run(
        [CMC, "audit", "reconcile", "--config", str(toml), "--fix-log", str(log_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "matched: out D" in done.stdout and "OK" in done.stdout


def gateway_toml(config: GatewayConfig, url: str) -> str:
    """The gateway configuration as an operator's TOML file."""
    lines = [f'receipts_url = "{url}"', f'store_dir = "{config.store_dir}"', ""]
    fx = ", ".join(f'{code} = "{rate}"' for code, rate in config.risk.fx.items())
    lines += ["[risk]", f"fx = {{ {fx} }}", ""]
    for venue in config.venues:
        lines += ["[[venues]]", f'id = "{venue.id}"']
        for instrument in venue.instruments:
            lines.append("[[venues.instruments]]")
            for key, value in instrument.model_dump(exclude_none=True).items():
                text = f'"{value.value if hasattr(value, "value") else value}"'
                lines.append(f"{key} = {value if isinstance(value, int) else text}")
        for line in venue.lines:
            lines += [
                "[[venues.lines]]",
                f'role = "{line.role.value}"',
                f"port = {line.port}",
                f'sender_comp_id = "{line.sender_comp_id}"',
                f'target_comp_id = "{line.target_comp_id}"',
            ]
        lines.append("")
    return "\n".join(lines)


def test_start_records_what_the_log_has_and_the_store_lacks(
    make_venue: Callable[..., Venue], make_client: Callable[..., FixClient], tmp_path: Path
) -> None:
    """A message in the FIX log with no receipt (the gateway died before recording it) gets
    one when the next writer starts; the start after that finds nothing new."""
    url = f"sqlite:///{tmp_path / 'receipts.sqlite'}"
    config, log_dir = run_one_trade(make_venue, make_client, tmp_path, url)
    spec = FixLogSpec(tmp_path / "fixlog-copy", session_map(config))
    shutil.copytree(log_dir, spec.directory)
    # An execution report the gateway received and never recorded (it died first): the
    # last one logged, again under the next sequence number.
    path = next(spec.directory.glob("*INNER*GW-PRI.messages.current.log"))
    lines = path.read_text().splitlines()
    report = next(line for line in reversed(lines) if f"{SOH}35=8{SOH}" in line)
    last_seq_num = max(int(re.search(f"{SOH}34=(\\d+){SOH}", x)[1]) for x in lines)  # type: ignore[index]
    extra = re.sub(f"{SOH}34=\\d+{SOH}", f"{SOH}34={last_seq_num + 1}{SOH}", report, count=1)
    with path.open("a") as handle:
        handle.write(extra + "\n")

    with ReceiptStore(url) as store:
        before = store.count()
        expected = [m.text for m in reconcile(store, spec).unreceipted]
    assert extra.split(" : ", 1)[1] in expected
    ReceiptWriter(url, spool_dir=tmp_path / "spool", fix_log=spec).start().close()
    with ReceiptStore(url) as store:
        added = [r for _, r in store.stored(after_seq=before)]
    assert [r.kind for r in added] == [UNRECORDED_KIND] * len(expected) + [RECONCILE_KIND]
    assert [r.raw for r in added[:-1]] == expected
    unrecorded = next(r for r in added if r.raw == extra.split(" : ", 1)[1])
    assert (unrecorded.venue, unrecorded.line, unrecorded.verdict) == ("INNER", "primary", "in")
    assert unrecorded.clordid is not None and unrecorded.exec_id is not None
    assert unrecorded.data["msg_seq_num"] == str(last_seq_num + 1)
    summary = added[-1]
    assert summary.verdict == "gaps" and summary.data["unreceipted"] == len(expected)
    assert summary.data["unlogged"] == 0 and int(summary.data["matched"] or 0) > 5

    # the next start reads only what was logged since: nothing
    ReceiptWriter(url, spool_dir=tmp_path / "spool", fix_log=spec).start().close()
    with ReceiptStore(url) as store:
        again = store.stored(after_seq=before + len(expected) + 1)
        # and a full reconciliation now matches everything, the recovered messages included
        full = reconcile(store, spec)
    assert [r.kind for _, r in again] == [RECONCILE_KIND]
    assert again[0][1].verdict == "ok" and again[0][1].data["messages"] == 0
    assert full.ok, (full.unreceipted, full.unlogged)


def test_a_receipt_without_its_message_is_reported(
    make_venue: Callable[..., Venue], make_client: Callable[..., FixClient], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'receipts.sqlite'}"
    config, log_dir = run_one_trade(make_venue, make_client, tmp_path, url)
    with ReceiptStore(url) as store:
        last_ts = store.all()[-1].ts_ns
        store.append_batch(
            [
                Receipt.of(
                    "command.send_order",
                    ts_ns=last_ts,
                    venue="INNER",
                    clordid="NEVER-SENT-1",
                    verdict="sent",
                    data={"qty": 1, "price": Decimal("560.00")},
                )
            ]
        )
        result = reconcile(store, FixLogSpec(log_dir, session_map(config)))
    assert not result.ok
    assert [(kind, what) for _, kind, what in result.unlogged] == [
        ("command.send_order", "out NEVER-SENT-1")
    ]
