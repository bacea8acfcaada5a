"""Walk the hash chain and say where it breaks: an edited, deleted or reordered receipt.

One streaming pass over the rows in ``seq`` order checks, for each row, that

* its contents hash to its ``hash`` (with its ``seq`` and ``prev_hash``): else it was
  *edited*, or *moved* from another ``seq``;
* its ``prev_hash`` is the previous row's ``hash``: else something between them was
  deleted, or the rows were reordered;
* its ``seq`` follows the previous one: else rows are missing;
* its row id follows the previous one's: rows are inserted in ``seq`` order, so an id out of
  order means rows were swapped.

Only the rows where something is wrong are kept, and only those are looked into further
(the rows their links point at are found in one more pass), so a clean chain of millions of
rows costs one pass and flat memory.

What a chain cannot show by itself: the *last* rows removed together (nothing after them
points at them) or a whole tail rewritten with new hashes. Keep the head that ``verify``
prints somewhere else and compare it next time (``--expect-head``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from oms.receipt_chain import GENESIS_HASH, ChainHead, row_hash
from oms.receipts import ReceiptStore

Problem = Literal["edited", "deleted", "reordered"]

_MAX_KEPT: Final = 10_000
"""Anomalous rows kept for a closer look; past that the walk only counts."""
_NEARBY: Final = range(1, 9)
"""How far from its place a row's original ``seq`` is looked for when the chain cannot say
(the row before it is gone): a deletion followed by renumbering."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong with the chain, at one place."""

    problem: Problem
    seq: int
    row_id: int | None
    text: str


@dataclass
class Verification:
    rows: int = 0
    first_seq: int | None = None
    head: ChainHead = field(default_factory=ChainHead)
    unchained: int = 0
    """Rows written before the store had a hash chain (they cannot be checked)."""
    findings: list[Finding] = field(default_factory=list)
    uninspected: int = 0
    """Anomalous rows past the ones looked into."""

    @property
    def ok(self) -> bool:
        return not self.findings and not self.uninspected


@dataclass(slots=True)
class _Anomaly:
    seq: int
    row_id: int
    row: tuple[Any, ...]  # ROW_COLUMNS
    content_ok: bool
    link_ok: bool
    gap_after: int | None  # the previous row's seq, when this one does not follow it
    id_ok: bool
    prev_seq: int | None

    @property
    def prev_hash(self) -> str:
        return str(self.row[-2])

    @property
    def hash(self) -> str:
        return str(self.row[-1])


def _hash_at(row: tuple[Any, ...], seq: int) -> str:
    return row_hash((seq, *row[1:]))


def verify_chain(
    store: ReceiptStore, *, progress: Callable[[int], None] | None = None
) -> Verification:
    """Check every row of ``store``; ``progress(n)`` hears how many rows were read so far."""
    result = Verification()
    anomalies: list[_Anomaly] = []
    expected_prev = GENESIS_HASH
    prev_seq: int | None = None
    prev_id: int | None = None
    chained = False
    for record in store.scan_tuples():
        row_id = record[0]
        row: tuple[Any, ...] = tuple(record[1:])
        seq, digest = row[0], row[-1]
        result.rows += 1
        if result.first_seq is None:
            result.first_seq = seq
        if progress is not None and result.rows % 10_000 == 0:
            progress(result.rows)
        if digest is None and not chained:
            result.unchained += 1  # older than the chain: nothing to check
            prev_seq, prev_id = seq, row_id
            continue
        content_ok = digest is not None and row_hash(row) == digest
        link_ok = row[-2] == expected_prev
        gap = prev_seq is not None and seq != prev_seq + 1
        id_ok = prev_id is None or row_id > prev_id
        chained = True
        if not (content_ok and link_ok and id_ok) or gap:
            if len(anomalies) < _MAX_KEPT:
                anomalies.append(
                    _Anomaly(
                        seq,
                        row_id,
                        row,
                        content_ok,
                        link_ok,
                        prev_seq if gap else None,
                        id_ok,
                        prev_seq,
                    )
                )
            else:
                result.uninspected += 1
        expected_prev = digest if digest is not None else ""
        prev_seq, prev_id = seq, row_id
        result.head = ChainHead(seq, digest or "")
    if progress is not None:
        progress(result.rows)
    result.findings = _explain(store, anomalies)
    return result


def _explain(store: ReceiptStore, anomalies: list[_Anomaly]) -> list[Finding]:
    by_seq = {a.seq: a for a in anomalies}
    origins: dict[int, int | None] = {}
    # Where each broken row's prev_hash points: one pass over the table for all of them.
    pointed = store.seqs_with_hashes(a.prev_hash for a in anomalies if a.prev_hash != GENESIS_HASH)

    def preds(digest: str) -> list[int]:
        return pointed.get(digest, [])

    def origin(a: _Anomaly, depth: int = 0) -> int | None:
        """The ``seq`` a row whose contents fail at its own ``seq`` was sealed at: right
        after the row its ``prev_hash`` points at, or (renumbered rows) a few away."""
        if a.content_ok:
            return a.seq
        if a.seq in origins:
            return origins[a.seq]
        origins[a.seq] = None  # no cycles
        candidates: list[int] = []
        if a.prev_hash == GENESIS_HASH:
            candidates.append(1)
        elif depth < 50:
            for pred in preds(a.prev_hash):
                before = by_seq.get(pred)
                pred_origin = origin(before, depth + 1) if before is not None else pred
                if pred_origin is not None:
                    candidates.append(pred_origin + 1)
        candidates += [a.seq + d for d in _NEARBY] + [a.seq - d for d in _NEARBY]
        for candidate in candidates:
            if candidate > 0 and candidate != a.seq and _hash_at(a.row, candidate) == a.hash:
                origins[a.seq] = candidate
                return candidate
        return None

    findings: list[Finding] = []
    moves: list[tuple[_Anomaly, int]] = []
    for a in anomalies:
        if a.content_ok:
            continue
        sealed_at = origin(a)
        if sealed_at is not None and sealed_at != a.seq:
            moves.append((a, sealed_at))
        else:
            findings.append(
                Finding(
                    "edited",
                    a.seq,
                    a.row_id,
                    f"seq {a.seq} does not match its hash: its contents were changed "
                    f"({a.row[1]}, ts_ns {a.row[2]})",
                )
            )
    findings += _moves(moves)
    moved_from = {sealed_at for _, sealed_at in moves}
    moved_rows = {a.seq for a, _ in moves}
    for a in anomalies:
        if a.gap_after is not None and a.seq not in moved_rows:
            missing = [s for s in range(a.gap_after + 1, a.seq) if s not in moved_from]
            if missing:
                span = f"seq {missing[0]}" + (f"..{missing[-1]}" if len(missing) > 1 else "")
                findings.append(
                    Finding(
                        "deleted",
                        missing[0],
                        None,
                        f"{span} missing: {len(missing)} receipt(s) deleted between "
                        f"seq {a.gap_after} and seq {a.seq}",
                    )
                )
                continue
        if not a.link_ok and a.gap_after is None and (a.content_ok or a.seq in moved_rows):
            found = preds(a.prev_hash) if a.prev_hash != GENESIS_HASH else [0]
            sealed_at = origins.get(a.seq) or a.seq
            if not found and a.seq in moved_rows:
                findings.append(
                    Finding(
                        "deleted",
                        sealed_at - 1,
                        None,
                        f"the receipt sealed as seq {sealed_at - 1} is missing: it was "
                        "deleted and the rows after it renumbered",
                    )
                )
            elif not found:
                before = by_seq.get(a.seq - 1)
                if before is None or before.content_ok:
                    findings.append(
                        Finding(
                            "edited",
                            a.seq - 1,
                            None,
                            f"seq {a.seq - 1} is not the receipt seq {a.seq} was chained to: "
                            "it was replaced, contents and hash rewritten",
                        )
                    )
            elif a.seq not in moved_rows and not ({a.seq - 1, *found} & moved_rows):
                findings.append(
                    Finding(
                        "reordered",
                        a.seq,
                        a.row_id,
                        f"seq {a.seq} was chained after seq {found[0]}, not after seq "
                        f"{a.seq - 1}: the rows were reordered",
                    )
                )
        if not a.id_ok and a.seq not in moved_rows:
            findings.append(
                Finding(
                    "reordered",
                    a.seq,
                    a.row_id,
                    f"seq {a.seq} has row id {a.row_id}, below the id of seq {a.prev_seq}: "
                    "rows were swapped (they are inserted in seq order)",
                )
            )
    findings.sort(key=lambda f: (f.seq, f.problem))
    return findings


def _moves(moves: list[tuple[_Anomaly, int]]) -> list[Finding]:
    """One finding per run of rows moved by the same distance (a renumbering is one)."""
    findings: list[Finding] = []
    i = 0
    while i < len(moves):
        first, sealed_at = moves[i]
        j = i + 1
        while (
            j < len(moves)
            and moves[j][0].seq == moves[j - 1][0].seq + 1
            and moves[j][1] - moves[j][0].seq == sealed_at - first.seq
        ):
            j += 1
        last, last_sealed = moves[j - 1]
        if j - i == 1:
            text = f"seq {first.seq} holds the receipt sealed as seq {sealed_at}: it was moved"
        else:
            text = (
                f"seq {first.seq}..{last.seq} hold the receipts sealed as seq "
                f"{sealed_at}..{last_sealed}: they were renumbered"
            )
        findings.append(Finding("reordered", first.seq, first.row_id, text))
        i = j
    return findings
