"""groups: several parents (group_parents), as in authentik; users: last_updated

Each group's single `parent` becomes its one parent link, and the column goes. Users get
`last_updated`, and those without a `password_change_date` get their date of joining (authentik
stamps both at creation).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tessera.core.store.tables

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    _refuse_sqlite_cascades(op.get_bind())
    op.create_table(
        "group_parents",
        sa.Column("group_pk", sa.String(length=36), nullable=False),
        sa.Column("parent_pk", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["group_pk"],
            ["groups.pk"],
            name=op.f("fk_group_parents_group_pk_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_pk"],
            ["groups.pk"],
            name=op.f("fk_group_parents_parent_pk_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_pk", "parent_pk", name=op.f("pk_group_parents")),
    )
    with op.batch_alter_table("group_parents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_group_parents_parent_pk"), ["parent_pk"], unique=False)
    groups = sa.table("groups", sa.column("pk"), sa.column("parent"))
    links = sa.table("group_parents", sa.column("group_pk"), sa.column("parent_pk"))
    op.execute(
        links.insert().from_select(
            ["group_pk", "parent_pk"],
            sa.select(groups.c.pk, groups.c.parent).where(groups.c.parent.is_not(None)),
        )
    )
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.drop_constraint("fk_groups_parent_groups", type_="foreignkey")
        batch_op.drop_column("parent")
    _users_up()


def _users_up() -> None:
    """authentik sets `password_change_date` at creation and keeps `last_updated`: rows from
    before get their date of joining (or of their last password change)."""
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "last_updated", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=True
            )
        )
    users = sa.table(
        "users",
        sa.column("date_joined"),
        sa.column("password_change_date"),
        sa.column("last_updated"),
    )
    op.execute(
        users.update()
        .where(users.c.password_change_date.is_(None))
        .values(password_change_date=users.c.date_joined)
    )
    op.execute(users.update().values(last_updated=users.c.password_change_date))


def _refuse_sqlite_cascades(bind: sa.Connection) -> None:
    """SQLite rebuilds a table to drop a column; with foreign keys enforced, dropping the old
    table would delete every row that refers to it (the migrator's own connection has them
    off: see `store.migrate`)."""
    if bind.dialect.name == "sqlite" and bind.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("migration 0008 must run with SQLite foreign keys off")


def downgrade() -> None:
    """Back to one parent per group: a group with several keeps the first (by pk)."""
    _refuse_sqlite_cascades(op.get_bind())
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("last_updated")
    with op.batch_alter_table("groups", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent", sa.String(length=36), nullable=True))
        batch_op.create_foreign_key(
            "fk_groups_parent_groups", "groups", ["parent"], ["pk"], ondelete="SET NULL"
        )
    groups = sa.table("groups", sa.column("pk"), sa.column("parent"))
    links = sa.table("group_parents", sa.column("group_pk"), sa.column("parent_pk"))
    first = (
        sa.select(sa.func.min(links.c.parent_pk))
        .where(links.c.group_pk == groups.c.pk)
        .scalar_subquery()
    )
    op.execute(groups.update().values(parent=first))
    op.drop_table("group_parents")
