"""Receipts: what came in, what was decided and why, what went out, when, and how long it took.

Every decision of the OMS leaves a :class:`Receipt`, a plain frozen value made on the OMS
thread. The store is append-only: rows are inserted in batches, one transaction per batch,
and nothing is ever updated or deleted. Each row carries ``seq``, the writer's gap-free,
strictly increasing sequence number, the times of its trade's hops, and a hash chained to
the row before it (``oms.receipt_chain``), so that a reader (``cmc audit verify``) can tell
that nothing is missing, changed or out of order.

The same schema (Alembic migrations in ``oms/migrations``, run when a store opens) serves
SQLite (the default, a file) and PostgreSQL (production, psycopg 3): times are integer
nanoseconds in BIGINT columns, money in ``data`` is Decimal written as a string, never a
float. PostgreSQL takes each batch as one COPY; SQLite as one ``executemany`` transaction.

Nothing here is meant for the OMS thread except building :class:`Receipt` values: the
database work happens in the writer's own process (:mod:`oms.receipt_writer`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from enum import Enum
from operator import attrgetter
from pathlib import Path
from types import TracebackType
from typing import Any, Final, cast

from sqlalchemy import ColumnElement, Engine, Row, create_engine, event, func, select
from sqlalchemy.engine import make_url

from oms.receipt_chain import ROW_COLUMNS, Chain, ChainHead, SealedRow
from oms.receipt_migrations import require_current, upgrade
from oms.receipt_schema import RECEIPTS, Base, ReceiptRow

DEFAULT_URL: Final = "sqlite:///var/receipts.sqlite"
"""Where receipts go out of the box: a SQLite file under ``var/`` of the working directory."""

SQLITE_BUSY_TIMEOUT_MS: Final = 5_000
"""How long a SQLite connection waits for a lock held by another connection before failing."""

_I64_MIN: Final = -(2**63)
_I64_MAX: Final = 2**63 - 1

DataValue = str | int | None
"""What ``Receipt.data`` holds: strings (Decimals as their exact string), integers, None."""

ReceiptData = dict[str, DataValue]

# The fields of a Receipt, in declaration order: what crosses the process boundary and what a
# bulk insert (or, later, a COPY) consumes. Keep in step with ``Receipt``.
ReceiptFields = tuple[
    str,  # kind
    int,  # ts_ns
    int | None,  # cause_ns
    int | None,  # latency_ns
    str | None,  # venue
    str | None,  # line
    str | None,  # symbol
    str | None,  # clordid
    str | None,  # venue_order_id
    str | None,  # exec_id
    str | None,  # pair_id
    str | None,  # verdict
    str | None,  # reason
    str | None,  # raw
    ReceiptData,  # data
]


def _data_value(key: str, value: object) -> DataValue:
    """One ``data`` value as stored: Decimal as its exact string, an Enum as its value."""
    if value is None or type(value) is str or type(value) is int:
        return value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, Enum):
        return _data_value(key, value.value)
    if isinstance(value, float):
        raise TypeError(
            f"receipt data {key!r} is a float ({value!r}): money and quantities are Decimal "
            "or int, never float"
        )
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    raise TypeError(
        f"receipt data {key!r} is a {type(value).__name__}: only str, int, Decimal, "
        "Enum or None can be recorded"
    )


def _text(name: str, value: object) -> str | None:
    """One text field as stored: a plain ``str`` that UTF-8 can carry, or None. A str Enum
    becomes its value.

    Bytes that were not UTF-8 on the wire reach Python as lone surrogates, which neither the
    hash chain nor a database can encode: one such message must not stop the receipt
    writer, so they are written as backslash escapes (what arrived stays visible)."""
    if value is None:
        return None
    if type(value) is not str:
        if isinstance(value, Enum) and isinstance(value.value, str):
            value = value.value
        elif isinstance(value, str):
            value = str.__str__(value)
        else:
            raise TypeError(
                f"receipt field {name!r} must be str or None, not {type(value).__name__}"
            )
    assert isinstance(value, str)
    if value.isascii():
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _ns(name: str, value: object) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not _I64_MIN <= value <= _I64_MAX:
        raise TypeError(f"receipt field {name!r} must be a 64-bit int of ns, not {value!r}")
    return value


_TEXT_FIELDS: Final = (
    "venue",
    "line",
    "symbol",
    "clordid",
    "venue_order_id",
    "exec_id",
    "pair_id",
    "verdict",
    "reason",
    "raw",
)


@dataclass(frozen=True, slots=True)
class Receipt:
    """One thing the OMS saw, decided or did.

    ``kind`` names it, dotted by family: ``event.execution``, ``command.send_order``,
    ``decision.spread_intent``, ``decision.risk``, ``line.state``... ``ts_ns`` is when it was
    recorded (UTC ns); ``cause_ns`` the ``recv_ns`` of the event that caused it, and then
    ``latency_ns = ts_ns - cause_ns`` (filled in when left out, checked when given).
    ``raw`` is the FIX message text where there is one. ``data`` holds the extra fields:
    str, int or None only; a Decimal is turned into its exact string here, a float refused.

    Values are checked when made, on the OMS thread, so that a bad one fails where it was
    built, never as a poisoned batch in the writer.
    """

    kind: str
    ts_ns: int
    cause_ns: int | None = None
    latency_ns: int | None = None
    venue: str | None = None
    line: str | None = None
    symbol: str | None = None
    clordid: str | None = None
    venue_order_id: str | None = None
    exec_id: str | None = None
    pair_id: str | None = None
    verdict: str | None = None
    reason: str | None = None
    raw: str | None = None
    data: ReceiptData = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        # The common case (plain str, int and None everywhere) costs one pass of type checks;
        # anything else goes the slow way, which converts (Enum, Decimal) or refuses.
        if type(self.kind) is not str or not self.kind:
            kind = _text("kind", self.kind)
            if not kind:
                raise ValueError("a receipt needs a kind")
            object.__setattr__(self, "kind", kind)
        ts_ns = self.ts_ns
        if type(ts_ns) is not int or not _I64_MIN <= ts_ns <= _I64_MAX:
            raise TypeError(f"receipt field 'ts_ns' must be a 64-bit int of ns, not {ts_ns!r}")
        cause_ns = self.cause_ns
        if cause_ns is not None:
            _ns("cause_ns", cause_ns)
            expected = ts_ns - cause_ns
            latency_ns = self.latency_ns
            if latency_ns is None:
                object.__setattr__(self, "latency_ns", _ns("latency_ns", expected))
            elif latency_ns != expected:
                raise ValueError(
                    f"receipt latency_ns {latency_ns} is not ts_ns - cause_ns = {expected}"
                )
        elif self.latency_ns is not None:
            _ns("latency_ns", self.latency_ns)
        for value in (
            self.venue,
            self.line,
            self.symbol,
            self.clordid,
            self.venue_order_id,
            self.exec_id,
            self.pair_id,
            self.verdict,
            self.reason,
            self.raw,
        ):
            if value is not None and (type(value) is not str or not value.isascii()):
                for name in _TEXT_FIELDS:
                    object.__setattr__(self, name, _text(name, getattr(self, name)))
                break
        data = self.data
        if type(data) is not dict:
            if not isinstance(data, Mapping):
                raise TypeError(f"receipt data must be a mapping, not {type(data).__name__}")
            object.__setattr__(self, "data", _clean(data))
            return
        for key, item in data.items():
            if type(key) is not str or (
                item is not None
                and type(item) is not int
                and (type(item) is not str or not item.isascii())
            ):
                object.__setattr__(self, "data", _clean(data))
                return

    @classmethod
    def of(
        cls,
        kind: str,
        *,
        ts_ns: int,
        cause_ns: int | None = None,
        venue: str | None = None,
        line: str | None = None,
        symbol: str | None = None,
        clordid: str | None = None,
        venue_order_id: str | None = None,
        exec_id: str | None = None,
        pair_id: str | None = None,
        verdict: str | None = None,
        reason: str | None = None,
        raw: str | None = None,
        data: Mapping[str, str | int | Decimal | Enum | None] | None = None,
    ) -> Receipt:
        """A receipt with its latency worked out: ``ts_ns - cause_ns`` when there is a cause.

        Every field but ``kind`` by keyword. ``data`` is copied, its Decimals written as
        strings (a float is refused).
        """
        return cls(
            kind,
            ts_ns,
            cause_ns,
            None if cause_ns is None else ts_ns - cause_ns,
            venue,
            line,
            symbol,
            clordid,
            venue_order_id,
            exec_id,
            pair_id,
            verdict,
            reason,
            raw,
            {} if data is None else _clean(data),
        )


def _clean(data: Mapping[Any, object]) -> ReceiptData:
    """A copy of ``data`` as stored: str keys; str, int or None values (see _data_value)."""
    clean: ReceiptData = {}
    for key, value in data.items():
        if type(key) is not str:
            raise TypeError(f"receipt data keys must be str, not {key!r}")
        if value is None or type(value) is int or (type(value) is str and value.isascii()):
            clean[key] = value
        elif type(value) is str:
            clean[key] = _text(key, value)
        else:
            clean[key] = _data_value(key, value)
    return clean


FIELD_NAMES: Final = tuple(f.name for f in fields(Receipt))

as_fields = cast(Callable[[Receipt], ReceiptFields], attrgetter(*FIELD_NAMES))
"""A receipt as its tuple of fields, in declaration order (one C call, no Python frame)."""


# --- the store --------------------------------------------------------------------------------

__all__ = [
    "DEFAULT_URL",
    "FIELD_NAMES",
    "RECEIPTS",
    "Base",
    "Receipt",
    "ReceiptFields",
    "ReceiptRow",
    "ReceiptStore",
    "ReceiptStoreError",
    "as_fields",
    "safe_url",
]

_load_data = json.JSONDecoder().decode

PG_CONNECT_TIMEOUT_S: Final = 5
"""How long a PostgreSQL connection attempt may take before the store counts the server as
unreachable (and the writer spools): a silent network must not hold a batch for minutes."""

_COLUMN_LIST: Final = ", ".join(ROW_COLUMNS)
_SQLITE_INSERT: Final = (
    f"INSERT INTO receipts ({_COLUMN_LIST}) VALUES ({', '.join('?' for _ in ROW_COLUMNS)})"
)
_PG_COPY: Final = f"COPY receipts ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)"
_PG_TYPES: Final = [
    "int8" if name == "seq" or name.endswith("_ns") else "text" for name in ROW_COLUMNS
]

SCAN_COLUMNS: Final = ("id", *ROW_COLUMNS)
"""What :meth:`ReceiptStore.scan` yields per row: the row id, then :data:`ROW_COLUMNS`."""


class ReceiptStoreError(RuntimeError):
    """The receipt store cannot be opened or read as asked (the message says what to do)."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def safe_url(url: str) -> str:
    """The URL with any password masked: what may appear in a log or an error."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparsable database URL>"


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for another database or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


class ReceiptStore:
    """The receipts table behind one engine, written by one writer at a time.

    Opening migrates the schema to the current revision (``migrate=False`` only checks it:
    what readers such as ``cmc audit`` do, so that they never change a store). ``seq`` and
    the hash chain go on from the last row when the store opened: a second store appending
    to the same table at the same time is a design error, and the unique index on ``seq``
    makes it fail loudly instead of interleaving.
    """

    def __init__(self, url: str = DEFAULT_URL, *, migrate: bool = True) -> None:
        path = sqlite_path(url)
        if path is not None:
            if migrate:
                path.parent.mkdir(parents=True, exist_ok=True)
            elif not path.exists():
                raise ReceiptStoreError(
                    f"no receipt store at {path}: give the store's URL with --db (or "
                    "CMC_RECEIPTS_URL), or the gateway's configuration with --config"
                )
        self._url = url
        parsed = make_url(url)
        options: dict[str, Any] = {}
        if parsed.get_backend_name() == "postgresql":
            options["pool_pre_ping"] = True
            if "connect_timeout" not in parsed.query:
                options["connect_args"] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
        self._engine = create_engine(parsed, **options)
        if self._engine.dialect.name == "sqlite":
            event.listen(self._engine, "connect", _sqlite_pragmas)
        try:
            if migrate:
                upgrade(self._engine)
            else:
                require_current(self._engine)
            self._chain = Chain(self.read_head())
        except BaseException:
            self._engine.dispose()
            raise

    @property
    def url(self) -> str:
        """The store's URL, password masked."""
        return safe_url(self._url)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @property
    def head(self) -> ChainHead:
        """The end of the chain as this store has sealed it."""
        return self._chain.head

    @property
    def next_seq(self) -> int:
        """The ``seq`` the next appended receipt will get."""
        return self._chain.head.seq + 1

    # -- writing ---------------------------------------------------------------------------

    def append_batch(self, receipts: Sequence[Receipt]) -> None:
        """Insert ``receipts`` in order, as one transaction: all of them or none."""
        self.append_fields([as_fields(r) for r in receipts])

    def append_fields(self, batch: Sequence[ReceiptFields]) -> None:
        """Like :meth:`append_batch`, from field tuples (:func:`as_fields` of valid receipts).

        The writer's path: its process receives tuples, not objects.
        """
        if not batch:
            return
        rows, head = self.seal(batch)
        self.insert_rows(rows)
        self.advance(head)

    def seal(self, batch: Sequence[ReceiptFields]) -> tuple[list[SealedRow], ChainHead]:
        """The rows ``batch`` becomes next in the chain, and the head after them; the chain
        moves only with :meth:`advance`, once the rows are kept somewhere."""
        return self._chain.seal(batch)

    def advance(self, head: ChainHead) -> None:
        self._chain.advance(head)

    def insert_rows(self, rows: Sequence[SealedRow]) -> None:
        """Insert sealed rows as one transaction: a COPY on PostgreSQL, one
        ``executemany`` on SQLite. All of them or none."""
        if not rows:
            return
        with self._engine.begin() as conn:
            if self._engine.dialect.name == "postgresql":
                driver = conn.connection.driver_connection
                assert driver is not None
                with driver.cursor() as cursor, cursor.copy(_PG_COPY) as copy:
                    copy.set_types(_PG_TYPES)
                    write = copy.write_row
                    for row in rows:
                        write(row)
            else:
                conn.exec_driver_sql(_SQLITE_INSERT, list(rows))

    def read_head(self) -> ChainHead:
        """The end of the chain as the table has it (rows older than the chain: genesis)."""
        stmt = select(RECEIPTS.c.seq, RECEIPTS.c.hash).order_by(RECEIPTS.c.seq.desc()).limit(1)
        with self._engine.connect() as conn:
            row = conn.execute(stmt).first()
        if row is None:
            return ChainHead()
        return ChainHead(int(row.seq), row.hash or ChainHead().hash)

    # -- reading ---------------------------------------------------------------------------

    def count(self, *, kind: str | None = None) -> int:
        stmt = select(func.count()).select_from(RECEIPTS)
        if kind is not None:
            stmt = stmt.where(RECEIPTS.c.kind == kind)
        with self._engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def count_where(self, *conditions: ColumnElement[bool]) -> int:
        stmt = select(func.count()).select_from(RECEIPTS).where(*conditions)
        with self._engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def last_seq(self) -> int:
        """The highest ``seq`` in the table, 0 when it is empty."""
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.max(RECEIPTS.c.seq))).scalar_one() or 0)

    def scan(self, *conditions: ColumnElement[bool], batch: int = 20_000) -> Iterator[Row[Any]]:
        """Every row matching ``conditions`` in ``seq`` order, as :data:`SCAN_COLUMNS`.

        Streamed (a server-side cursor on PostgreSQL): memory stays flat however many rows
        there are. Close the iterator (or read it to the end) to give the connection back.
        """
        stmt = (
            select(*(RECEIPTS.c[name] for name in SCAN_COLUMNS))
            .where(*conditions)
            .order_by(RECEIPTS.c.seq)
        )
        with self._engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=batch).execute(stmt)
            yield from result

    def scan_tuples(
        self, *conditions: ColumnElement[bool], batch: int = 20_000
    ) -> Iterator[tuple[Any, ...]]:
        """Like :meth:`scan`, as plain tuples straight from the driver's cursor (a named,
        server-side one on PostgreSQL): a quarter less time per row, for exports of
        millions."""
        stmt = (
            select(*(RECEIPTS.c[name] for name in SCAN_COLUMNS))
            .where(*conditions)
            .order_by(RECEIPTS.c.seq)
        )
        with self._engine.connect() as conn:
            compiled = stmt.compile(
                dialect=conn.dialect, compile_kwargs={"render_postcompile": True}
            )
            params = compiled.params
            args: Any = (
                tuple(params[name] for name in compiled.positiontup or ())
                if compiled.positional
                else params
            )
            driver: Any = conn.connection.driver_connection
            if conn.dialect.name == "postgresql":
                cursor = driver.cursor(name=f"cmc_scan_{os.getpid()}_{id(stmt):x}")
                cursor.itersize = batch
            else:
                cursor = driver.cursor()
            try:
                cursor.execute(str(compiled), args)
                while rows := cursor.fetchmany(batch):
                    yield from rows
            finally:
                cursor.close()

    def seqs_with_hashes(self, digests: Iterable[str]) -> dict[str, list[int]]:
        """The ``seq`` of the rows with each of ``digests`` as their hash (one pass over
        the table: ``hash`` has no index, to keep inserts fast)."""
        wanted = sorted(set(digests))
        found: dict[str, list[int]] = {digest: [] for digest in wanted}
        with self._engine.connect() as conn:
            for start in range(0, len(wanted), 500):
                part = wanted[start : start + 500]
                stmt = (
                    select(RECEIPTS.c.hash, RECEIPTS.c.seq)
                    .where(RECEIPTS.c.hash.in_(part))
                    .order_by(RECEIPTS.c.seq)
                )
                for digest, seq in conn.execute(stmt):
                    found[digest].append(int(seq))
        return found

    def stored(
        self,
        *,
        kind: str | None = None,
        clordid: str | None = None,
        pair_id: str | None = None,
        after_seq: int | None = None,
        limit: int | None = None,
    ) -> list[tuple[int, Receipt]]:
        """``(seq, receipt)`` pairs in ``seq`` order, filtered by whichever keys are given."""
        stmt = select(RECEIPTS).order_by(RECEIPTS.c.seq)
        if kind is not None:
            stmt = stmt.where(RECEIPTS.c.kind == kind)
        if clordid is not None:
            stmt = stmt.where(RECEIPTS.c.clordid == clordid)
        if pair_id is not None:
            stmt = stmt.where(RECEIPTS.c.pair_id == pair_id)
        if after_seq is not None:
            stmt = stmt.where(RECEIPTS.c.seq > after_seq)
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._engine.connect() as conn:
            return [(row.seq, receipt_of_row(row)) for row in conn.execute(stmt)]

    def query(
        self,
        *,
        kind: str | None = None,
        clordid: str | None = None,
        pair_id: str | None = None,
    ) -> list[Receipt]:
        """Receipts in ``seq`` order, filtered by whichever keys are given."""
        return [r for _, r in self.stored(kind=kind, clordid=clordid, pair_id=pair_id)]

    def all(self) -> list[Receipt]:
        """Every receipt, in ``seq`` order."""
        return self.query()

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> ReceiptStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def receipt_of_row(row: Any) -> Receipt:
    """The :class:`Receipt` a stored row holds (what the OMS recorded, without the columns
    the writer added: ``seq``, hop times, hashes)."""
    return Receipt(
        row.kind,
        row.ts_ns,
        row.cause_ns,
        row.latency_ns,
        row.venue,
        row.line,
        row.symbol,
        row.clordid,
        row.venue_order_id,
        row.exec_id,
        row.pair_id,
        row.verdict,
        row.reason,
        row.raw,
        _load_data(row.data),
    )
