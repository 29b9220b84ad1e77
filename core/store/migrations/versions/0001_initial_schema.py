"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tessera.core.store.tables

revision: str = "0001"
down_revision: str | None = None
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "certificate_keypairs",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("certificate_data", sa.Text(), nullable=False),
        sa.Column("key_sealed", sa.Text(), server_default="", nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=95), nullable=False),
        sa.Column("fingerprint_sha1", sa.String(length=59), nullable=False),
        sa.Column(
            "cert_expiry", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("cert_subject", sa.Text(), nullable=False),
        sa.Column("key_type", sa.String(length=16), nullable=True),
        sa.Column("managed", sa.String(length=200), nullable=True),
        sa.Column("created", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_certificate_keypairs")),
        sa.UniqueConstraint("name", name=op.f("uq_certificate_keypairs_name")),
    )
    op.create_table(
        "events",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("app", sa.String(length=200), nullable=False),
        sa.Column(
            "user",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "context",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("client_ip", sa.String(length=45), nullable=True),
        sa.Column("created", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_events")),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_events_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_created"), ["created"], unique=False)
        batch_op.create_index(batch_op.f("ix_events_expires"), ["expires"], unique=False)

    op.create_table(
        "groups",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("num_pk", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("parent", sa.String(length=36), nullable=True),
        sa.Column("is_superuser", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "attributes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["parent"], ["groups.pk"], name=op.f("fk_groups_parent_groups"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_groups")),
        sa.UniqueConstraint("name", name=op.f("uq_groups_name")),
        sa.UniqueConstraint("num_pk", name=op.f("uq_groups_num_pk")),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=False),
        sa.Column("expires", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )
    op.create_table(
        "providers",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("component", sa.String(length=64), nullable=False),
        sa.Column("created", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_providers")),
        sa.UniqueConstraint("name", name=op.f("uq_providers_name")),
    )
    op.create_table(
        "system_state",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column(
            "value",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_system_state")),
    )
    op.create_table(
        "users",
        sa.Column("pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column("username", sa.String(length=150), nullable=False),
        sa.Column("username_folded", sa.String(length=450), nullable=False),
        sa.Column("name", sa.String(length=256), server_default="", nullable=False),
        sa.Column("email", sa.String(length=254), server_default="", nullable=False),
        sa.Column("password", sa.String(length=256), server_default="", nullable=False),
        sa.Column(
            "password_change_date",
            tessera.core.store.tables.UTCDateTime(timezone=True),
            nullable=True,
        ),
        sa.Column("is_active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("type", sa.String(length=32), server_default="internal", nullable=False),
        sa.Column("path", sa.String(length=200), server_default="users", nullable=False),
        sa.Column(
            "attributes",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "last_login", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column(
            "date_joined", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False
        ),
        sa.Column("managed", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_users")),
        sa.UniqueConstraint("uuid", name=op.f("uq_users_uuid")),
        sa.UniqueConstraint("username_folded", name=op.f("uq_users_username_folded")),
    )
    op.create_index(op.f("ix_users_username"), "users", ["username"], unique=False)
    op.create_table(
        "applications",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=50), nullable=False),
        sa.Column("provider", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("meta_launch_url", sa.String(length=2000), server_default="", nullable=False),
        sa.Column("open_in_new_tab", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("meta_description", sa.Text(), server_default="", nullable=False),
        sa.Column("meta_publisher", sa.String(length=200), server_default="", nullable=False),
        sa.Column("group", sa.String(length=200), server_default="", nullable=False),
        sa.Column("policy_engine_mode", sa.String(length=8), server_default="any", nullable=False),
        sa.Column("created", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["provider"],
            ["providers.pk"],
            name=op.f("fk_applications_provider_providers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_applications")),
        sa.UniqueConstraint("provider", name=op.f("uq_applications_provider")),
        sa.UniqueConstraint("slug", name=op.f("uq_applications_slug")),
    )
    op.create_table(
        "group_members",
        sa.Column("group_pk", sa.String(length=36), nullable=False),
        sa.Column("user_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_pk"],
            ["groups.pk"],
            name=op.f("fk_group_members_group_pk_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"],
            ["users.pk"],
            name=op.f("fk_group_members_user_pk_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_pk", "user_pk", name=op.f("pk_group_members")),
    )
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_group_members_user_pk"), ["user_pk"], unique=False)

    op.create_table(
        "sessions",
        sa.Column("key_digest", sa.String(length=64), nullable=False),
        sa.Column("user_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("last_ip", sa.String(length=45), server_default="", nullable=False),
        sa.Column("last_user_agent", sa.String(length=512), server_default="", nullable=False),
        sa.Column("expires", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_pk"], ["users.pk"], name=op.f("fk_sessions_user_pk_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("key_digest", name=op.f("pk_sessions")),
    )
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sessions_expires"), ["expires"], unique=False)
        batch_op.create_index(batch_op.f("ix_sessions_user_pk"), ["user_pk"], unique=False)

    op.create_table(
        "tokens",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("identifier", sa.String(length=255), nullable=False),
        sa.Column("intent", sa.String(length=32), nullable=False),
        sa.Column("user_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("expires", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expiring", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("key_digest", sa.String(length=64), nullable=False),
        sa.Column("key_sealed", sa.Text(), nullable=False),
        sa.Column("managed", sa.String(length=200), nullable=True),
        sa.Column("created", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_pk"], ["users.pk"], name=op.f("fk_tokens_user_pk_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_tokens")),
        sa.UniqueConstraint("identifier", name=op.f("uq_tokens_identifier")),
        sa.UniqueConstraint("key_digest", name=op.f("uq_tokens_key_digest")),
    )
    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tokens_user_pk"), ["user_pk"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_users_username"), table_name="users")

    with op.batch_alter_table("tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tokens_user_pk"))

    op.drop_table("tokens")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sessions_user_pk"))
        batch_op.drop_index(batch_op.f("ix_sessions_expires"))

    op.drop_table("sessions")
    with op.batch_alter_table("group_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_group_members_user_pk"))

    op.drop_table("group_members")
    op.drop_table("applications")
    op.drop_table("users")
    op.drop_table("system_state")
    op.drop_table("providers")
    op.drop_table("leases")
    op.drop_table("groups")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_events_expires"))
        batch_op.drop_index(batch_op.f("ix_events_created"))
        batch_op.drop_index(batch_op.f("ix_events_action"))

    op.drop_table("events")
    op.drop_table("certificate_keypairs")
