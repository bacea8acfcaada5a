"""The hash chain catches an edited, a deleted and a reordered receipt, and says which.

Receipts go in through the real writer process; the tampering is plain SQL on the
database, after dropping the append-only guard as anyone with the owner's rights could;
the verdict comes from the real CLI (``cmc audit verify``) as a subprocess.
"""

from __future__ import annotations

import itertools
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from oms.audit.verify import verify_chain
from oms.receipt_chain import (
    GENESIS_HASH,
    canonical_row,
    dump_data,
    reference_data,
    reference_row,
    row_hash,
)
from oms.receipt_writer import ReceiptWriter
from oms.receipts import Receipt, ReceiptStore
from tests.test_receipts import pg_url  # noqa: F401  (a fixture)

CMC = str(Path(__file__).resolve().parent.parent / ".venv" / "bin" / "cmc")
BASE_NS = 1_717_200_000_000_000_000
SOH = "\x01"


def trade_receipts(
    trades: int, *, pair: str = "GOLD", start_ns: int = BASE_NS, first: int = 0
) -> list[Receipt]:
    """What the OMS records for ``trades`` spread trades a second apart: market data, the
    decision, two orders, each acknowledged and filled, and the pair done. Ids count from
    trade ``first``."""
    out: list[Receipt] = []
    for t in range(first, first + trades):
        t0 = start_ns + (t - first) * 1_000_000_000
        trade = f"{pair}-{t + 1}"
        out.append(
            Receipt.of(
                "event.market_data",
                ts_ns=t0 + 2_000,
                cause_ns=t0,
                venue="INNER",
                line="primary",
                symbol="AU",
                data={"entries": 2, "snapshot": 0, "sending_ns": t0 - 50_000},
            )
        )
        out.append(
            Receipt.of(
                "decision.spread_intent",
                ts_ns=t0 + 30_000,
                cause_ns=t0,
                pair_id=trade,
                verdict="entry",
                reason="buy_inner: spread 3.5 vs threshold 2.0",
                data={"pair": pair, "spread": Decimal("3.5"), "inner_qty": 28},
            )
        )
        for leg, (venue, clordid) in enumerate(((("INNER", f"C{t}-1")), ("OUTER", f"C{t}-2"))):
            out.append(
                Receipt.of(
                    "command.send_order",
                    ts_ns=t0 + 45_000 + leg * 10_000,
                    cause_ns=t0,
                    venue=venue,
                    clordid=clordid,
                    pair_id=trade,
                    verdict="sent",
                    data={"qty": 28 if leg == 0 else 9, "price": Decimal("560.06")},
                )
            )
        for leg, (venue, clordid) in enumerate(((("INNER", f"C{t}-1")), ("OUTER", f"C{t}-2"))):
            for step, (exec_type, status) in enumerate((("0", "0"), ("F", "2"))):
                recv = t0 + 400_000 + leg * 100_000 + step * 20_000
                raw = SOH.join(
                    [
                        "8=FIX.4.4",
                        "35=8",
                        f"34={t * 4 + leg * 2 + step + 2}",
                        f"49={venue}",
                        "56=GW-PRI",
                        f"11={clordid}",
                        f"37=V{t}-{leg}",
                        f"17=E{t}-{leg}-{step}",
                        f"150={exec_type}",
                        f"39={status}",
                        "10=000",
                    ]
                )
                out.append(
                    Receipt.of(
                        "event.execution",
                        ts_ns=recv + 5_000,
                        cause_ns=recv,
                        venue=venue,
                        line="primary",
                        clordid=clordid,
                        venue_order_id=f"V{t}-{leg}",
                        exec_id=f"E{t}-{leg}-{step}",
                        pair_id=trade,
                        verdict=f"{'A' if step == 0 else '0'}->{status}",
                        raw=raw + SOH,
                        data={"exec_type": exec_type, "last_px": Decimal("560")},
                    )
                )
        out.append(
            Receipt.of(
                "decision.pair_done",
                ts_ns=t0 + 700_000,
                cause_ns=t0 + 620_000,
                pair_id=trade,
                verdict="filled",
                data={"pair": pair, "position": 1},
            )
        )
    return out


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'receipts.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


def write_through_writer(url: str, receipts: list[Receipt], spool: Path) -> None:
    writer = ReceiptWriter(url, spool_dir=spool, batch_size=25).start()
    for receipt in receipts:
        writer.append(receipt)
    assert writer.close() == len(receipts)


def tamper(url: str, *statements: str) -> None:
    """Run SQL on the store as its owner would, the append-only guard dropped first."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("DROP TRIGGER receipts_append_only ON receipts")
            else:
                conn.exec_driver_sql("DROP TRIGGER receipts_append_only_update")
                conn.exec_driver_sql("DROP TRIGGER receipts_append_only_delete")
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def audit_verify(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CMC, "audit", "verify", "--db", url],
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    )


def test_an_untouched_chain_verifies(store_url: str, tmp_path: Path) -> None:
    receipts = trade_receipts(5)
    write_through_writer(store_url, receipts, tmp_path / "spool")
    done = audit_verify(store_url)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(receipts)} receipt(s)" in done.stdout and "OK" in done.stdout
    with ReceiptStore(store_url) as store:
        head = store.read_head()
        rows = list(store.scan())
    assert f"Head: {head.seq}:{head.hash}" in done.stdout.replace("\n", "")
    # the chain as documented: genesis, then each row's hash over the row before's
    assert rows[0].prev_hash == GENESIS_HASH
    for before, row in itertools.pairwise(rows):
        assert row.prev_hash == before.hash
    assert all(row_hash(tuple(r[1:])) == r.hash for r in rows)


@pytest.mark.parametrize(
    ("how", "statements", "problem", "where"),
    [
        (
            "edit a fill price",
            ["UPDATE receipts SET data = replace(data, '560', '561') WHERE seq = 7"],
            "edited",
            "seq 7 does not match its hash",
        ),
        (
            "edit a verdict",
            ["UPDATE receipts SET verdict = 'rejected' WHERE seq = 12"],
            "edited",
            "seq 12 does not match its hash",
        ),
        (
            "delete a fill",
            ["DELETE FROM receipts WHERE seq = 8"],
            "deleted",
            "seq 8 missing",
        ),
        (
            "delete a whole trade",
            ["DELETE FROM receipts WHERE seq BETWEEN 11 AND 20"],
            "deleted",
            "seq 11..20 missing",
        ),
        (
            "swap two receipts",
            [
                "UPDATE receipts SET seq = -1 WHERE seq = 5",
                "UPDATE receipts SET seq = 5 WHERE seq = 6",
                "UPDATE receipts SET seq = 6 WHERE seq = -1",
            ],
            "reordered",
            "seq 5 holds the receipt sealed as seq 6",
        ),
    ],
)
def test_tampering_is_found_and_located(
    store_url: str,
    tmp_path: Path,
    how: str,
    statements: list[str],
    problem: str,
    where: str,
) -> None:
    write_through_writer(store_url, trade_receipts(3), tmp_path / "spool")
    tamper(store_url, *statements)
    done = audit_verify(store_url)
    assert done.returncode == 1, f"{how}: {done.stdout}{done.stderr}"
    assert "TAMPERED" in done.stdout
    assert problem in done.stdout and where in done.stdout, done.stdout
    with ReceiptStore(store_url, migrate=False) as store:
        result = verify_chain(store)
    assert {f.problem for f in result.findings} == {problem}, result.findings


def test_a_rewritten_receipt_with_a_recomputed_hash_is_found(
    store_url: str, tmp_path: Path
) -> None:
    """Whoever edits a row and computes its hash again still breaks the next row's link."""
    write_through_writer(store_url, trade_receipts(2), tmp_path / "spool")
    with ReceiptStore(store_url) as store:
        row = next(r for r in store.scan() if r.seq == 9)
    forged = list(row[1:])
    forged[ROW_VERDICT] = "rejected"
    forged[-1] = row_hash(tuple(forged))
    tamper(
        store_url,
        f"UPDATE receipts SET verdict = 'rejected', hash = '{forged[-1]}' WHERE seq = 9",
    )
    with ReceiptStore(store_url, migrate=False) as store:
        result = verify_chain(store)
    assert [(f.problem, f.seq) for f in result.findings] == [("edited", 9)], result.findings


ROW_VERDICT = 12  # index of verdict in ROW_COLUMNS


def test_swapped_row_ids_are_found(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'receipts.sqlite'}"
    write_through_writer(url, trade_receipts(1), tmp_path / "spool")
    tamper(
        url,
        "UPDATE receipts SET id = -1 WHERE id = 3",
        "UPDATE receipts SET id = 3 WHERE id = 4",
        "UPDATE receipts SET id = 4 WHERE id = -1",
    )
    with ReceiptStore(url, migrate=False) as store:
        result = verify_chain(store)
    assert [(f.problem, f.seq) for f in result.findings] == [("reordered", 4)]


def test_expect_head_catches_removed_last_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'receipts.sqlite'}"
    write_through_writer(url, trade_receipts(2), tmp_path / "spool")
    with ReceiptStore(url) as store:
        head = store.read_head()
    tamper(url, f"DELETE FROM receipts WHERE seq > {head.seq - 3}")
    assert audit_verify(url).returncode == 0  # the chain alone cannot see a cut tail
    done = subprocess.run(
        [CMC, "audit", "verify", "--db", url, "--expect-head", f"{head.seq}:{head.hash}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "does not hold seq" in done.stdout, done.stdout
    bad = subprocess.run(
        [CMC, "audit", "verify", "--db", url, "--expect-head", "12"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "SEQ:HASH" in bad.stderr


# -- the canonical text: the fast encoder writes the reference's bytes ---------------------

# Text as receipts carry it: anything UTF-8 can encode (lone surrogates are escaped before a
# receipt is built), with FIX's SOH, quotes, backslashes and control characters made common.
_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from([SOH, '"', "\\", "/", "\n", "\t", "\x7f", "\u2028", "é", "😀"]),
        st.characters(blacklist_categories=("Cs",)),
    ),
    max_size=40,
)
# Ints up to far beyond 64 bits: what the fast encoder refuses goes through the reference.
_INT = st.one_of(st.integers(-(2**63), 2**64), st.integers(-(2**80), 2**80))
_VALUE = st.one_of(st.none(), _INT, _TEXT)


@settings(max_examples=400, deadline=None)
@given(st.lists(_VALUE, max_size=24), st.dictionaries(_TEXT, _VALUE, max_size=8))
def test_the_fast_canonical_text_is_the_reference_text_byte_for_byte(
    row: list[object], data: dict[str, object]
) -> None:
    assert canonical_row(row) == reference_row(row).encode()
    assert dump_data(data) == reference_data(data)
    row.append(dump_data(data))
    assert canonical_row(row) == reference_row(row).encode()
