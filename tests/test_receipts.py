"""Receipts: the append-only store (SQLite files, PostgreSQL), its migrations and the writer.

No mocks: every store is a real SQLite file under tmp_path (or a real PostgreSQL schema), and
every writer runs a real ``spawn``ed process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from oms.audit.verify import verify_chain
from oms.events import LineRole
from oms.receipt_migrations import HEAD, VERSION_TABLE, current_revision
from oms.receipt_writer import ReceiptLossError, ReceiptWriter, ReceiptWriterError
from oms.receipts import FIELD_NAMES, RECEIPTS, Base, Receipt, ReceiptStore

SOH = "\x01"
RAW_ER = (
    SOH.join(
        [
            "8=FIX.4.4",
            "9=178",
            "35=8",
            "49=VENUE",
            "56=GW",
            "34=12",
            "52=20240601-09:30:00.123456",
            "37=V-1",
            "11=C-1",
            "17=E-1",
            "150=F",
            "39=2",
            "55=AU2406",
            "54=1",
            "38=3",
            "32=3",
            "31=560.02",
            "14=3",
            "151=0",
            "6=560.02",
            "10=123",
        ]
    )
    + SOH
)


def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 20.0) -> None:
    """Poll ``predicate``: a bound on waiting for another process, not a timing assertion."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def sqlite_url(tmp_path: Path, name: str = "receipts.sqlite") -> str:
    return f"sqlite:///{tmp_path / name}"


def numbered(n: int, start: int = 0) -> list[Receipt]:
    """``n`` receipts whose clordid and ts_ns carry their index."""
    base = 1_717_200_000_000_000_000
    return [
        Receipt.of(
            "event.execution",
            ts_ns=base + i * 1_000,
            cause_ns=base + i * 1_000 - 250,
            venue="SHFE" if i % 2 else "LME",
            clordid=f"C{i}",
            exec_id=f"E{i}",
            raw=RAW_ER,
            data={"last_px": Decimal("560.02"), "last_qty": i},
        )
        for i in range(start, start + n)
    ]


def full_receipt() -> Receipt:
    return Receipt.of(
        "event.execution",
        ts_ns=1_717_200_000_123_456_789,
        cause_ns=1_717_200_000_123_400_000,
        venue="SHFE",
        line=LineRole.BACKUP,
        symbol="AU2406",
        clordid="C-1",
        venue_order_id="V-1",
        exec_id="E-1",
        pair_id="P-7",
        verdict="accepted",
        reason="fill within band: ¥ 560.02 ≤ 593.60",
        raw=RAW_ER,
        data={
            "last_px": Decimal("560.02"),
            "pay_up": Decimal("-0.00"),
            "tiny": Decimal("1E-9"),
            "last_qty": 3,
            "big": 2**62,
            "account": None,
            "note": "ünïcode ✓",
        },
    )


def sparse_receipt() -> Receipt:
    """Only the required fields: every optional one None, data empty."""
    return Receipt("line.state", ts_ns=-1)


# --- Receipt ----------------------------------------------------------------------------------


def test_receipt_of_computes_latency_and_stores_decimals_as_strings() -> None:
    r = full_receipt()
    assert r.latency_ns == 56_789
    assert r.line == "backup"
    assert type(r.line) is str
    assert r.data["last_px"] == "560.02" and type(r.data["last_px"]) is str
    assert r.data["pay_up"] == "-0.00"
    assert Decimal(str(r.data["tiny"])) == Decimal("1E-9")
    assert Receipt.of("line.state", ts_ns=5).latency_ns is None
    # the plain constructor fills latency in the same way, and checks one that is given
    assert Receipt("x", 10, 4).latency_ns == 6
    with pytest.raises(ValueError, match="latency_ns"):
        Receipt("x", 10, 4, 5)


def test_receipt_refuses_floats_and_bad_times() -> None:
    with pytest.raises(TypeError, match="float"):
        Receipt.of("decision.spread_intent", ts_ns=1, data={"spread": 0.25})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="float"):
        Receipt("decision.spread_intent", 1, data={"spread": 0.25})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="ts_ns"):
        Receipt("x", 2**63)
    with pytest.raises(TypeError, match="ts_ns"):
        Receipt("x", 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="venue"):
        Receipt("x", 1, venue=7)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="kind"):
        Receipt("", 1)


def test_receipt_data_is_copied_by_of() -> None:
    data: dict[str, str | int | Decimal | None] = {"qty": 1}
    r = Receipt.of("command.send_order", ts_ns=1, data=data)
    data["qty"] = 2
    assert r.data == {"qty": 1}


# --- ReceiptStore -----------------------------------------------------------------------------


def test_store_round_trips_every_field(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    written = [full_receipt(), sparse_receipt()]
    with ReceiptStore(url) as store:
        store.append_batch(written)
    with ReceiptStore(url) as store:  # a fresh engine: what is on disk, not in a cache
        read = store.all()
    assert read == written
    for before, after in zip(written, read, strict=True):
        for name in FIELD_NAMES:
            assert getattr(after, name) == getattr(before, name), name
            assert type(getattr(after, name)) is type(getattr(before, name)), name
    assert read[0].raw is not None and SOH in read[0].raw
    assert read[1].data == {} and read[1].cause_ns is None and read[1].latency_ns is None


def test_store_data_column_is_json_with_decimals_as_strings(tmp_path: Path) -> None:
    with ReceiptStore(sqlite_url(tmp_path)) as store:
        store.append_batch([full_receipt()])
        with store.engine.connect() as conn:
            text = conn.execute(sa.select(RECEIPTS.c.data)).scalar_one()
    assert '"last_px":"560.02"' in text
    assert '"pay_up":"-0.00"' in text
    assert "560.02," not in text  # never a bare JSON number for money


def test_store_sets_wal_and_synchronous_normal(tmp_path: Path) -> None:
    with ReceiptStore(sqlite_url(tmp_path)) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_store_orders_by_seq_across_batches_and_reopens(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    receipts = numbered(250)
    with ReceiptStore(url) as store:
        store.append_batch(receipts[:100])
        store.append_batch(receipts[100:101])
        store.append_batch([])
    with ReceiptStore(url) as store:  # the sequence goes on from the table, not from 1
        store.append_batch(receipts[101:])
        stored = store.stored()
        assert [seq for seq, _ in stored] == list(range(1, 251))
        assert [r for _, r in stored] == receipts
        assert store.count() == 250 and store.last_seq() == 250 and store.next_seq == 251
        assert store.query(clordid="C7") == [receipts[7]]
        assert store.query(kind="event.execution", clordid="C7") == [receipts[7]]
        assert store.query(kind="line.state") == []
        assert [seq for seq, _ in store.stored(after_seq=248)] == [249, 250]


def test_store_query_by_pair(tmp_path: Path) -> None:
    legs = [
        Receipt.of("command.send_order", ts_ns=i, pair_id=f"P{i % 3}", clordid=f"L{i}")
        for i in range(9)
    ]
    with ReceiptStore(sqlite_url(tmp_path)) as store:
        store.append_batch(legs)
        assert store.query(pair_id="P1") == [legs[1], legs[4], legs[7]]
        assert store.count(kind="command.send_order") == 9


def test_a_batch_is_one_transaction(tmp_path: Path) -> None:
    """A row the database refuses in the middle of a batch takes the whole batch with it.

    The refusal is real: a trigger (test-only DDL) aborts the insert of one poisoned row,
    after the rows before it were inserted in the same transaction.
    """
    url = sqlite_url(tmp_path)
    with ReceiptStore(url) as store:
        store.append_batch(numbered(3))
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TRIGGER poison BEFORE INSERT ON receipts WHEN NEW.clordid = 'POISON' "
                "BEGIN SELECT RAISE(ABORT, 'poisoned receipt'); END"
            )
        batch = numbered(10, start=3)
        poisoned = [
            *batch[:5],
            Receipt.of("event.execution", ts_ns=1, clordid="POISON"),
            *batch[5:],
        ]
        with pytest.raises(sa.exc.IntegrityError, match="poisoned receipt"):
            store.append_batch(poisoned)
        assert store.count() == 3  # none of the five rows before the poisoned one stayed
        assert store.query(clordid="C3") == []
        store.append_batch(batch)  # the sequence has no hole where the failed batch was
        assert [seq for seq, _ in store.stored()] == list(range(1, 14))
    with ReceiptStore(url) as store:
        assert store.count() == 13


def test_product_code_never_updates_or_deletes() -> None:
    root = Path(__file__).resolve().parent.parent / "oms"
    receipt_path = [
        "receipts.py",
        "receipt_writer.py",
        "receipt_chain.py",
        "receipt_recorder.py",
        "receipt_spool.py",
        "receipt_schema.py",
        *(f"audit/{p.name}" for p in (root / "audit").glob("*.py")),
    ]
    for name in receipt_path:
        text = (root / name).read_text().lower()
        for word in (".update(", ".delete(", "update ", "delete from", "truncate"):
            assert word not in text, f"{name} contains {word!r}"


def test_the_database_refuses_changes_to_a_receipt(tmp_path: Path) -> None:
    """The append-only guard: a trigger refuses UPDATE and DELETE (the hash chain is what
    shows changes made by someone who drops it first)."""
    with ReceiptStore(sqlite_url(tmp_path)) as store:
        store.append_batch(numbered(2))
        for statement in ("UPDATE receipts SET verdict = 'x'", "DELETE FROM receipts"):
            with (
                pytest.raises(sa.exc.IntegrityError, match="append-only"),
                store.engine.begin() as c,
            ):
                c.exec_driver_sql(statement)
        assert store.count() == 2


def test_the_model_matches_the_migrations(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with ReceiptStore(sqlite_url(tmp_path)) as store, store.engine.connect() as conn:
        diff = compare_metadata(
            MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}), Base.metadata
        )
        assert diff == []
        assert current_revision(conn) == HEAD


def test_a_store_from_before_migrations_is_upgraded(tmp_path: Path) -> None:
    """A file made by the first releases (create_all, no version table, no chain) opens:
    stamped at the first revision, upgraded; its old rows are reported unchained and the
    new ones are chained."""
    url = sqlite_url(tmp_path)
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE receipts (id INTEGER NOT NULL, seq BIGINT NOT NULL, kind VARCHAR "
            "NOT NULL, ts_ns BIGINT NOT NULL, cause_ns BIGINT, latency_ns BIGINT, venue "
            "VARCHAR, line VARCHAR, symbol VARCHAR, clordid VARCHAR, venue_order_id VARCHAR, "
            "exec_id VARCHAR, pair_id VARCHAR, verdict VARCHAR, reason TEXT, raw TEXT, data "
            "TEXT NOT NULL, CONSTRAINT pk_receipts PRIMARY KEY (id), CONSTRAINT "
            "uq_receipts_seq UNIQUE (seq))"
        )
        for index in ("ts_ns", "clordid", "pair_id"):
            conn.exec_driver_sql(f"CREATE INDEX ix_receipts_{index} ON receipts ({index})")
        conn.exec_driver_sql(
            "INSERT INTO receipts (seq, kind, ts_ns, data) VALUES (1, 'line.state', 5, '{}'), "
            "(2, 'line.state', 6, '{}')"
        )
    engine.dispose()
    with ReceiptStore(url) as store:
        assert store.next_seq == 3
        store.append_batch(numbered(3))
        result = verify_chain(store)
        assert [r.kind for r in store.all()][:2] == ["line.state", "line.state"]
    assert result.ok and result.unchained == 2 and result.rows == 5


def test_the_writer_fills_in_each_trades_hop_times(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    flow = [
        Receipt.of("decision.spread_intent", ts_ns=130, cause_ns=100, pair_id="P-1"),
        Receipt.of("command.send_order", ts_ns=150, cause_ns=100, pair_id="P-1", clordid="A"),
        Receipt.of(
            "command.send_order",
            ts_ns=160,
            cause_ns=100,
            pair_id="P-1",
            clordid="B",
            verdict="not sent",
        ),
        Receipt.of("event.execution", ts_ns=410, cause_ns=400, clordid="A", pair_id="P-1"),
        Receipt.of("event.execution", ts_ns=510, cause_ns=500, clordid="A", pair_id="P-1"),
        Receipt.of("decision.pair_done", ts_ns=600, cause_ns=500, pair_id="P-1"),
        Receipt.of("event.line_state", ts_ns=700, cause_ns=690),
    ]
    with ReceiptStore(url) as store:
        store.append_batch(flow)
        hops = [(r.event_ns, r.decision_ns, r.send_ns, r.ack_ns) for r in store.scan()]
        assert store.all() == flow  # what the OMS recorded comes back unchanged
    assert hops == [
        (100, 130, None, None),
        (100, 130, 150, None),
        (100, 130, None, None),  # not sent: no send time
        (100, 130, 150, 400),  # the venue's first answer is the ack
        (100, 130, 150, 400),
        (500, 600, None, None),
        (690, None, None, None),
    ]


# --- ReceiptWriter ----------------------------------------------------------------------------


@pytest.fixture
def writers() -> Iterator[list[ReceiptWriter]]:
    """Writers a test started; any it left running are closed (their loss is ignored)."""
    started: list[ReceiptWriter] = []
    yield started
    for writer in started:
        with contextlib.suppress(ReceiptWriterError):
            writer.close(timeout=10.0)


def test_writer_writes_10000_in_order_without_gaps(
    tmp_path: Path, writers: list[ReceiptWriter]
) -> None:
    url = sqlite_url(tmp_path)
    writer = ReceiptWriter(url).start()
    writers.append(writer)
    assert writer.pid is not None and writer.pid != os.getpid()
    receipts = numbered(10_000)
    for receipt in receipts:
        writer.append(receipt)
    assert writer.close() == 10_000
    stats = writer.stats()
    assert (stats.appended, stats.written, stats.lost, stats.last_seq) == (
        10_000,
        10_000,
        0,
        10_000,
    )
    assert stats.child_exitcode == 0 and not stats.child_alive and stats.errors == ()
    with ReceiptStore(url) as store:
        stored = store.stored()
    assert [seq for seq, _ in stored] == list(range(1, 10_001))
    assert [r for _, r in stored] == receipts


def test_writer_close_twice_and_close_unstarted(
    tmp_path: Path, writers: list[ReceiptWriter]
) -> None:
    writer = ReceiptWriter(sqlite_url(tmp_path)).start()
    writers.append(writer)
    for receipt in numbered(10):
        writer.append(receipt)
    assert writer.close() == 10
    assert writer.close() == 10
    assert writer.close(timeout=0.0) == 10
    assert ReceiptWriter(sqlite_url(tmp_path, "never.sqlite")).close() == 0


def test_writer_goes_on_from_the_tables_last_seq(
    tmp_path: Path, writers: list[ReceiptWriter]
) -> None:
    url = sqlite_url(tmp_path)
    with ReceiptStore(url) as store:
        store.append_batch(numbered(5))
    writer = ReceiptWriter(url).start()
    writers.append(writer)
    for receipt in numbered(5, start=5):
        writer.append(receipt)
    assert writer.close() == 5
    assert writer.stats().last_seq == 10
    with ReceiptStore(url) as store:
        assert [r.clordid for r in store.all()] == [f"C{i}" for i in range(10)]


def test_append_never_waits_for_a_stuck_child(tmp_path: Path, writers: list[ReceiptWriter]) -> None:
    """The child is stuck on a database lock the test holds, so it cannot commit anything.

    All 10,000 appends still return while it is stuck: the counts prove it (nothing
    written, everything appended and held), no clock is asserted. Once the lock goes, close()
    writes them all.
    """
    url = sqlite_url(tmp_path)
    ReceiptStore(url).close()  # the schema exists before the lock is taken
    locker = sa.create_engine(url)
    conn = locker.connect()
    conn.exec_driver_sql("BEGIN EXCLUSIVE")  # WAL: readers go on, no other writer can
    try:
        writer = ReceiptWriter(url, batch_size=100, interval_ms=1.0, chunk=16).start()
        writers.append(writer)
        first = numbered(100)
        for receipt in first:
            writer.append(receipt)
        # the child received a full batch and is blocked inside its first commit
        wait_until(lambda: writer.stats().shipped >= 100, "the first batch to be sent")
        receipts = first + numbered(9_900, start=100)
        for receipt in receipts[100:]:
            writer.append(receipt)
        stats = writer.stats()
        assert stats.appended == 10_000
        assert stats.written == 0
        assert stats.pending + stats.in_flight == 10_000  # all held by the parent, none lost
        assert stats.dropped == 0
        # still stuck: more waiting does not move the count either
        time.sleep(0.2)
        assert writer.stats().written == 0
    finally:
        conn.rollback()
        conn.close()
        locker.dispose()
    assert writer.close(timeout=60.0) == 10_000
    with ReceiptStore(url) as store:
        assert [r for _, r in store.stored()] == receipts


def test_killed_child_is_reported_by_close(tmp_path: Path, writers: list[ReceiptWriter]) -> None:
    url = sqlite_url(tmp_path)
    writer = ReceiptWriter(url, batch_size=50, interval_ms=5.0).start()
    writers.append(writer)
    before = numbered(500)
    for receipt in before:
        writer.append(receipt)
    wait_until(lambda: writer.stats().written >= 50, "a first commit")
    assert writer.pid is not None
    os.kill(writer.pid, signal.SIGKILL)
    wait_until(lambda: any("died" in e for e in writer.stats().errors), "the death to be seen")
    after = numbered(300, start=500)
    for receipt in after:  # the OMS thread goes on: no exception, nothing blocks
        writer.append(receipt)
    with pytest.raises(ReceiptLossError) as caught:
        writer.close()
    error = caught.value
    assert "killed by signal 9" in str(error)
    assert error.unconfirmed >= len(after)
    assert error.stats.appended == 800
    assert error.stats.written + error.unconfirmed == 800
    kept = writer.unwritten()
    assert len(kept) == error.unconfirmed
    assert kept[-len(after) :] == after  # appended after the death, in order
    with ReceiptStore(url) as store:
        stored = store.all()
    assert len(stored) >= error.written
    # nothing silently lost: every receipt is in the table or held in memory, in order
    in_table = {r.clordid for r in stored}
    assert all(r.clordid in in_table or r in kept for r in before + after)
    assert stored == (before + after)[: len(stored)]
    # closing again says the same, loudly
    with pytest.raises(ReceiptLossError):
        writer.close()


def test_writer_bounds_what_it_keeps(tmp_path: Path, writers: list[ReceiptWriter]) -> None:
    writer = ReceiptWriter(sqlite_url(tmp_path), max_backlog=100).start()
    writers.append(writer)
    assert writer.pid is not None
    os.kill(writer.pid, signal.SIGKILL)
    wait_until(lambda: any("died" in e for e in writer.stats().errors), "the death to be seen")
    for receipt in numbered(250):
        writer.append(receipt)
    with pytest.raises(ReceiptLossError) as caught:
        writer.close()
    assert (caught.value.unconfirmed, caught.value.dropped) == (100, 150)
    assert writer.unwritten() == numbered(100)


def test_append_after_close_is_reported(tmp_path: Path, writers: list[ReceiptWriter]) -> None:
    writer = ReceiptWriter(sqlite_url(tmp_path)).start()
    writers.append(writer)
    writer.append(numbered(1)[0])
    assert writer.close() == 1
    late = numbered(1, start=1)[0]
    writer.append(late)  # the OMS thread still must not see an exception
    with pytest.raises(ReceiptLossError) as caught:
        writer.close()
    assert caught.value.unconfirmed == 1 and writer.unwritten() == [late]


def test_unclosed_writer_is_flushed_at_interpreter_exit(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    script = (
        "from oms.receipt_writer import ReceiptWriter\n"
        "from oms.receipts import Receipt\n"
        f"w = ReceiptWriter({url!r}, interval_ms=60_000, batch_size=100_000).start()\n"
        "for i in range(500):\n"
        "    w.append(Receipt.of('line.state', ts_ns=i))\n"
        # no close(): the process ends here
    )
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    with ReceiptStore(url) as store:
        assert store.count() == 500


def test_writer_reports_a_store_it_cannot_open(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    writer = ReceiptWriter(f"sqlite:///{blocker}/receipts.sqlite", start_timeout_s=30.0)
    writer.append(numbered(1)[0])
    with pytest.raises(ReceiptWriterError, match="did not start"):
        writer.start()
    with pytest.raises(ReceiptLossError):  # what was appended before is not forgotten
        writer.close()


# --- PostgreSQL -------------------------------------------------------------------------------

PG_URL = os.environ.get("CMC_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose connections see only a fresh schema, dropped afterwards.

    An unreachable server skips the test, except under CI (CI=true), where it fails.
    """
    engine = sa.create_engine(PG_URL, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
    except sa.exc.OperationalError as exc:
        engine.dispose()
        reason = f"PostgreSQL at {make_url(PG_URL)!r} is unreachable ({exc.orig!r})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI=true requires it (set CMC_TEST_PG_URL)")
        pytest.skip(f"{reason}; set CMC_TEST_PG_URL to run this test")
    schema = f"cmc_test_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        engine.dispose()


def test_postgresql_round_trip_and_writer(
    pg_url: str, writers: list[ReceiptWriter], tmp_path: Path
) -> None:
    with ReceiptStore(pg_url) as store:
        with store.engine.connect() as conn:
            columns = {c["name"]: c["type"] for c in sa.inspect(conn).get_columns("receipts")}
        for name in ("ts_ns", "cause_ns", "latency_ns", "seq"):
            assert isinstance(columns[name], sa.BigInteger), name
        store.append_batch([full_receipt(), sparse_receipt()])
        assert store.all() == [full_receipt(), sparse_receipt()]
    writer = ReceiptWriter(pg_url, batch_size=200, spool_dir=tmp_path / "spool").start()
    writers.append(writer)
    receipts = numbered(2_000)
    for receipt in receipts:
        writer.append(receipt)
    assert writer.close() == 2_000
    with ReceiptStore(pg_url) as store:
        stored = store.stored()
        assert [seq for seq, _ in stored] == list(range(1, 2_003))
        assert [r for _, r in stored][2:] == receipts
        assert store.query(clordid="C1999") == [receipts[-1]]
        assert verify_chain(store).ok
        with store.engine.connect() as conn:
            assert current_revision(conn) == HEAD
            from alembic.autogenerate import compare_metadata
            from alembic.migration import MigrationContext

            assert (
                compare_metadata(
                    MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}),
                    Base.metadata,
                )
                == []
            )
        for statement in ("UPDATE receipts SET verdict = 'x'", "DELETE FROM receipts"):
            with (
                pytest.raises(sa.exc.ProgrammingError, match="append-only"),
                store.engine.begin() as c,
            ):
                c.exec_driver_sql(statement)
