"""the Cache's table on PostgreSQL: UNLOGGED, with an expiry (no table on SQLite)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

The PostgreSQL Cache backend (`store.pgcache`) keeps its entries here when no Redis is configured.
UNLOGGED: the rows are ephemeral by contract (sessions, flow state, counters), so they skip the
write-ahead log; a crash of the database empties the table, as a restart of Redis would. SQLite
deployments use the in-process cache and get no table.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE UNLOGGED TABLE cache_entries ("
        " key text NOT NULL,"
        " value text NOT NULL,"
        " expires timestamptz,"
        " CONSTRAINT pk_cache_entries PRIMARY KEY (key))"
    )
    op.execute("CREATE INDEX ix_cache_entries_expires ON cache_entries (expires)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TABLE cache_entries")
