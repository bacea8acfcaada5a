"""Alembic's environment: always handed an open connection by ``oms.receipt_migrations``.

There is no ``alembic.ini``: the store runs the migrations itself when it opens, on the
connection (and in the transaction) it passes in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from oms.receipt_migrations import VERSION_TABLE
from oms.receipt_schema import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "the receipt store's migrations run from oms.receipt_migrations.upgrade(engine), "
        "which passes the connection; there is no alembic.ini to run them from"
    )
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    version_table=VERSION_TABLE,
)
with context.begin_transaction():
    context.run_migrations()
