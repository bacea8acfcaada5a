"""The spool: sealed receipts kept on local disk while the receipt store is unreachable.

One append-only file of JSON lines, one sealed row (``oms.receipt_chain.ROW_COLUMNS``) per
line, each batch written, flushed and fsynced before the writer acknowledges it: a receipt
in the spool survives the process and the machine's power. The rows are sealed before they
are spooled, so their ``seq`` and hashes are final: replaying them later inserts exactly
what would have gone in, and the chain has no seam.

The file is bounded (``max_bytes``). When a batch does not fit, :meth:`Spool.append` raises
:class:`SpoolFull` and the writer tells the gateway to stop trading: no trading without an
audit trail. Once every row is in the store the file is removed. Nothing in the file is ever
rewritten: a write cut short stays, and the reader passes over it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final, cast

from oms.receipt_chain import SealedRow

log = logging.getLogger(__name__)

SPOOL_FILE: Final = "receipts.spool.jsonl"
DEFAULT_MAX_BYTES: Final = 1 << 30

_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_decode = json.JSONDecoder().decode


class SpoolFull(RuntimeError):
    """The spool cannot take a batch without passing its size limit."""


class Spool:
    """The spool file in ``directory`` (created when first needed)."""

    def __init__(self, directory: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.directory = directory
        self.path = directory / SPOOL_FILE
        self.max_bytes = max_bytes

    @property
    def size(self) -> int:
        """Bytes in the spool file (0 when there is none)."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def append(self, rows: Sequence[SealedRow]) -> None:
        """Write ``rows`` at the end of the file and fsync it. All of them or none."""
        if not rows:
            return
        data = "".join([_encode(row) + "\n" for row in rows]).encode()
        size = self.size
        if size + len(data) > self.max_bytes:
            raise SpoolFull(
                f"the receipt spool {self.path} holds {size:,} bytes; {len(data):,} more would "
                f"pass its limit of {self.max_bytes:,}"
            )
        new = size == 0
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            if size and os.pread(fd, 1, size - 1) != b"\n":
                # The end of a batch whose write failed half-way (never acknowledged, so
                # written again now): close its line; the reader passes over it.
                data = b"\n" + data
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            _fsync_dir(self.directory)

    def rows(self) -> Iterator[SealedRow]:
        """The spooled rows, oldest first, each ``seq`` once. Lines that are not a whole row
        (a write cut short, never acknowledged and so written again after) are passed over
        with a warning."""
        try:
            handle = self.path.open("rb")
        except FileNotFoundError:
            return
        last_seq = 0
        with handle:
            for number, line in enumerate(handle, 1):
                try:
                    row = cast(SealedRow, tuple(_decode(line.decode())))
                    seq = int(row[0])
                except (ValueError, IndexError, TypeError):
                    log.warning(
                        "%s: line %d is not a whole receipt, passed over", self.path, number
                    )
                    continue
                if seq > last_seq:
                    last_seq = seq
                    yield row

    def last(self) -> SealedRow | None:
        """The newest spooled row, or None when the spool is empty."""
        last: SealedRow | None = None
        for last in self.rows():  # noqa: B007  (spools are small next to the store)
            pass
        return last

    def __len__(self) -> int:
        return sum(1 for _ in self.rows())

    def discard(self) -> None:
        """Remove the file: every row in it is in the store."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        _fsync_dir(self.directory)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
