"""Alembic migrations of the receipt store, run by ``oms.receipt_migrations`` at store open."""
