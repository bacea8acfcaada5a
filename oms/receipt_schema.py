"""The ``receipts`` table as SQLAlchemy models: what the migrations in ``oms/migrations`` build.

The migrations own the DDL (``oms.receipt_migrations`` runs them when a store opens); this
model is what the code reads and writes through, and a test checks that the two agree.
Times are integer nanoseconds (UTC) in BIGINT columns; ``data`` is canonical JSON text with
Decimals as strings; ``prev_hash`` and ``hash`` chain every row to the one before it
(``oms.receipt_chain``). Rows written before the chain existed have no hash.
"""

from __future__ import annotations

from typing import Final, cast

from sqlalchemy import BigInteger, Integer, MetaData, String, Table, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints and indexes, so that migrations can find them by name.
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
ID_TYPE: Final = BigInteger().with_variant(Integer(), "sqlite")

HASH_LENGTH: Final = 64
"""A SHA-256 digest in hex."""


class ReceiptRow(Base):
    """The ``receipts`` table: one row per receipt, inserted once, never changed."""

    __tablename__ = "receipts"

    id: Mapped[int] = mapped_column(ID_TYPE, primary_key=True, autoincrement=True)
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
    # The hops of the trade the receipt belongs to, as the writer knew them (receipt_chain).
    event_ns: Mapped[int | None] = mapped_column(BigInteger)
    decision_ns: Mapped[int | None] = mapped_column(BigInteger)
    send_ns: Mapped[int | None] = mapped_column(BigInteger)
    ack_ns: Mapped[int | None] = mapped_column(BigInteger)
    # The hash chain; NULL only on rows older than the chain.
    prev_hash: Mapped[str | None] = mapped_column(String(HASH_LENGTH))
    hash: Mapped[str | None] = mapped_column(String(HASH_LENGTH))


RECEIPTS: Final = cast(Table, ReceiptRow.__table__)
