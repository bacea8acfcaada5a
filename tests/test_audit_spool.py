"""Nothing lost when the database goes away: the spool, the replay, the halt.

The PostgreSQL outage is real but private to the test: the writer reaches the server
through a small TCP proxy on 127.0.0.1 that the test opens and cuts (listener closed,
every connection reset), so the server itself, shared with others, never stops.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from oms.audit.verify import verify_chain
from oms.receipt_chain import Chain
from oms.receipt_spool import SPOOL_FILE, Spool, SpoolFull
from oms.receipt_writer import ReceiptLossError, ReceiptWriter
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


def server_sessions(direct: str, where: str, **params: object) -> int:
    """Sessions of the server matching ``where`` (pg_stat_activity), seen directly."""
    engine = sa.create_engine(direct)
    try:
        with engine.connect() as conn:
            query = f"SELECT count(*) FROM pg_stat_activity WHERE {where}"
            return int(conn.execute(sa.text(query), params).scalar_one())
    finally:
        engine.dispose()


def test_cut_in_the_middle_of_a_commit_and_restored_just_before_close(
    proxied: tuple[str, str, TcpRelay], tmp_path: Path
) -> None:
    """The outage begins while the writer waits for the server's answer to a COPY, the
    receipts keep coming (thousands of them, spooled), and the database comes back only
    as the gateway stops: the close replays the spool, and every receipt is in the table
    once, in order, the chain unbroken."""
    direct, url, proxy = proxied
    spool_dir = tmp_path / "spool"
    # No replay before the close asks for one: the first attempt, during the outage, fails,
    # and the next would come only after a minute.
    writer = ReceiptWriter(
        url, spool_dir=spool_dir, batch_size=500, interval_ms=10.0, retry_ms=60_000.0
    ).start()
    before, during, after = later(20, 0), later(2_000, 10_000), later(200, 20_000)
    for receipt in before:
        writer.append(receipt)
    wait_until(lambda: writer.stats().written == len(before), "the first receipts committed")

    # Another session locks the table: the writer's next COPY waits on the server, inside
    # its transaction, for an answer. The cut comes then.
    blocker = sa.create_engine(direct).connect()
    try:
        blocker.exec_driver_sql("LOCK TABLE receipts IN SHARE MODE")
        writer.append(during[0])
        copy_waits = "wait_event_type = 'Lock' AND query LIKE 'COPY%'"
        wait_until(lambda: server_sessions(direct, copy_waits) == 1, "the writer's COPY waiting")
        proxy.cut()
        for receipt in during[1:]:
            writer.append(receipt)
        wait_until(lambda: writer.stats().spooled == len(during), "the outage's receipts spooled")
    finally:
        blocker.rollback()
        blocker.close()
        blocker.engine.dispose()
    assert writer.halted is None and writer.stats().unconfirmed == 0

    proxy.open()
    for receipt in after:
        writer.append(receipt)
    total = len(before) + len(during) + len(after)
    assert writer.close() == total
    stats = writer.stats()
    assert stats.written == total and stats.spooled == 0 and stats.lost == 0
    assert not (spool_dir / SPOOL_FILE).exists()
    assert stored_in_order(direct) == before + during + after


def test_a_store_that_stops_answering_is_broken_off_spooled_and_replayed(
    proxied: tuple[str, str, TcpRelay], tmp_path: Path
) -> None:
    """A partition: no reset reaches either end, libpq would wait for an answer for ever.
    The writer breaks the stalled connection off and spools; once the network is back it
    ends the server's session that the partition left behind, then replays."""
    direct, url, proxy = proxied
    url = make_url(url).update_query_dict({"connect_timeout": "1"}).render_as_string(False)
    spool_dir = tmp_path / "spool"
    writer = ReceiptWriter(
        url,
        spool_dir=spool_dir,
        batch_size=100,
        interval_ms=10.0,
        retry_ms=100.0,
        stall_ms=500.0,
    ).start()
    before, during, after = later(10, 0), later(100, 1_000), later(10, 2_000)
    for receipt in before:
        writer.append(receipt)
    wait_until(lambda: writer.stats().written == len(before), "the first receipts committed")

    frozen = proxy.freeze()
    assert frozen  # the writer's connection, idle in its pool
    for receipt in during:
        writer.append(receipt)
    wait_until(lambda: writer.stats().spooled == len(during), "the outage's receipts spooled")
    assert any("no progress" in e for e in writer.stats().errors)
    assert writer.halted is None
    ports = ",".join(map(str, frozen))
    left_behind = f"client_port IN ({ports}) AND client_addr = '127.0.0.1'"
    assert server_sessions(direct, left_behind) == 1  # the server does not know

    proxy.open()
    wait_until(lambda: writer.stats().spooled == 0, "the spool replayed")
    wait_until(lambda: server_sessions(direct, left_behind) == 0, "the stale session ended")
    for receipt in after:
        writer.append(receipt)
    total = len(before) + len(during) + len(after)
    assert writer.close() == total
    assert stored_in_order(direct) == before + during + after


def test_a_close_during_a_partition_spools_everything_and_says_where(
    proxied: tuple[str, str, TcpRelay], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The gateway stops while the store does not answer at all: the close does not hang
    on libpq, every receipt is in the spool, and the log says which; the next writer,
    once the store is back, puts them in."""
    direct, url, proxy = proxied
    url = make_url(url).update_query_dict({"connect_timeout": "1"}).render_as_string(False)
    spool_dir = tmp_path / "spool"
    writer = ReceiptWriter(
        url, spool_dir=spool_dir, interval_ms=10.0, retry_ms=100.0, stall_ms=500.0
    ).start()
    before, during = later(10, 0), later(300, 1_000)
    for receipt in before:
        writer.append(receipt)
    wait_until(lambda: writer.stats().written == len(before), "the first receipts committed")
    proxy.freeze()
    for receipt in during:
        writer.append(receipt)
    with caplog.at_level(logging.WARNING, logger="oms.receipt_writer"):
        assert writer.close(timeout=20.0) == len(before) + len(during)
    assert writer.stats().spooled == len(during) and writer.stats().lost == 0
    assert len(Spool(spool_dir)) == len(during)
    assert any(str(spool_dir) in r.getMessage() for r in caplog.records)

    proxy.cut()  # the partition ends the hard way for what it froze
    proxy.open()
    writer = ReceiptWriter(url, spool_dir=spool_dir, interval_ms=10.0).start()
    assert writer.close() == 0
    assert stored_in_order(direct) == before + during


def test_close_waits_as_long_as_the_writer_makes_progress(
    pg_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A close is bounded by time without progress, not by time: a backlog that takes
    longer than ``timeout`` to write is written."""
    # 18,000 receipts in commits of a few dozen: far longer than the timeout in all.
    receipts = later(2_000, 0)
    writer = ReceiptWriter(pg_url, spool_dir=tmp_path / "spool", batch_size=20).start()
    for receipt in receipts:
        writer.append(receipt)
    assert writer.close(timeout=0.5) == len(receipts)
    assert stored_in_order(pg_url) == receipts


def test_a_writer_that_keeps_nothing_is_given_up_on(
    pg_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """...and a writer that keeps nothing for ``timeout`` is given up on, its receipts
    reported and handed over, never silently lost."""
    writer = ReceiptWriter(pg_url, spool_dir=tmp_path / "spool").start()
    assert writer.pid is not None
    os.kill(writer.pid, signal.SIGSTOP)  # alive, and keeping nothing
    try:
        for receipt in later(10, 0):
            writer.append(receipt)
        with pytest.raises(ReceiptLossError) as lost:
            writer.close(timeout=1.0)
        assert lost.value.unconfirmed == 90
        assert "kept nothing for 1 s" in str(lost.value)
        assert len(writer.unwritten()) == 90
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(writer.pid, signal.SIGCONT)


# --- the relay the tests cut ------------------------------------------------------------------


def test_a_cut_resets_every_relayed_connection_on_both_sides() -> None:
    """Even where a relay thread sits in recv() on the connection: a close() alone from
    another thread would leave it up, both ends waiting on each other."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()[0]))
    thread.start()
    relay = TcpRelay(server.getsockname()[:2])
    relay.open()
    client = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
    thread.join(5)
    (upstream,) = accepted
    upstream.settimeout(5)
    client.sendall(b"ping")
    assert upstream.recv(4) == b"ping"
    relay.cut()
    for end in (client, upstream):
        with pytest.raises(ConnectionResetError):
            end.recv(4)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", relay.port), timeout=5)
    for sock in (client, upstream, server):
        sock.close()


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
