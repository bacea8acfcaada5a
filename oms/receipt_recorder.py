"""Where a batch of receipts goes in the writer process: the store, or else the spool.

The :class:`Recorder` seals each batch (``seq``, hop times, hash chain) and inserts it. When
the store refuses (the server is gone, the network is cut, the disk of a SQLite file is
full...), the same sealed rows go to the spool, and every later batch follows them there
until :meth:`Recorder.replay` has put the whole spool into the store, in order. So the
store only ever receives rows in ``seq`` order, and nothing acknowledged is lost. A batch
that neither the store nor the spool takes is not acknowledged: the writer reports a halt.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Final

from sqlalchemy.exc import DBAPIError

from oms.receipt_chain import ROW_COLUMNS, ChainHead, SealedRow
from oms.receipt_spool import Spool
from oms.receipts import ReceiptFields, ReceiptStore

log = logging.getLogger(__name__)

REPLAY_BATCH: Final = 50_000

SEAL_SLICE: Final = 1_000
"""Receipts sealed at a time into a PostgreSQL COPY: small enough that the server always
has rows to work on, big enough that slicing costs nothing measurable."""

PG_COPY: Final = f"COPY receipts ({', '.join(ROW_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
PG_TYPES: Final = [
    "int8" if name == "seq" or name.endswith("_ns") else "text" for name in ROW_COLUMNS
]


class Recorder:
    """Seals and keeps batches for one writer process (single-threaded, in ``seq`` order).

    ``committed_seq`` is the last ``seq`` known to be in the store; ``head.seq`` the last
    one sealed and kept (in the store or in the spool). ``notify(kind, text)`` hears about
    changes of state (``"spooling"``, ``"replayed"``), for the writer to pass on.
    """

    def __init__(
        self, store: ReceiptStore, spool: Spool, notify: Callable[[str, str], None]
    ) -> None:
        self.store = store
        self.spool = spool
        self._notify = notify
        self.committed_seq = store.head.seq
        self.spooling = False
        self.last_error = ""
        self.on_progress: Callable[[], None] | None = None
        """Called after each slice of a replay is committed: a long replay is progress."""
        last = spool.last()
        if last is not None and last[0] > store.head.seq:
            # An earlier run spooled these and stopped before they reached the store.
            store.advance(ChainHead(last[0], last[-1]))
            self.spooling = True

    @property
    def head(self) -> ChainHead:
        return self.store.head

    @property
    def spooled(self) -> int:
        """Receipts in the spool, not yet in the store."""
        return self.head.seq - self.committed_seq

    def record(self, batch: Sequence[ReceiptFields]) -> bool:
        """Keep ``batch``: in the store if it can, else in the spool. False if neither
        took it (the chain has not moved; call again later with the same batch)."""
        if not batch:
            return True
        if not self.spooling:
            try:
                head = self._seal_into_store(batch)
            except Exception as exc:
                self._start_spooling(exc)
            else:
                self.committed_seq = head.seq
                return True
        rows, head = self.store.seal(batch)
        try:
            self.spool.append(rows)
        except Exception as exc:
            self.last_error = describe(exc)
            return False
        self.store.advance(head)
        return True

    def _seal_into_store(self, batch: Sequence[ReceiptFields]) -> ChainHead:
        """Seal ``batch`` and insert it as one transaction; the chain moves only if it commits.

        On PostgreSQL the rows go into the COPY a slice at a time, as they are sealed: the
        server parses and indexes one slice while this process hashes the next (measured:
        sealing and the server's share of a COPY take about as long each), instead of
        idling while the other works. Nothing is committed before the COPY ends, so a
        failure part-way leaves the table and the chain as they were.
        """
        store = self.store
        if store.dialect != "postgresql":
            rows, head = store.seal(batch)
            store.insert_rows(rows)
            store.advance(head)
            return head
        start = store.head
        try:
            with store.engine.begin() as conn:
                driver = conn.connection.driver_connection
                assert driver is not None
                with driver.cursor() as cursor, cursor.copy(PG_COPY) as copy:
                    copy.set_types(PG_TYPES)
                    write = copy.write_row
                    for i in range(0, len(batch), SEAL_SLICE):
                        rows, head = store.seal(batch[i : i + SEAL_SLICE])
                        store.advance(head)  # the next slice follows on from this one
                        for row in rows:
                            write(row)
        except BaseException:
            store.advance(start)
            raise
        return store.head

    def replay(self) -> bool:
        """Put the spool into the store, oldest first; True when the spool is empty.

        ``REPLAY_BATCH`` rows a transaction. On PostgreSQL each row goes into the COPY as
        soon as it is read from the file, as :meth:`record` streams sealed slices: the
        server parses and indexes while this process decodes the next lines (reading a
        whole batch first left the two waiting on each other, at about half the rate of
        the COPY alone: ``bench/receipt_replay.py``).
        """
        if not self.spooling:
            return True
        try:
            in_store = self.store.last_seq()
            # committed before the connection dropped: already there
            rows = (row for row in self.spool.rows() if row[0] > in_store)
            replayed = 0
            while n := self._insert(itertools.islice(rows, REPLAY_BATCH)):
                replayed += n
        except Exception as exc:
            self.last_error = describe(exc)
            return False
        self.spool.discard()
        self.spooling = False
        self.committed_seq = self.head.seq
        self._notify("replayed", f"{replayed} spooled receipt(s) replayed into the store")
        return True

    def _insert(self, rows: Iterator[SealedRow]) -> int:
        """Insert ``rows`` as one transaction; how many there were (0: none, no transaction)."""
        first = next(rows, None)
        if first is None:
            return 0
        store = self.store
        if store.dialect != "postgresql":
            batch = [first, *rows]
            store.insert_rows(batch)
            last = batch[-1]
            count = len(batch)
        else:
            last, count = first, 1
            with store.engine.begin() as conn:
                driver = conn.connection.driver_connection
                assert driver is not None
                with driver.cursor() as cursor, cursor.copy(PG_COPY) as copy:
                    copy.set_types(PG_TYPES)
                    write = copy.write_row
                    write(first)
                    for last in rows:
                        write(last)
                        count += 1
        self.committed_seq = last[0]
        if self.on_progress is not None:
            self.on_progress()
        return count

    def _start_spooling(self, exc: Exception) -> None:
        self.spooling = True
        self.last_error = describe(exc)
        self._notify(
            "spooling",
            f"the receipt store {self.store.url} refused a batch ({self.last_error}); "
            f"receipts go to the spool {self.spool.path} until it is back",
        )


def describe(exc: BaseException, limit: int = 300) -> str:
    """An error in one short line: the driver's own message, never the statement and its
    parameters (SQLAlchemy appends both, and they would carry receipts into the logs)."""
    inner = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = " ".join(str(inner).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(inner).__name__}: {text}"
