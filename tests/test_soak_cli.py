"""`cmc soak` as an operator runs it: ten seconds of the demo market under faults, and a
table of what it survived.

The receipt database outage (`--database-outage`) is not run here: cutting PostgreSQL
mid-run is covered by tests/test_audit_spool.py and tests/test_audit_gateway.py, and a
soak run with the outage on a loaded machine has been seen to leave the receipt writer
waiting on a connection through the cut relay past its 30 s close (under investigation)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

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
