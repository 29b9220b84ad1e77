"""Alembic environment: runs on the connection that `store.migrate` hands over."""

from alembic import context

from tessera.core.store import tables

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `tessera migrate`")
context.configure(
    connection=connection,
    target_metadata=tables.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
