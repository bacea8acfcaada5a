"""The receipt writer: the OMS thread appends, another process writes.

DESIGN.md measured that one busy Python thread beside quickfix turns a 126 µs round trip into
21 ms: the GIL. So the database lives in a separate process, started with the ``spawn``
context (never ``fork``: the parent runs quickfix's C++ threads), and the parent does as
little as it can:

* ``append()`` (OMS thread) puts the receipt on a ``collections.deque``: no lock, no
  pickling, no system call, no database. About the cost of ``queue.SimpleQueue.put``
  (``bench/receipt_writer.py`` measures both in the same run).
* One sender thread in the parent wakes every ``ship_every_ms`` (or when ``close()`` asks),
  turns up to ``chunk`` receipts at a time into field tuples (one C call each) and pickles
  them as one message down a pipe to the child. That is the only Python work the writer
  adds to the parent; each chunk is a short burst under the GIL (``stats().max_burst_ns``)
  and the thread gives the GIL back in the ``write`` after it, or while it sleeps.
* The child owns the :class:`~oms.receipts.ReceiptStore`. It seals each batch (``seq``, the
  hop times, the hash chain: ``oms.receipt_chain``), in order, and commits it once it holds
  ``batch_size`` receipts or its oldest has waited ``interval_ms`` (a COPY on PostgreSQL).
  It acknowledges each batch once it is kept.

When the store refuses a batch (the server is down or cut off), the child writes the sealed
batch to a local append-only spool (``oms.receipt_spool``, fsynced) and acknowledges it as
kept; later batches follow it there, and every ``retry_ms`` the child tries to replay the
spool into the store, in order. If the spool is full too, the batch is not acknowledged and
the writer is *halted* (:attr:`ReceiptWriter.halted`): the gateway sends no order while it
is, because there is no trading without an audit trail. A spool left by a run that ended
during an outage is replayed when the next writer starts.

No call to a PostgreSQL store may hold the child indefinitely (:class:`_StoreGuard`):
libpq waits for an answer as long as it takes, and a connection cut without a reset reaching
this end (a partition, a proxy that keeps its socket) once left the child waiting through
the rest of the run, its receipts neither written nor spooled. A call that makes no progress
for ``stall_ms`` has its connection broken off, and the receipts go to the spool.
``close()`` waits as long as the child keeps receipts, in the store or the spool: a spool
replayed just before the stop takes what it takes, a child that keeps nothing for
``timeout`` is given up on.

The parent keeps every receipt it shipped until the child acknowledges it. When the child
dies (killed, crashed), ``append`` still never raises: the sender records the error, and the
unacknowledged receipts stay in memory with everything appended since, up to
``max_backlog`` (past that, receipts are counted as dropped). ``close()`` then raises
:class:`ReceiptLossError` with the counts, and :meth:`ReceiptWriter.unwritten` hands the
kept receipts over. A receipt the child committed just before dying, without its
acknowledgement getting out, is reported unconfirmed though it is in the table: at most the
last batch.

With ``fix_log`` the child first reconciles the store against the FIX messages quickfix
logged (``oms.audit.reconcile``): a message sent or received without a receipt gets one
then, before anything else is recorded.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import gc
import hashlib
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from oms.receipt_spool import DEFAULT_MAX_BYTES
from oms.receipts import (
    DEFAULT_URL,
    Receipt,
    ReceiptFields,
    ReceiptStore,
    as_fields,
    safe_url,
    sqlite_path,
)

if TYPE_CHECKING:
    from oms.audit.reconcile import FixLogSpec

log = logging.getLogger(__name__)

_PICKLE: Final = pickle.HIGHEST_PROTOCOL

_MAX_ERRORS: Final = 100


class ReceiptWriterError(RuntimeError):
    """The receipt writer could not start or could not do its job."""


@dataclass(frozen=True, slots=True)
class WriterStats:
    """Where every appended receipt is: a snapshot, exact once the writer is closed.

    ``appended = written + spooled + unconfirmed + dropped + rejected`` after ``close()``;
    while the writer runs the counts are read without a lock and may be a chunk apart.
    """

    appended: int
    """Receipts handed to ``append()``."""
    shipped: int
    """Sent to the writer process."""
    written: int
    """Committed by the writer process, as it last reported."""
    pending: int
    """Still in the parent, not yet sent."""
    in_flight: int
    """Sent, not yet acknowledged as committed."""
    dropped: int
    """Refused by ``append()`` because ``max_backlog`` receipts were already waiting: lost."""
    rejected: int
    """Not receipts at all (could not be turned into fields): lost."""
    spooled: int
    """Kept in the local spool (the store was unreachable), not yet replayed into it."""
    last_seq: int | None
    """The ``seq`` of the last receipt kept (committed or spooled), as last reported."""
    child_pid: int | None
    child_alive: bool
    child_exitcode: int | None
    sender_cpu_ns: int
    """CPU time the sender thread has used in the parent process."""
    max_burst_ns: int
    """The most CPU time the sender spent preparing one chunk: how long it held the GIL
    without a break (the send that follows gives it back)."""
    retries: int
    """Times the writer process started spooling because the store refused a batch."""
    halted: str | None
    """Why receipts cannot be kept now (spool full, writer process gone), or None."""
    errors: tuple[str, ...]

    @property
    def recorded(self) -> int:
        """Kept for good: committed to the store, or in the spool until it is back."""
        return self.written + self.spooled

    @property
    def unconfirmed(self) -> int:
        """Appended and not known to be committed, and still held in memory."""
        return self.pending + self.in_flight

    @property
    def lost(self) -> int:
        """Receipts not known to be in the store: kept in memory, dropped or rejected."""
        return self.unconfirmed + self.dropped + self.rejected


class ReceiptLossError(ReceiptWriterError):
    """``close()`` could not confirm that every appended receipt was written."""

    def __init__(self, message: str, stats: WriterStats) -> None:
        super().__init__(message)
        self.stats = stats

    @property
    def written(self) -> int:
        return self.stats.written

    @property
    def unconfirmed(self) -> int:
        return self.stats.unconfirmed

    @property
    def dropped(self) -> int:
        return self.stats.dropped


# --- the writer process -----------------------------------------------------------------------


WRITER_NICENESS = 10

GC_EVERY_S: Final = 1.0
"""How often the writer process runs the garbage collector (its automatic passes are off)."""


def default_spool_dir(url: str) -> Path:
    """Where a store's spool goes unless told: beside a SQLite file, else under ``var/``
    of the working directory, in a folder named for the store (password left out)."""
    path = sqlite_path(url)
    if path is not None:
        return path.with_name(path.name + ".spool")
    digest = hashlib.sha256(safe_url(url).encode()).hexdigest()[:16]
    return Path("var") / "receipt-spool" / digest


@dataclass(frozen=True, slots=True)
class _ChildConfig:
    url: str
    batch_size: int
    interval_s: float
    retry_s: float
    spool_dir: Path
    spool_max_bytes: int
    fix_log: FixLogSpec | None
    stall_s: float = 10.0


class _StoreGuard:
    """Bounds every call the writer process makes to a PostgreSQL store, and clears away
    what a lost connection left on the server.

    libpq waits for an answer as long as it takes. A connection whose other end vanished
    without a reset (a network cut, a proxy holding the socket) therefore held the writer
    process for good: it read no more chunks and acknowledged nothing, and ``close()`` gave
    up with the receipts unconfirmed. So a thread watches: once the main loop has been
    inside the store for ``stall_s`` without progress, it shuts the connection's socket
    down under libpq, the call fails at once, and the batch goes to the spool.

    The server's side of a lost connection can outlive it, inside a COPY that never ends,
    holding the uncommitted rows' ``seq`` values in the unique index: replaying the same
    rows would wait on it indefinitely. The guard notes the backend of every connection
    it opens, and :meth:`reap` ends those whose connection was lost before a replay; a lock
    wait is bounded on the server too (``lock_timeout``) in case that is not allowed.
    """

    def __init__(self, engine: Any, stall_s: float) -> None:
        from sqlalchemy import event

        self._engine = engine
        self._stall_s = stall_s
        self._lock = threading.Lock()
        self._live: dict[int, Any] = {}  # id(DBAPI connection) -> the connection
        self._backends: dict[int, tuple[int, Any]] = {}  # id(connection) -> (pid, start)
        self._orphans: dict[int, Any] = {}  # backend pid -> its start, connection lost
        self._busy_since = 0.0  # 0: not inside the store
        self.broken: list[str] = []  # what the watch did, for the main loop to report
        for name, handler in (
            ("connect", self._on_connect),
            ("invalidate", self._on_lost),
            ("soft_invalidate", self._on_lost),
            ("close", self._on_close),
            ("close_detached", self._on_close),
        ):
            event.listen(engine, name, handler)
        engine.dispose()  # what was opened before the listeners goes: every connection is known
        self._stop = threading.Event()
        threading.Thread(target=self._watch, name="cmc-receipt-guard", daemon=True).start()

    # -- the main loop's side

    @contextlib.contextmanager
    def busy(self) -> Any:
        """Around every call into the store: the stall clock runs while inside."""
        self._busy_since = time.monotonic()
        try:
            yield
        finally:
            self._busy_since = 0.0

    def touch(self) -> None:
        """Progress inside a long call (a slice of a replay committed): the clock restarts."""
        if self._busy_since:
            self._busy_since = time.monotonic()

    def reap(self) -> None:
        """End the server-side sessions of connections this process lost, before a replay
        puts the same ``seq`` values in again."""
        from sqlalchemy import text

        if not self._orphans:
            return
        query = text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid = :pid AND backend_start = :start"
        )
        with self._engine.connect() as conn:  # a dead pooled connection is found out here
            with self._lock:
                orphans = dict(self._orphans)
            for pid, start in orphans.items():
                try:
                    ended = conn.execute(query, {"pid": pid, "start": start}).scalar()
                except Exception as exc:  # not allowed: the lock_timeout bounds the wait
                    conn.rollback()
                    log.warning("cannot end backend %d of a lost connection: %s", pid, exc)
                    ended = None
                if ended:
                    log.warning("ended backend %d, left by a lost connection", pid)
                with self._lock:
                    self._orphans.pop(pid, None)
            conn.rollback()

    def stop(self) -> None:
        self._stop.set()

    # -- the pool's events

    def _on_connect(self, dbapi_connection: Any, _record: Any) -> None:
        autocommit = dbapi_connection.autocommit
        dbapi_connection.autocommit = True
        try:
            with dbapi_connection.cursor() as cursor:
                lock_ms = max(1, int(self._stall_s * 1000 / 2))
                cursor.execute(f"SET lock_timeout = {lock_ms}")
                cursor.execute(
                    "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()"
                )
                row = cursor.fetchone()
        finally:
            dbapi_connection.autocommit = autocommit
        with self._lock:
            self._live[id(dbapi_connection)] = dbapi_connection
            if row is not None:
                self._backends[id(dbapi_connection)] = (int(row[0]), row[1])

    def _on_lost(self, dbapi_connection: Any, _record: Any, *_: Any) -> None:
        with self._lock:
            self._live.pop(id(dbapi_connection), None)
            backend = self._backends.pop(id(dbapi_connection), None)
            if backend is not None:
                self._orphans[backend[0]] = backend[1]

    def _on_close(self, dbapi_connection: Any, *_: Any) -> None:
        with self._lock:
            self._live.pop(id(dbapi_connection), None)
            self._backends.pop(id(dbapi_connection), None)

    # -- the watch

    def _watch(self) -> None:
        while not self._stop.wait(min(0.25, self._stall_s / 4)):
            since = self._busy_since
            if since and time.monotonic() - since > self._stall_s:
                self._busy_since = time.monotonic()  # once per stall
                self._break_connections()

    def _break_connections(self) -> None:
        with self._lock:
            live = list(self._live.values())
        if not live:  # still connecting: connect_timeout bounds that
            return
        for connection in live:
            with contextlib.suppress(Exception):
                fd = os.dup(connection.fileno())
                sock = socket.socket(fileno=fd)
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                finally:
                    sock.close()
        self.broken.append(
            f"a call to the receipt store made no progress for {self._stall_s:g} s: "
            "its connection was broken off (receipts go to the spool until the store answers)"
        )


class _NoGuard:
    """SQLite: a local file, no connection to lose (its own busy timeout bounds a lock)."""

    def __init__(self) -> None:
        self.broken: list[str] = []

    @contextlib.contextmanager
    def busy(self) -> Any:
        yield

    def touch(self) -> None:
        pass

    def reap(self) -> None:
        pass

    def stop(self) -> None:
        pass


def _child_main(config: _ChildConfig, conn: Connection, acks: Connection) -> None:
    """The writer process: receive chunks, keep batches, acknowledge each one kept.

    Exits after a ``close`` message (keeping what it has first), or when the parent's end of
    the pipe closes (keeping what it has: the parent died).
    """
    # Ctrl-C in the gateway's terminal reaches the whole process group: the parent decides
    # when this process ends, through close() or by going away.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Receipts can wait a few milliseconds; the trading processes cannot. On a small machine
    # the writer's commits otherwise compete for a core with the gateway and the venues
    # (measured: a third of the gateway's slowest 1 % overlapped a commit).
    with contextlib.suppress(OSError):
        os.nice(WRITER_NICENESS)

    def tell(*msg: object) -> None:
        with contextlib.suppress(OSError):
            acks.send(msg)

    from oms.receipt_recorder import Recorder, describe
    from oms.receipt_spool import Spool

    try:
        store = ReceiptStore(config.url)
    except Exception as exc:
        tell("error", f"cannot open the receipt store {safe_url(config.url)}: {describe(exc)}")
        raise SystemExit(2) from None

    guard: _StoreGuard | _NoGuard = (
        _StoreGuard(store.engine, config.stall_s) if store.dialect == "postgresql" else _NoGuard()
    )
    recorder = Recorder(store, Spool(config.spool_dir, config.spool_max_bytes), lambda *m: tell(*m))
    # What exists now (modules, the engine) lives as long as the process: out of the
    # collector's way. The batches then make and drop a dozen objects per receipt and
    # next to no cycles, yet the collector's automatic passes took a tenth of the
    # process's time (measured); so it runs on a clock instead (see _child_loop), which
    # still frees whatever cycle a driver or an error path leaves.
    gc.freeze()
    gc.disable()
    try:
        _child_loop(config, recorder, conn, tell, guard)
    finally:
        guard.stop()
        store.close()


def _child_loop(
    config: _ChildConfig,
    recorder: Any,
    conn: Connection,
    tell: Any,
    guard: _StoreGuard | _NoGuard,
) -> None:
    from oms.receipt_recorder import describe

    buffer: list[ReceiptFields] = []
    last_chunk = -1
    kept_chunk = -1  # the last chunk whose receipts are all kept (the buffer holds none)
    oldest = 0.0
    blocked = False  # the buffer could be kept neither in the store nor in the spool
    halted = False
    retry_at = 0.0

    def report_breaks() -> None:
        while guard.broken:
            tell("error", guard.broken.pop(0))

    def replay() -> bool:
        """The spool into the store, after ending what lost connections left there."""
        with guard.busy():
            try:
                guard.reap()
            except Exception as exc:  # the store is still unreachable: so is the replay
                recorder.last_error = describe(exc)
                done = False
            else:
                done = recorder.replay()
        report_breaks()
        return bool(done)

    recorder.on_progress = guard.touch
    if recorder.spooling:
        replay()
    if config.fix_log is not None and not recorder.spooling:
        from oms.audit.reconcile import reconcile_at_start

        try:
            found = reconcile_at_start(recorder.store, config.fix_log)
        except Exception as exc:  # a reconciliation that fails is recorded, never fatal
            found = [
                as_fields(
                    Receipt.of(
                        "audit.reconcile",
                        ts_ns=time.time_ns(),
                        verdict="failed",
                        reason=f"reconciliation with the FIX log failed: {exc!r}",
                    )
                )
            ]
        with guard.busy():
            kept = recorder.record(found)
        if not kept:
            tell("error", f"the reconciliation's receipts could not be kept: {recorder.last_error}")
    base = recorder.committed_seq if not recorder.spooling else recorder.head.seq
    base_spooled = recorder.spooled

    def counts() -> tuple[int, int, int]:
        spooled_now = max(0, recorder.spooled - base_spooled)
        written = max(0, recorder.head.seq - base - spooled_now)
        return written, spooled_now, recorder.head.seq

    def flush() -> None:
        nonlocal blocked, halted, kept_chunk
        if not buffer:
            return
        was_spooling = recorder.spooling
        with guard.busy():
            kept = recorder.record(buffer)
        report_breaks()
        if kept:
            buffer.clear()
            blocked = False
            kept_chunk = last_chunk
            written, spooled, last_seq = counts()
            tell("kept", kept_chunk, written, spooled, last_seq)
            if halted:
                halted = False
                tell("resume")
        else:
            blocked = True
            if not halted:
                halted = True
                tell("halt", f"receipts cannot be kept: {recorder.last_error}")
        if recorder.spooling and not was_spooling:
            tell("retry", recorder.last_error)

    def retry() -> None:
        nonlocal retry_at
        if recorder.spooling and replay():
            written, spooled, last_seq = counts()
            tell("kept", kept_chunk, written, spooled, last_seq)
        if blocked:
            flush()
        # From the end of this attempt: a replay that took long is not tried again at once.
        retry_at = time.monotonic() + config.retry_s

    def progress() -> None:
        """A slice of a long replay committed: the parent's close waits on while they come."""
        guard.touch()
        written, spooled, last_seq = counts()
        tell("kept", kept_chunk, written, spooled, last_seq)

    tell("ready", recorder.head.seq, recorder.spooled)
    recorder.on_progress = progress
    collect_at = time.monotonic() + GC_EVERY_S
    while True:
        now = time.monotonic()
        deadlines = []
        if buffer and not blocked:
            deadlines.append(oldest + config.interval_s)
        if recorder.spooling or blocked:
            deadlines.append(retry_at)
        timeout = None if not deadlines else max(0.0, min(deadlines) - now)
        if conn.poll(timeout):
            try:
                message = pickle.loads(conn.recv_bytes())
            except EOFError:  # the parent is gone: keep what we have, then go
                if recorder.spooling:
                    replay()
                flush()
                return
            if message[0] == "close":
                if recorder.spooling:
                    replay()
                flush()
                written, spooled, _ = counts()
                tell("closed", written, spooled, len(buffer))
                return
            _, chunk_no, rows = message
            if not buffer:
                oldest = time.monotonic()
            buffer.extend(rows)
            last_chunk = chunk_no
            if len(buffer) >= config.batch_size and not blocked:
                flush()
        now = time.monotonic()
        if (recorder.spooling or blocked) and now >= retry_at:
            retry()
        elif buffer and not blocked and now >= oldest + config.interval_s:
            flush()
        if now >= collect_at:
            gc.collect()
            collect_at = now + GC_EVERY_S


# --- the parent side --------------------------------------------------------------------------

_LIVE: weakref.WeakSet[ReceiptWriter] = weakref.WeakSet()
_atexit_registered = False


def _close_all_at_exit() -> None:
    """Flush writers nobody closed before the interpreter goes (multiprocessing's own exit
    handler, which runs after this one, would otherwise terminate the child mid-batch)."""
    for writer in list(_LIVE):
        try:
            writer.close(timeout=10.0)
        except ReceiptWriterError as exc:
            log.error("receipt writer at exit: %s", exc)


class ReceiptWriter:
    """Appends receipts from the OMS thread; a process of its own writes them in batches.

    ``ReceiptWriter(url).start()``; ``append(receipt)`` from the hot path; ``close()`` at the
    end, which returns how many receipts were written or raises :class:`ReceiptLossError`.

    batch_size, interval_ms
        The child commits once it holds ``batch_size`` receipts or its oldest has waited
        ``interval_ms``, whichever comes first.
    ship_every_ms
        How often the parent's sender thread wakes to send what was appended. A receipt
        reaches the table within about ``ship_every_ms + interval_ms`` plus a commit.
    chunk
        Receipts per message to the child: bounds the sender's longest stretch under the GIL.
    max_in_flight
        Receipts sent and not yet acknowledged before the sender waits for the child.
    max_backlog
        Receipts waiting in the parent before ``append`` starts dropping (and counting) them:
        the memory bound when the child is slow or dead.
    spool_dir, spool_max_bytes
        Where sealed receipts go while the store is unreachable, and how much they may take
        before the writer halts (default: :func:`default_spool_dir`, 1 GiB).
    retry_ms
        How often the child tries to replay the spool (or to keep a batch it could not).
    stall_ms
        How long one call to a PostgreSQL store may go without progress before the child
        breaks its connection off and spools instead: a connection that died without a reset
        would otherwise hold the child, and every receipt behind it, indefinitely. Keep it
        well under ``close()``'s timeout, so that a stalled store ends in the spool there.
    fix_log
        The FIX log to reconcile the store with before the writer says it is ready.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        batch_size: int = 1_000,
        interval_ms: float = 50.0,
        ship_every_ms: float = 5.0,
        chunk: int = 64,
        max_in_flight: int | None = None,
        max_backlog: int = 1_000_000,
        start_timeout_s: float = 60.0,
        spool_dir: Path | None = None,
        spool_max_bytes: int = DEFAULT_MAX_BYTES,
        retry_ms: float = 1_000.0,
        stall_ms: float = 10_000.0,
        fix_log: FixLogSpec | None = None,
    ) -> None:
        if batch_size < 1 or chunk < 1 or max_backlog < 1:
            raise ValueError("batch_size, chunk and max_backlog must be at least 1")
        if interval_ms <= 0 or ship_every_ms <= 0 or retry_ms <= 0 or stall_ms <= 0:
            raise ValueError("interval_ms, ship_every_ms, retry_ms and stall_ms must be positive")
        self._url = url
        self.spool_dir = spool_dir if spool_dir is not None else default_spool_dir(url)
        self._child_config = _ChildConfig(
            url=url,
            batch_size=batch_size,
            interval_s=interval_ms / 1e3,
            retry_s=retry_ms / 1e3,
            spool_dir=self.spool_dir,
            spool_max_bytes=spool_max_bytes,
            fix_log=fix_log,
            stall_s=stall_ms / 1e3,
        )
        self._batch_size = batch_size
        self._ship_every_s = ship_every_ms / 1e3
        self._chunk = chunk
        self._max_in_flight = max(max_in_flight or 4 * batch_size, 2 * batch_size, chunk)
        self._max_backlog = max_backlog
        self._start_timeout_s = start_timeout_s

        # append() touches only these two.
        self._pending: deque[Receipt] = deque()
        self._dropped = 0

        # Owned by the sender thread while it runs.
        self._in_flight: deque[tuple[int, list[Receipt]]] = deque()
        self._in_flight_n = 0
        self._shipped = 0
        self._rejected = 0
        self._next_chunk = 0
        self._written = 0
        self._spooled = 0
        self._halted: str | None = None
        self._last_seq: int | None = None
        self._retries = 0
        self._sender_cpu_ns = 0
        self._max_burst_ns = 0
        self._child_closed = False  # the child said "closed": everything it got is committed
        self._child_gone = False  # the sender saw the child's process end

        self._errors: list[str] = []
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._acks: Connection | None = None
        self._wake_r = -1
        self._wake_w = -1
        self._sender: threading.Thread | None = None
        self._closing = threading.Event()
        self._close_idle_s = 0.0
        self._progress_at = 0.0  # when the child last reported receipts kept
        self._result: int | ReceiptLossError | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> ReceiptWriter:
        """Start the writer process and wait until its store is open (schema created).

        Raises :class:`ReceiptWriterError` if the store cannot be opened.
        """
        global _atexit_registered
        if self._process is not None:
            raise ReceiptWriterError("the receipt writer was already started")
        ctx = multiprocessing.get_context("spawn")
        data_r, data_w = ctx.Pipe(duplex=False)
        acks_r, acks_w = ctx.Pipe(duplex=False)
        with contextlib.suppress(AttributeError, OSError):  # Linux: fewer blocking writes
            fcntl.fcntl(data_w.fileno(), fcntl.F_SETPIPE_SZ, 1 << 20)
        process = ctx.Process(
            target=_child_main,
            args=(self._child_config, data_r, acks_w),
            name="cmc-receipt-writer",
            daemon=True,
        )
        process.start()
        data_r.close()
        acks_w.close()
        self._process, self._conn, self._acks = process, data_w, acks_r

        deadline = time.monotonic() + self._start_timeout_s
        message: Any = None
        ready: list[Any] = []
        while True:  # notes sent while the child starts (a spool replayed) come first
            ready = wait([acks_r, process.sentinel], max(0.0, deadline - time.monotonic()))
            message = None
            if acks_r in ready:
                with contextlib.suppress(EOFError, OSError):
                    message = acks_r.recv()
            if message and message[0] in ("spooling", "replayed", "retry"):
                log.warning("%s", message[1])
                continue
            break
        if not message or message[0] != "ready":
            reason = (
                message[1]
                if message and message[0] == "error"
                else f"no answer within {self._start_timeout_s} s"
                if not ready
                else f"the process exited (code {process.exitcode})"
            )
            self._stop_process(1.0)
            data_w.close()
            acks_r.close()
            self._process = self._conn = self._acks = None
            raise ReceiptWriterError(
                f"receipt writer for {safe_url(self._url)} did not start: {reason}"
            )
        self._last_seq = message[1]
        if message[2]:
            log.warning(
                "%d receipts of an earlier run wait in the spool %s for %s",
                message[2],
                self.spool_dir,
                safe_url(self._url),
            )

        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._sender = threading.Thread(
            target=self._sender_main, name="cmc-receipt-sender", daemon=True
        )
        self._sender.start()
        _LIVE.add(self)
        if not _atexit_registered:
            atexit.register(_close_all_at_exit)
            _atexit_registered = True
        return self

    @property
    def pid(self) -> int | None:
        """The writer process's id, once started."""
        return None if self._process is None else self._process.pid

    def append(self, receipt: Receipt) -> None:
        """Hand ``receipt`` to the writer. Never blocks, never raises, touches no database."""
        if len(self._pending) < self._max_backlog:
            self._pending.append(receipt)
        else:
            self._dropped += 1
            if self._halted is None:
                self._halted = "the receipt backlog is full: receipts are being dropped"

    @property
    def halted(self) -> str | None:
        """Why receipts cannot be kept right now, or None while they can.

        Set while the store is unreachable *and* the spool is full, once the writer process
        is gone, and once a receipt had to be dropped; the gateway sends no order while it
        is set. Read from any thread: one attribute read.
        """
        return self._halted

    def close(self, timeout: float = 30.0) -> int:
        """Send everything, let the child keep it, wait for it to end.

        The wait lasts as long as the child makes progress: it ends once ``timeout``
        seconds pass without the child reporting receipts kept. A backlog, or a spool
        replayed into a store that came back just before, takes the time it takes; a child
        stuck for good does not hold the caller for ever.

        Returns how many receipts the writer process kept: committed to the store, or in
        the spool when the store is unreachable (they are replayed when a writer starts
        again). Raises :class:`ReceiptLossError` if any appended receipt is not confirmed
        kept, or the process did not end cleanly; the receipts it holds are in
        :meth:`unwritten`. A second call returns (or raises) the same again.
        """
        if isinstance(self._result, ReceiptLossError):
            raise self._result
        if self._result is not None and not self._pending:
            return self._result
        if self._process is None:  # never started
            self._result = 0
            return self._finish()

        self._close_idle_s = timeout
        self._progress_at = time.monotonic()
        self._closing.set()
        self._wake()
        assert self._sender is not None
        while self._sender.is_alive() and time.monotonic() < self._close_deadline():
            self._sender.join(min(0.2, max(0.0, self._close_deadline() - time.monotonic())))
        if self._sender.is_alive():
            # Stuck writing to a child that does not read: stop the child, which breaks the
            # pipe under the sender.
            self._error(
                f"the receipt writer kept nothing for {timeout:g} s while closing; stopping it"
            )
            self._stop_process(2.0)
            self._sender.join(5.0)
        self._stop_process(max(0.1, self._close_deadline() - time.monotonic()))
        self._read_acks()
        for conn in (self._conn, self._acks):
            if conn is not None:
                conn.close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        _LIVE.discard(self)
        return self._finish()

    def _finish(self) -> int:
        stats = self.stats()
        process = self._process
        clean = process is None or (self._child_closed and process.exitcode == 0)
        if stats.lost == 0 and clean:
            if stats.spooled:
                log.warning(
                    "%d receipts are in the spool %s: the store %s was unreachable; they go "
                    "into it when a receipt writer starts again",
                    stats.spooled,
                    self.spool_dir,
                    safe_url(self._url),
                )
            self._result = stats.recorded
            return stats.recorded
        parts = [
            f"{stats.unconfirmed} unconfirmed (kept in memory, see unwritten())",
            f"{stats.dropped} dropped",
        ]
        if stats.rejected:
            parts.append(f"{stats.rejected} rejected")
        if not clean and process is not None:
            parts.append(f"writer process {process.pid} ended badly (exit code {process.exitcode})")
        spooled = f"{stats.spooled} spooled"
        if stats.spooled:
            spooled += f" (in {self.spool_dir}, replayed when a writer starts again)"
        message = (
            f"receipts not confirmed written to {safe_url(self._url)}: "
            f"{stats.written} of {stats.appended} written, {spooled}; " + ", ".join(parts)
        )
        if stats.errors:
            message += "; errors: " + " | ".join(stats.errors[-5:])
        log.error("%s", message)
        error = ReceiptLossError(message, stats)
        self._result = error
        raise error

    def unwritten(self) -> list[Receipt]:
        """The receipts not confirmed written, oldest first (read it after ``close()``)."""
        kept = [r for _, chunk in list(self._in_flight) for r in chunk]
        kept.extend(list(self._pending))
        return kept

    def stats(self) -> WriterStats:
        process = self._process
        pending = len(self._pending)
        return WriterStats(
            appended=self._shipped + self._rejected + pending + self._dropped,
            shipped=self._shipped,
            written=self._written,
            pending=pending,
            in_flight=self._in_flight_n,
            dropped=self._dropped,
            rejected=self._rejected,
            spooled=self._spooled,
            last_seq=self._last_seq,
            child_pid=None if process is None else process.pid,
            child_alive=False if process is None else process.is_alive(),
            child_exitcode=None if process is None else process.exitcode,
            sender_cpu_ns=self._sender_cpu_ns,
            max_burst_ns=self._max_burst_ns,
            retries=self._retries,
            halted=self._halted,
            errors=tuple(self._errors),
        )

    def __enter__(self) -> ReceiptWriter:
        return self.start() if self._process is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the sender thread -------------------------------------------------------------------

    def _sender_main(self) -> None:
        cpu0 = time.thread_time_ns()
        try:
            self._sender_loop(cpu0)
        except BaseException as exc:  # the OMS never sees it; close() reports it
            self._error(f"the receipt sender thread failed: {exc!r}")
            log.exception("receipt sender thread failed")
        finally:
            self._sender_cpu_ns = time.thread_time_ns() - cpu0

    def _sender_loop(self, cpu0: int) -> None:
        process, conn, acks = self._process, self._conn, self._acks
        assert process is not None and conn is not None and acks is not None
        watch: list[Connection | int] = [acks, process.sentinel, self._wake_r]
        close_sent = False
        while True:
            ready = wait(watch, timeout=self._ship_every_s)
            if self._wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
            self._read_acks()
            if process.sentinel in ready:
                self._read_acks()
                self._on_child_gone()
                return
            closing = self._closing.is_set()
            try:
                self._ship(conn)
                if closing and not close_sent and not self._pending:
                    conn.send_bytes(pickle.dumps(("close",), _PICKLE))
                    close_sent = True
            except OSError as exc:  # a broken pipe: the child is gone, the sentinel will say
                if not self._child_gone:
                    self._error(f"sending to the receipt writer failed: {exc!r}")
                process.join(1.0)
                self._read_acks()
                self._on_child_gone()
                return
            self._sender_cpu_ns = time.thread_time_ns() - cpu0
            if closing and time.monotonic() > self._close_deadline():
                return  # close() stops the child and reports

    def _ship(self, conn: Connection) -> None:
        """Send pending receipts in chunks while the child has room for them."""
        pending = self._pending
        popleft = pending.popleft
        cpu = time.thread_time_ns
        while pending and self._in_flight_n < self._max_in_flight:
            t0 = cpu()
            n = min(len(pending), self._chunk, self._max_in_flight - self._in_flight_n)
            items = [popleft() for _ in range(n)]
            try:
                rows = list(map(as_fields, items))
            except Exception:
                items, rows = self._sort_out(items)
                if not items:
                    continue
            chunk_no = self._next_chunk
            self._next_chunk += 1
            payload = pickle.dumps(("chunk", chunk_no, rows), _PICKLE)
            self._in_flight.append((chunk_no, items))
            self._in_flight_n += len(items)
            self._shipped += len(items)
            burst = cpu() - t0
            if burst > self._max_burst_ns:
                self._max_burst_ns = burst
            conn.send_bytes(payload)  # releases the GIL; blocks while the child lags

    def _sort_out(self, items: list[Receipt]) -> tuple[list[Receipt], list[ReceiptFields]]:
        """Keep the real receipts of a chunk, count and report what is not one."""
        good: list[Receipt] = []
        rows: list[ReceiptFields] = []
        for item in items:
            try:
                rows.append(as_fields(item))
            except Exception:
                self._rejected += 1
                self._error(f"not a Receipt, not recorded: {type(item).__name__}")
                continue
            good.append(item)
        return good, rows

    def _read_acks(self) -> None:
        acks = self._acks
        if acks is None or acks.closed:
            return
        try:
            while acks.poll():
                message = acks.recv()
                kind = message[0]
                if kind in ("kept", "closed"):
                    self._progress_at = time.monotonic()
                if kind == "kept":
                    _, chunk_no, written, spooled, last_seq = message
                    in_flight = self._in_flight
                    while in_flight and in_flight[0][0] <= chunk_no:
                        self._in_flight_n -= len(in_flight.popleft()[1])
                    self._written, self._spooled, self._last_seq = written, spooled, last_seq
                elif kind == "closed":
                    self._written, self._spooled = message[1], message[2]
                    self._child_closed = True
                elif kind == "retry":
                    self._retries += 1
                    self._error(message[1])
                elif kind in ("spooling", "replayed"):
                    log.warning("%s", message[1])
                elif kind == "halt":
                    self._halted = message[1]
                    self._error(f"{message[1]}; no order goes out until they can")
                elif kind == "resume":
                    if self._dropped == 0 and not self._child_gone:
                        self._halted = None
                    log.warning("receipts can be kept again")
                elif kind == "error":
                    self._error(message[1])
        except (EOFError, OSError):
            pass

    def _on_child_gone(self) -> None:
        self._child_gone = True
        if not (self._closing.is_set() and self._child_closed):
            self._halted = "the receipt writer process is gone"
        process = self._process
        assert process is not None
        process.join(1.0)
        if self._child_closed and process.exitcode == 0:
            return
        code = process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit {code}"
        self._error(
            f"receipt writer process {process.pid} died ({how}); "
            f"{self._in_flight_n + len(self._pending)} receipts unconfirmed, kept in memory"
        )

    # -- helpers -----------------------------------------------------------------------------

    def _close_deadline(self) -> float:
        """When a closing writer has gone ``timeout`` without keeping anything."""
        return self._progress_at + self._close_idle_s

    def _wake(self) -> None:
        if self._wake_w >= 0:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(self._wake_w, b"x")

    def _error(self, text: str) -> None:
        if len(self._errors) < _MAX_ERRORS:
            self._errors.append(text)
        log.error("%s", text)

    def _stop_process(self, timeout: float) -> None:
        process = self._process
        if process is None:
            return
        process.join(timeout)
        if process.is_alive():
            process.terminate()
            process.join(2.0)
        if process.is_alive():
            process.kill()
            process.join(2.0)
