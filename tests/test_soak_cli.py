"""`cmc soak` as an operator runs it: ten seconds of the demo market under faults, and a
table of what it survived; and a short run whose receipts go to PostgreSQL through a relay
that is cut mid-run and restored near the end (`--database-outage`), which must lose
nothing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_receipts import pg_url  # noqa: F401  (a fixture)

CMC = str(Path(sys.executable).parent / "cmc")
pytestmark = pytest.mark.fix

ROWS = [
    "spread trades",
    "orders sent",
    "orders rejected by a venue",
    "orders part-filled",
    "acks and fills delayed",
    "FIX connections dropped",
    "top-up / unwind rounds",
    "residual imbalance (inner lots)",
    "orders left working (OMS + venues)",
    "orders not matching the venues' fills",
    "trades that never ended",
]


@pytest.fixture(scope="module")
def soak_run() -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [CMC, "soak", "--seconds", "10"],
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
    )


def row(output: str, name: str) -> list[str]:
    """The cells of the table row that starts with ``name``."""
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no row {name!r} in:\n{output}")


def number(cell: str) -> int:
    match = re.match(r"-?[\d,]+", cell)
    assert match, cell
    return int(match.group(0).replace(",", ""))


def test_soak_prints_what_it_survived_and_exits_by_its_invariants(
    soak_run: subprocess.CompletedProcess[str],
) -> None:
    out = soak_run.stdout
    assert soak_run.returncode in (0, 1), soak_run.stderr
    for name in ROWS:
        row(out, name)
    assert number(row(out, "spread trades")[1]) > 0
    assert number(row(out, "orders rejected by a venue")[1]) > 0
    assert number(row(out, "orders part-filled")[1]) > 0
    assert number(row(out, "FIX connections dropped")[1]) > 0
    # The exit code is the table's verdict: 1 exactly when an invariant is BROKEN.
    broken = [line for line in out.splitlines() if "BROKEN" in line]
    assert (soak_run.returncode == 1) == bool(broken), out


def test_a_short_soak_with_the_database_cut_and_restored_loses_no_receipt(
    pg_url: str,  # noqa: F811
) -> None:
    """Five seconds: the restore comes near the end, while the writer is busy replaying (a
    cut in the middle of a COPY once left the writer waiting on a dead connection)."""
    env = {**os.environ, "COLUMNS": "200", "CMC_TEST_PG_URL": pg_url}
    done = subprocess.run(
        [CMC, "soak", "--seconds", "5", "--database-outage"],
        capture_output=True,
        text=True,
        timeout=110,
        env=env,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "BROKEN" not in out
    lost = [line for line in out.splitlines() if "receipts lost" in line]
    assert lost and all(number(row(out, "receipts lost")[1]) == 0 for _ in lost), out
