"""applications: meta_icon and meta_hide; key pairs: authentik's key type "ec" for "ecdsa"

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def _keypairs() -> sa.TableClause:
    return sa.table("certificate_keypairs", sa.column("key_type"))


def _rename_key_type(old: str, new: str) -> None:
    keypairs = _keypairs()
    op.execute(keypairs.update().where(keypairs.c.key_type == old).values(key_type=new))


def upgrade() -> None:
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("meta_icon", sa.String(length=2000), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("meta_hide", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    _rename_key_type("ecdsa", "ec")


def _refuse_sqlite_cascades(bind: sa.Connection) -> None:
    """SQLite rebuilds a table to drop a column; with foreign keys enforced, dropping the old
    applications table would delete every consent that refers to it (the migrator's own
    connection has them off: see `store.migrate`)."""
    if bind.dialect.name == "sqlite" and bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("migration 0010 must run with SQLite foreign keys off")


def downgrade() -> None:
    _refuse_sqlite_cascades(op.get_bind())
    _rename_key_type("ec", "ecdsa")
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_column("meta_hide")
        batch_op.drop_column("meta_icon")
