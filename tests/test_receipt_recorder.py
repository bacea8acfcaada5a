"""The recorder's PostgreSQL path: a batch sealed a slice at a time into one COPY.

The rows stream into the COPY as they are sealed, so the chain moves slice by slice while
the transaction is open. A COPY that fails part-way must leave the table and the chain as
they were, and the batch must reach the spool sealed exactly as if it had been sealed in
one go.
"""

from __future__ import annotations

from pathlib import Path

from oms.audit.verify import verify_chain
from oms.receipt_chain import Chain, ChainHead
from oms.receipt_recorder import SEAL_SLICE, Recorder
from oms.receipt_spool import Spool
from oms.receipts import ReceiptStore, as_fields
from tests.test_audit_chain import trade_receipts
from tests.test_receipts import pg_url  # noqa: F401  (a fixture)


def test_a_batch_of_many_slices_is_one_transaction_with_one_chain(
    pg_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    batch = [as_fields(r) for r in trade_receipts(3 * SEAL_SLICE // 9 + 20)]
    assert len(batch) > 3 * SEAL_SLICE
    notes: list[tuple[str, str]] = []
    with ReceiptStore(pg_url) as store:
        recorder = Recorder(store, Spool(tmp_path / "spool"), lambda *m: notes.append(m))
        assert recorder.record(batch)
        assert recorder.committed_seq == len(batch) and not recorder.spooling
        expected, _ = Chain().seal(batch)
        with store.engine.connect() as conn:
            hashes = [h for (h,) in conn.exec_driver_sql("SELECT hash FROM receipts ORDER BY seq")]
        assert hashes == [row[-1] for row in expected]
        assert verify_chain(store).ok
    assert notes == []


def test_a_copy_that_fails_part_way_leaves_nothing_and_spools_the_batch(
    pg_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    batch = [as_fields(r) for r in trade_receipts(2 * SEAL_SLICE // 9 + 10)]
    with ReceiptStore(pg_url) as ours, ReceiptStore(pg_url) as other:
        # Another writer (a design error the unique seq index exists for) has taken a seq
        # in our batch's second slice: the COPY fails after the first slice went in.
        taken = SEAL_SLICE + 5
        rows, _ = Chain(ChainHead(taken - 1, "f" * 64)).seal(batch[:1])
        other.insert_rows(rows)

        notes: list[tuple[str, str]] = []
        recorder = Recorder(ours, Spool(tmp_path / "spool"), lambda *m: notes.append(m))
        assert recorder.record(batch)  # kept: in the spool
        assert recorder.spooling and recorder.committed_seq == 0
        assert ours.head.seq == len(batch)
        assert [kind for kind, _ in notes] == ["spooling"]
        assert "UniqueViolation" in notes[0][1]
        assert ours.count() == 1  # only the other writer's row: our slices rolled back
        expected, _ = Chain().seal(batch)
        assert list(Spool(tmp_path / "spool").rows()) == [tuple(r) for r in expected]
