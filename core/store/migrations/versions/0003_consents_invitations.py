"""consents invitations

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tessera.core.store.tables

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "invitations",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("expires", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "fixed_data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("single_use", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("flow", sa.String(length=36), nullable=True),
        sa.Column(
            "created_by", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"],
            ["users.pk"],
            name=op.f("fk_invitations_created_by_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["flow"], ["flows.pk"], name=op.f("fk_invitations_flow_flows"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_invitations")),
        sa.UniqueConstraint("name", name=op.f("uq_invitations_name")),
    )
    op.create_table(
        "user_consents",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("user_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("application", sa.String(length=36), nullable=False),
        sa.Column("permissions", sa.Text(), server_default="", nullable=False),
        sa.Column("expires", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["application"],
            ["applications.pk"],
            name=op.f("fk_user_consents_application_applications"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"],
            ["users.pk"],
            name=op.f("fk_user_consents_user_pk_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_user_consents")),
        sa.UniqueConstraint(
            "user_pk", "application", name=op.f("uq_user_consents_user_pk_application")
        ),
    )


def downgrade() -> None:

    op.drop_table("user_consents")
    op.drop_table("invitations")
