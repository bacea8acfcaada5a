"""Hop times, the hash chain, and a database guard against changing a receipt.

``hash`` has no index: one made inserts 40 % slower (random keys), and only a broken chain
needs rows looked up by hash (``oms.audit.verify`` does it in one pass then).

The guard (triggers that refuse UPDATE, DELETE and, on PostgreSQL, TRUNCATE of
``receipts``) stops mistakes; the hash chain is what shows tampering by anyone able to
drop the guard first.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_GUARD_MESSAGE = "receipts are append-only"


def upgrade() -> None:
    for name in ("event_ns", "decision_ns", "send_ns", "ack_ns"):
        op.add_column("receipts", sa.Column(name, sa.BigInteger))
    op.add_column("receipts", sa.Column("prev_hash", sa.String(64)))
    op.add_column("receipts", sa.Column("hash", sa.String(64)))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION cmc_receipts_append_only() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN "
            f"RAISE EXCEPTION '{_GUARD_MESSAGE}: % refused', TG_OP; "
            "END $$"
        )
        op.execute(
            "CREATE TRIGGER receipts_append_only BEFORE UPDATE OR DELETE ON receipts "
            "FOR EACH ROW EXECUTE FUNCTION cmc_receipts_append_only()"
        )
        op.execute(
            "CREATE TRIGGER receipts_append_only_truncate BEFORE TRUNCATE ON receipts "
            "FOR EACH STATEMENT EXECUTE FUNCTION cmc_receipts_append_only()"
        )
    else:
        for op_name in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER receipts_append_only_{op_name.lower()} BEFORE {op_name} "
                f"ON receipts BEGIN SELECT RAISE(ABORT, '{_GUARD_MESSAGE}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS receipts_append_only_truncate ON receipts")
        op.execute("DROP TRIGGER IF EXISTS receipts_append_only ON receipts")
        op.execute("DROP FUNCTION IF EXISTS cmc_receipts_append_only()")
    else:
        op.execute("DROP TRIGGER IF EXISTS receipts_append_only_update")
        op.execute("DROP TRIGGER IF EXISTS receipts_append_only_delete")
    for name in ("hash", "prev_hash", "ack_ns", "send_ns", "decision_ns", "event_ns"):
        op.drop_column("receipts", name)
