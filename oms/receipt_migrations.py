"""Bring a receipt store's schema to the current revision, from inside the package.

``upgrade(engine)`` runs the Alembic migrations in ``oms/migrations`` on the engine's
database: no ``alembic.ini``, no working directory to be in, so a store opens the same from
an installed package as from the source tree. A store already at the current revision costs
one small query; a store made before migrations existed (a ``receipts`` table, no version
table) is stamped at the first revision and upgraded from there.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from sqlalchemy import Connection, Engine, inspect, text

MIGRATIONS_DIR: Final = Path(__file__).resolve().with_name("migrations")
VERSION_TABLE: Final = "cmc_receipts_version"
"""Alembic's version table, named for the project so that it cannot meet another
application's ``alembic_version`` in a shared schema."""
HEAD: Final = "0002"
"""The newest revision in ``oms/migrations/versions``."""
FIRST: Final = "0001"

_PG_LOCK_KEY: Final = 0x636D6372  # "cmcr": one migration at a time per database


class SchemaError(RuntimeError):
    """The store's schema is not one this code can use."""


def current_revision(conn: Connection) -> str | None:
    """The store's revision, or None when it has no version table."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()


def upgrade(engine: Engine) -> str:
    """Migrate the store to :data:`HEAD`; returns the revision it was at before (or "")."""
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})"))
        before = current_revision(conn)
        if before == HEAD:
            return before
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.attributes["connection"] = conn
        if before is None and inspect(conn).has_table("receipts"):
            command.stamp(config, FIRST)
            before = FIRST
        command.upgrade(config, "head")
        return before or ""


def require_current(engine: Engine) -> None:
    """Refuse a store that is not at :data:`HEAD` (for readers, which never migrate)."""
    with engine.connect() as conn:
        revision = current_revision(conn)
        has_table = inspect(conn).has_table("receipts")
    if revision == HEAD:
        return
    if not has_table:
        raise SchemaError("there is no receipts table here: is this the gateway's receipt store?")
    raise SchemaError(
        f"the receipt store is at schema revision {revision or 'none (made before migrations)'}"
        f", this cmc reads {HEAD}: start the gateway (or the receipt writer) once to migrate it"
    )
