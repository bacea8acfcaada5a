"""Receipts: what came in, what was decided and why, what went out, when, and how long it took.

Every decision of the OMS leaves a :class:`Receipt`, a plain frozen value made on the OMS
thread. The store is append-only: rows are inserted in batches, one transaction per batch,
and nothing is ever updated or deleted. Each row carries ``seq``, the writer's gap-free,
strictly increasing sequence number, so that a reader (the audit export, a later hash chain)
can tell that nothing is missing.

The same schema runs on SQLite (the default, a file) and PostgreSQL (production, psycopg 3):
times are integer nanoseconds in BIGINT columns, money in ``data`` is Decimal written as a
string, never a float.

Nothing here is meant for the OMS thread except building :class:`Receipt` values: the
database work happens in the writer's own process (:mod:`oms.receipt_writer`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from enum import Enum
from operator import attrgetter
from pathlib import Path
from types import TracebackType
from typing import Any, Final, cast

from sqlalchemy import (
    BigInteger,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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
    """One text field as stored: a plain ``str``, or None. A str Enum becomes its value."""
    if value is None or type(value) is str:
        return value
    if isinstance(value, Enum) and isinstance(value.value, str):
        return value.value
    if isinstance(value, str):
        return str.__str__(value)
    raise TypeError(f"receipt field {name!r} must be str or None, not {type(value).__name__}")


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
            if value is not None and type(value) is not str:
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
                item is not None and type(item) is not str and type(item) is not int
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
        if value is None or type(value) is str or type(value) is int:
            clean[key] = value
        else:
            clean[key] = _data_value(key, value)
    return clean


FIELD_NAMES: Final = tuple(f.name for f in fields(Receipt))

as_fields = cast(Callable[[Receipt], ReceiptFields], attrgetter(*FIELD_NAMES))
"""A receipt as its tuple of fields, in declaration order (one C call, no Python frame)."""


# --- schema -----------------------------------------------------------------------------------

# Named constraints and indexes, so that migrations (Alembic, later) can find them by name.
NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# BIGINT on PostgreSQL; INTEGER on SQLite, where only "INTEGER PRIMARY KEY" is the rowid alias
# that numbers itself (SQLite integers are 64-bit whatever the declared type).
_ID_TYPE: Final = BigInteger().with_variant(Integer(), "sqlite")


class ReceiptRow(Base):
    """The ``receipts`` table: one row per receipt, inserted once, never changed."""

    __tablename__ = "receipts"

    id: Mapped[int] = mapped_column(_ID_TYPE, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger, unique=True)
    kind: Mapped[str] = mapped_column(String)
    ts_ns: Mapped[int] = mapped_column(BigInteger, index=True)
    cause_ns: Mapped[int | None] = mapped_column(BigInteger)
    latency_ns: Mapped[int | None] = mapped_column(BigInteger)
    venue: Mapped[str | None] = mapped_column(String)
    line: Mapped[str | None] = mapped_column(String)
    symbol: Mapped[str | None] = mapped_column(String)
    clordid: Mapped[str | None] = mapped_column(String, index=True)
    venue_order_id: Mapped[str | None] = mapped_column(String)
    exec_id: Mapped[str | None] = mapped_column(String)
    pair_id: Mapped[str | None] = mapped_column(String, index=True)
    verdict: Mapped[str | None] = mapped_column(String)
    reason: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[str | None] = mapped_column(Text)
    data: Mapped[str] = mapped_column(Text)  # JSON object, keys sorted, no spaces


RECEIPTS: Final = cast(Table, ReceiptRow.__table__)

# Canonical JSON: the same data always gives the same text (what a hash chain will need).
_dump_data = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_load_data = json.JSONDecoder().decode


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


class ReceiptStore:
    """The receipts table behind one engine, written by one writer at a time.

    ``seq`` numbers are handed out here, from one past the highest in the table when the
    store opened: a second store appending to the same table at the same time is a design
    error, and the unique index on ``seq`` makes it fail loudly instead of interleaving.
    """

    def __init__(self, url: str = DEFAULT_URL) -> None:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self._url = url
        self._engine = create_engine(parsed)
        if self._engine.dialect.name == "sqlite":
            event.listen(self._engine, "connect", _sqlite_pragmas)
        try:
            Base.metadata.create_all(self._engine)
            self._next_seq = self.last_seq() + 1
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
    def next_seq(self) -> int:
        """The ``seq`` the next appended receipt will get."""
        return self._next_seq

    def append_batch(self, receipts: Sequence[Receipt]) -> None:
        """Insert ``receipts`` in order, as one transaction: all of them or none."""
        self.append_fields([as_fields(r) for r in receipts])

    def append_fields(self, batch: Sequence[ReceiptFields]) -> None:
        """Like :meth:`append_batch`, from field tuples (:func:`as_fields` of valid receipts).

        The writer's path: its process receives tuples, not objects.
        """
        if not batch:
            return
        seq = self._next_seq
        dump = _dump_data
        rows = [
            {
                "seq": seq + i,
                "kind": f[0],
                "ts_ns": f[1],
                "cause_ns": f[2],
                "latency_ns": f[3],
                "venue": f[4],
                "line": f[5],
                "symbol": f[6],
                "clordid": f[7],
                "venue_order_id": f[8],
                "exec_id": f[9],
                "pair_id": f[10],
                "verdict": f[11],
                "reason": f[12],
                "raw": f[13],
                "data": dump(f[14]),
            }
            for i, f in enumerate(batch)
        ]
        with self._engine.begin() as conn:
            conn.execute(RECEIPTS.insert(), rows)
        self._next_seq = seq + len(rows)

    def count(self, *, kind: str | None = None) -> int:
        stmt = select(func.count()).select_from(RECEIPTS)
        if kind is not None:
            stmt = stmt.where(RECEIPTS.c.kind == kind)
        with self._engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def last_seq(self) -> int:
        """The highest ``seq`` in the table, 0 when it is empty."""
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.max(RECEIPTS.c.seq))).scalar_one() or 0)

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
            return [
                (
                    row.seq,
                    Receipt(
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
                    ),
                )
                for row in conn.execute(stmt)
            ]

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
