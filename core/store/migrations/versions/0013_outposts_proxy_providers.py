"""outposts and proxy providers: proxy_providers, outposts, outpost_providers

A proxy provider is a provider whose OAuth2 client settings live in `oauth2_providers` as any
OAuth2 provider's do, plus its own row here. An outpost has a service account (`user_pk`) whose
API token the outpost presents; its providers are linked through `outpost_providers`.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tessera.core.store.tables

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "proxy_providers",
        sa.Column("pk", _BIGINT, nullable=False),
        sa.Column("mode", sa.String(length=16), server_default="proxy", nullable=False),
        sa.Column("external_host", sa.String(length=2000), nullable=False),
        sa.Column("internal_host", sa.String(length=2000), server_default="", nullable=False),
        sa.Column(
            "internal_host_ssl_validation", sa.Boolean(), server_default=sa.true(), nullable=False
        ),
        sa.Column("certificate", sa.String(length=36), nullable=True),
        sa.Column("skip_path_regex", sa.Text(), server_default="", nullable=False),
        sa.Column("basic_auth_enabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "basic_auth_user_attribute", sa.String(length=200), server_default="", nullable=False
        ),
        sa.Column(
            "basic_auth_password_attribute",
            sa.String(length=200),
            server_default="",
            nullable=False,
        ),
        sa.Column("intercept_header_auth", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("cookie_domain", sa.String(length=255), server_default="", nullable=False),
        sa.Column("cookie_secret_sealed", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate"],
            ["certificate_keypairs.pk"],
            name=op.f("fk_proxy_providers_certificate_certificate_keypairs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["pk"],
            ["providers.pk"],
            name=op.f("fk_proxy_providers_pk_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_proxy_providers")),
    )
    op.create_table(
        "outposts",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("config", tessera.core.store.tables.JSON, nullable=False),
        sa.Column("managed", sa.String(length=200), nullable=True),
        sa.Column("user_pk", _BIGINT, nullable=True),
        sa.Column("created", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_pk"],
            ["users.pk"],
            name=op.f("fk_outposts_user_pk_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_outposts")),
        sa.UniqueConstraint("managed", name=op.f("uq_outposts_managed")),
        sa.UniqueConstraint("name", name=op.f("uq_outposts_name")),
    )
    with op.batch_alter_table("outposts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outposts_user_pk"), ["user_pk"], unique=False)
    op.create_table(
        "outpost_providers",
        sa.Column("outpost", sa.String(length=36), nullable=False),
        sa.Column("provider", _BIGINT, nullable=False),
        sa.Column("position", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["outpost"],
            ["outposts.pk"],
            name=op.f("fk_outpost_providers_outpost_outposts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["provider"],
            ["providers.pk"],
            name=op.f("fk_outpost_providers_provider_providers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("outpost", "provider", name=op.f("pk_outpost_providers")),
    )
    with op.batch_alter_table("outpost_providers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_outpost_providers_provider"), ["provider"], unique=False
        )


def downgrade() -> None:
    op.drop_table("outpost_providers")
    with op.batch_alter_table("outposts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outposts_user_pk"))
    op.drop_table("outposts")
    op.drop_table("proxy_providers")
