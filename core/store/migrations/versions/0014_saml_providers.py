"""SAML providers: saml_providers, saml_property_mappings, saml_sessions

A SAML provider is a row of `providers` and one here, with one pk. `saml_sessions` remembers
which login session an assertion was issued in (SessionIndex, NameID), for Single Logout.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tessera.core.store.tables

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = tessera.core.store.tables.UTCDateTime(timezone=True)


def _kp(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.String(length=36), nullable=True)


def _kp_fk(name: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [name],
        ["certificate_keypairs.pk"],
        name=op.f(f"fk_saml_providers_{name}_certificate_keypairs"),
        ondelete="SET NULL",
    )


def upgrade() -> None:
    op.create_table(
        "saml_property_mappings",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("saml_name", sa.String(length=500), nullable=False),
        sa.Column("friendly_name", sa.String(length=200), nullable=True),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.Column("managed", sa.String(length=200), nullable=True),
        sa.Column("created", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_saml_property_mappings")),
        sa.UniqueConstraint("managed", name=op.f("uq_saml_property_mappings_managed")),
        sa.UniqueConstraint("name", name=op.f("uq_saml_property_mappings_name")),
    )
    op.create_table(
        "saml_providers",
        sa.Column("pk", _BIGINT, nullable=False),
        sa.Column("authentication_flow", sa.String(length=36), nullable=True),
        sa.Column("authorization_flow", sa.String(length=36), nullable=False),
        sa.Column("invalidation_flow", sa.String(length=36), nullable=True),
        sa.Column("acs_url", sa.String(length=2000), nullable=False),
        sa.Column("sls_url", sa.String(length=2000), server_default="", nullable=False),
        sa.Column("audience", sa.Text(), server_default="", nullable=False),
        sa.Column("issuer_override", sa.Text(), server_default="", nullable=False),
        sa.Column("sp_binding", sa.String(length=16), server_default="redirect", nullable=False),
        sa.Column("sls_binding", sa.String(length=16), server_default="redirect", nullable=False),
        sa.Column(
            "logout_method",
            sa.String(length=32),
            server_default="frontchannel_iframe",
            nullable=False,
        ),
        sa.Column("name_id_mapping", sa.String(length=36), nullable=True),
        sa.Column("authn_context_class_ref_mapping", sa.String(length=36), nullable=True),
        sa.Column(
            "assertion_valid_not_before",
            sa.String(length=100),
            server_default="minutes=-5",
            nullable=False,
        ),
        sa.Column(
            "assertion_valid_not_on_or_after",
            sa.String(length=100),
            server_default="minutes=5",
            nullable=False,
        ),
        sa.Column(
            "session_valid_not_on_or_after",
            sa.String(length=100),
            server_default="minutes=86400",
            nullable=False,
        ),
        sa.Column("digest_algorithm", sa.String(length=100), nullable=False),
        sa.Column("signature_algorithm", sa.String(length=100), nullable=False),
        _kp("signing_kp"),
        _kp("verification_kp"),
        _kp("encryption_kp"),
        sa.Column("sign_assertion", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("sign_response", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("sign_logout_request", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("sign_logout_response", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("default_relay_state", sa.Text(), server_default="", nullable=False),
        sa.Column("default_name_id_policy", sa.String(length=100), nullable=False),
        sa.Column("property_mappings", tessera.core.store.tables.JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["pk"],
            ["providers.pk"],
            name=op.f("fk_saml_providers_pk_providers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["authentication_flow"],
            ["flows.pk"],
            name=op.f("fk_saml_providers_authentication_flow_flows"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["authorization_flow"],
            ["flows.pk"],
            name=op.f("fk_saml_providers_authorization_flow_flows"),
        ),
        sa.ForeignKeyConstraint(
            ["invalidation_flow"],
            ["flows.pk"],
            name=op.f("fk_saml_providers_invalidation_flow_flows"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["name_id_mapping"],
            ["saml_property_mappings.pk"],
            name=op.f("fk_saml_providers_name_id_mapping_saml_property_mappings"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["authn_context_class_ref_mapping"],
            ["saml_property_mappings.pk"],
            name=op.f("fk_saml_providers_authn_context_class_ref_mapping_saml_property_mappings"),
            ondelete="SET NULL",
        ),
        _kp_fk("signing_kp"),
        _kp_fk("verification_kp"),
        _kp_fk("encryption_kp"),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_saml_providers")),
    )
    op.create_table(
        "saml_sessions",
        sa.Column("session_index", sa.String(length=64), nullable=False),
        sa.Column("provider", _BIGINT, nullable=False),
        sa.Column("user_pk", _BIGINT, nullable=False),
        sa.Column("session_digest", sa.String(length=64), nullable=False),
        sa.Column("name_id", sa.Text(), nullable=False),
        sa.Column("name_id_format", sa.String(length=200), nullable=False),
        sa.Column("expires", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["provider"],
            ["providers.pk"],
            name=op.f("fk_saml_sessions_provider_providers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"],
            ["users.pk"],
            name=op.f("fk_saml_sessions_user_pk_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_index", name=op.f("pk_saml_sessions")),
    )
    with op.batch_alter_table("saml_sessions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_saml_sessions_session_digest"), ["session_digest"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_saml_sessions_provider"), ["provider"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("saml_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_saml_sessions_provider"))
        batch_op.drop_index(batch_op.f("ix_saml_sessions_session_digest"))
    op.drop_table("saml_sessions")
    op.drop_table("saml_providers")
    op.drop_table("saml_property_mappings")
