"""Alembic migration scripts for the Tessera store."""
