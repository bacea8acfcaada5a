"""Nothing lost when the database goes away: the spool, the replay, the halt.

The PostgreSQL outage is real but private to the test: the writer reaches the server
through a small TCP proxy on 127.0.0.1 that the test opens and cuts (listener closed,
every connection reset), so the server itself, shared with others, never stops.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from oms.audit.verify import verify_chain
from oms.receipt_chain import Chain
from oms.receipt_spool import SPOOL_FILE, Spool, SpoolFull
from oms.receipt_writer import ReceiptWriter
from oms.receipts import Receipt, ReceiptStore, as_fields
from sessions.tcp_relay import TcpRelay
from tests.test_audit_chain import BASE_NS, trade_receipts
from tests.test_receipts import pg_url  # noqa: F401  (a fixture)


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll ``predicate``: a bound on waiting for another process, not a timing assertion."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def proxied(pg_url: str) -> Iterator[tuple[str, str, TcpRelay]]:  # noqa: F811
    """(the store's URL, the same through the proxy, the proxy)."""
    direct = make_url(pg_url)
    proxy = TcpRelay((direct.host or "127.0.0.1", direct.port or 5432))
    proxy.open()
    url = direct.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    yield pg_url, url, proxy
    proxy.cut()


def later(trades: int, offset_s: int) -> list[Receipt]:
    return trade_receipts(trades, start_ns=BASE_NS + offset_s * 10**9, first=offset_s)


def stored_in_order(url: str) -> list[Receipt]:
    with ReceiptStore(url) as store:
        stored = store.stored()
        assert [seq for seq, _ in stored] == list(range(1, len(stored) + 1))
        assert verify_chain(store).ok
        return [r for _, r in stored]


def test_cutting_postgresql_mid_run_loses_nothing(
    proxied: tuple[str, str, TcpRelay], tmp_path: Path
) -> None:
    direct, url, proxy = proxied
    spool_dir = tmp_path / "spool"
    writer = ReceiptWriter(
        url, spool_dir=spool_dir, batch_size=100, interval_ms=10.0, retry_ms=100.0
    ).start()
    before, during, after = later(20, 0), later(30, 100), later(10, 200)
    for receipt in before:
        writer.append(receipt)
    wait_until(lambda: writer.stats().written == len(before), "the first receipts committed")

    proxy.cut()
    for receipt in during:
        writer.append(receipt)
    wait_until(lambda: writer.stats().spooled == len(during), "the outage's receipts spooled")
    stats = writer.stats()
    assert stats.written == len(before) and stats.unconfirmed == 0 and stats.retries >= 1
    assert writer.halted is None  # spooling keeps the audit trail: trading goes on
    assert len(Spool(spool_dir)) == len(during)
    with ReceiptStore(direct) as store:
        assert store.count() == len(before)

    proxy.open()
    wait_until(lambda: writer.stats().spooled == 0, "the spool replayed")
    for receipt in after:
        writer.append(receipt)
    total = len(before) + len(during) + len(after)
    assert writer.close() == total
    assert writer.stats().written == total and writer.stats().lost == 0
    assert not (spool_dir / SPOOL_FILE).exists()
    assert stored_in_order(direct) == before + during + after


def test_a_spool_left_at_close_is_replayed_by_the_next_writer(
    proxied: tuple[str, str, TcpRelay], tmp_path: Path
) -> None:
    direct, url, proxy = proxied
    spool_dir = tmp_path / "spool"
    writer = ReceiptWriter(url, spool_dir=spool_dir, interval_ms=10.0, retry_ms=100.0).start()
    before, during = later(10, 0), later(10, 100)
    for receipt in before:
        writer.append(receipt)
    wait_until(lambda: writer.stats().written == len(before), "the first receipts committed")
    proxy.cut()
    for receipt in during:
        writer.append(receipt)
    # the gateway stops during the outage: everything is kept, part of it in the spool
    assert writer.close() == len(before) + len(during)
    assert writer.stats().spooled == len(during)
    assert len(Spool(spool_dir)) == len(during)

    proxy.open()
    next_run = later(5, 200)
    writer = ReceiptWriter(url, spool_dir=spool_dir, interval_ms=10.0).start()
    for receipt in next_run:
        writer.append(receipt)
    assert writer.close() == len(next_run)
    assert not (spool_dir / SPOOL_FILE).exists()
    assert stored_in_order(direct) == before + during + next_run


def test_a_full_spool_halts_trading_until_the_store_is_back(
    proxied: tuple[str, str, TcpRelay], tmp_path: Path
) -> None:
    direct, url, proxy = proxied
    writer = ReceiptWriter(
        url,
        spool_dir=tmp_path / "spool",
        spool_max_bytes=30_000,
        batch_size=24,
        interval_ms=10.0,
        retry_ms=100.0,
    ).start()
    receipts = later(30, 0)
    first, rest = receipts[:48], receipts[48:]
    for receipt in first:
        writer.append(receipt)
    wait_until(lambda: writer.stats().written == len(first), "the first receipts committed")
    proxy.cut()
    for receipt in rest:
        writer.append(receipt)
    wait_until(lambda: writer.halted is not None, "the halt")
    assert "spool" in str(writer.halted) and "limit" in str(writer.halted)
    stats = writer.stats()
    assert 0 < stats.spooled < len(rest)
    assert stats.unconfirmed == len(rest) - stats.spooled  # held in memory, not lost
    assert stats.dropped == 0

    proxy.open()
    wait_until(lambda: writer.halted is None, "the end of the halt")
    assert writer.close() == len(receipts)
    assert stored_in_order(direct) == receipts


# --- the spool file itself --------------------------------------------------------------------


def sealed(n: int) -> list[tuple[object, ...]]:
    rows, _ = Chain().seal([as_fields(r) for r in trade_receipts(n)])
    return list(rows)


def test_spool_round_trips_sealed_rows_and_refuses_past_its_limit(tmp_path: Path) -> None:
    rows = sealed(3)
    spool = Spool(tmp_path / "spool", max_bytes=10_000)
    assert spool.last() is None and len(spool) == 0
    spool.append(rows[:10])  # type: ignore[arg-type]
    assert list(spool.rows()) == rows[:10] and spool.last() == rows[9]
    size = spool.size
    with pytest.raises(SpoolFull, match="limit of 10,000"):
        spool.append(rows[10:])  # type: ignore[arg-type]
    assert spool.size == size and len(spool) == 10  # nothing of the refused batch stayed
    assert oct(os.stat(spool.path).st_mode & 0o777) == "0o600"
    spool.discard()
    assert not spool.path.exists() and len(spool) == 0


def test_spool_passes_over_a_write_cut_short(tmp_path: Path) -> None:
    rows = sealed(1)
    spool = Spool(tmp_path)
    spool.append(rows[:3])  # type: ignore[arg-type]
    with spool.path.open("ab") as handle:  # the disk filled up inside the next batch's write
        handle.write((json.dumps(rows[3]) + "\n" + json.dumps(rows[4])[:20]).encode())
    assert list(spool.rows()) == rows[:4]  # what is whole is read, the cut line is not
    spool.append(rows[3:6])  # type: ignore[arg-type]  (the batch written again)
    assert list(spool.rows()) == rows[:6]  # each seq once, in order
