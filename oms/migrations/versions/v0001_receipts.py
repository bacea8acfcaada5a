"""The receipts table as the first releases created it (before the hash chain).

Stores made by those releases carry no version table; the store stamps them at this
revision and upgrades them from here.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from oms.receipt_schema import ID_TYPE

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "receipts",
        sa.Column("id", ID_TYPE, primary_key=True, autoincrement=True),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("ts_ns", sa.BigInteger, nullable=False),
        sa.Column("cause_ns", sa.BigInteger),
        sa.Column("latency_ns", sa.BigInteger),
        sa.Column("venue", sa.String),
        sa.Column("line", sa.String),
        sa.Column("symbol", sa.String),
        sa.Column("clordid", sa.String),
        sa.Column("venue_order_id", sa.String),
        sa.Column("exec_id", sa.String),
        sa.Column("pair_id", sa.String),
        sa.Column("verdict", sa.String),
        sa.Column("reason", sa.Text),
        sa.Column("raw", sa.Text),
        sa.Column("data", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_receipts"),
        sa.UniqueConstraint("seq", name="uq_receipts_seq"),
    )
    op.create_index("ix_receipts_ts_ns", "receipts", ["ts_ns"])
    op.create_index("ix_receipts_clordid", "receipts", ["clordid"])
    op.create_index("ix_receipts_pair_id", "receipts", ["pair_id"])


def downgrade() -> None:
    op.drop_table("receipts")
