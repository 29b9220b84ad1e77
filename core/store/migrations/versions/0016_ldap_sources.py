"""LDAP sources: ldap_sources, ldap_source_property_mappings, ldap_source_syncs,
ldap_source_users, ldap_source_groups

An LDAP source syncs users and groups in from a directory and lets them log in by binding to it.
`ldap_source_users` and `ldap_source_groups` link the objects a source created to the entry they
came from (by its uniqueness field): a sync touches those only. `ldap_source_syncs` holds each
source's last run.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tessera.core.store.tables

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

_BIGINT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = tessera.core.store.tables.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ldap_source_property_mappings",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("expression", sa.Text(), nullable=False),
        sa.Column("managed", sa.String(length=200), nullable=True),
        sa.Column("created", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ldap_source_property_mappings")),
        sa.UniqueConstraint("managed", name=op.f("uq_ldap_source_property_mappings_managed")),
        sa.UniqueConstraint("name", name=op.f("uq_ldap_source_property_mappings_name")),
    )
    op.create_table(
        "ldap_sources",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=50), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("promoted", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("authentication_flow", sa.String(length=36), nullable=True),
        sa.Column("enrollment_flow", sa.String(length=36), nullable=True),
        sa.Column("policy_engine_mode", sa.String(length=8), server_default="any", nullable=False),
        sa.Column(
            "user_matching_mode", sa.String(length=16), server_default="identifier", nullable=False
        ),
        sa.Column("user_path_template", sa.String(length=200), nullable=False),
        sa.Column("icon", sa.String(length=2000), nullable=True),
        sa.Column("server_uri", sa.String(length=2000), nullable=False),
        sa.Column("peer_certificate", sa.String(length=36), nullable=True),
        sa.Column("client_certificate", sa.String(length=36), nullable=True),
        sa.Column("bind_cn", sa.String(length=1024), server_default="", nullable=False),
        sa.Column("bind_password_sealed", sa.Text(), server_default="", nullable=False),
        sa.Column("start_tls", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("sni", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("base_dn", sa.String(length=1024), nullable=False),
        sa.Column("additional_user_dn", sa.String(length=1024), server_default="", nullable=False),
        sa.Column("additional_group_dn", sa.String(length=1024), server_default="", nullable=False),
        sa.Column("user_object_filter", sa.String(length=4096), nullable=False),
        sa.Column("group_object_filter", sa.String(length=4096), nullable=False),
        sa.Column("group_membership_field", sa.String(length=200), nullable=False),
        sa.Column("user_membership_attribute", sa.String(length=200), nullable=False),
        sa.Column("object_uniqueness_field", sa.String(length=200), nullable=False),
        sa.Column(
            "password_login_update_internal_password",
            sa.Boolean(),
            server_default=sa.false(),
            nullable=False,
        ),
        sa.Column("sync_users", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("sync_users_password", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("sync_groups", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("sync_parent_group", sa.String(length=36), nullable=True),
        sa.Column(
            "lookup_groups_from_user", sa.Boolean(), server_default=sa.false(), nullable=False
        ),
        sa.Column(
            "delete_not_found_objects", sa.Boolean(), server_default=sa.false(), nullable=False
        ),
        sa.Column(
            "sync_outgoing_trigger_mode",
            sa.String(length=16),
            server_default="deferred_end",
            nullable=False,
        ),
        sa.Column("sync_group_hierarchy", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("user_property_mappings", tessera.core.store.tables.JSON, nullable=False),
        sa.Column("group_property_mappings", tessera.core.store.tables.JSON, nullable=False),
        sa.Column("managed", sa.String(length=200), nullable=True),
        sa.Column("created", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["authentication_flow"],
            ["flows.pk"],
            name=op.f("fk_ldap_sources_authentication_flow_flows"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["client_certificate"],
            ["certificate_keypairs.pk"],
            name=op.f("fk_ldap_sources_client_certificate_certificate_keypairs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["enrollment_flow"],
            ["flows.pk"],
            name=op.f("fk_ldap_sources_enrollment_flow_flows"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["peer_certificate"],
            ["certificate_keypairs.pk"],
            name=op.f("fk_ldap_sources_peer_certificate_certificate_keypairs"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["sync_parent_group"],
            ["groups.pk"],
            name=op.f("fk_ldap_sources_sync_parent_group_groups"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ldap_sources")),
        sa.UniqueConstraint("name", name=op.f("uq_ldap_sources_name")),
        sa.UniqueConstraint("slug", name=op.f("uq_ldap_sources_slug")),
    )
    op.create_table(
        "ldap_source_groups",
        sa.Column("pk", _BIGINT, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=36), nullable=False),
        sa.Column("group_pk", sa.String(length=36), nullable=False),
        sa.Column("identifier", sa.String(length=1024), nullable=False),
        sa.Column("dn", sa.String(length=2048), nullable=False),
        sa.Column("created", _UTC, nullable=False),
        sa.Column("last_updated", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["group_pk"],
            ["groups.pk"],
            name=op.f("fk_ldap_source_groups_group_pk_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["source"],
            ["ldap_sources.pk"],
            name=op.f("fk_ldap_source_groups_source_ldap_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ldap_source_groups")),
        sa.UniqueConstraint("group_pk", name=op.f("uq_ldap_source_groups_group_pk")),
        sa.UniqueConstraint(
            "source", "identifier", name=op.f("uq_ldap_source_groups_source_identifier")
        ),
    )
    op.create_table(
        "ldap_source_syncs",
        sa.Column("source", sa.String(length=36), nullable=False),
        sa.Column("running_since", _UTC, nullable=True),
        sa.Column("started", _UTC, nullable=True),
        sa.Column("finished", _UTC, nullable=True),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("counts", tessera.core.store.tables.JSON, nullable=False),
        sa.Column("messages", tessera.core.store.tables.JSON, nullable=False),
        sa.Column("last_successful", _UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["source"],
            ["ldap_sources.pk"],
            name=op.f("fk_ldap_source_syncs_source_ldap_sources"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_ldap_source_syncs")),
    )
    op.create_table(
        "ldap_source_users",
        sa.Column("pk", _BIGINT, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=36), nullable=False),
        sa.Column("user_pk", _BIGINT, nullable=False),
        sa.Column("identifier", sa.String(length=1024), nullable=False),
        sa.Column("dn", sa.String(length=2048), nullable=False),
        sa.Column("created", _UTC, nullable=False),
        sa.Column("last_updated", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["source"],
            ["ldap_sources.pk"],
            name=op.f("fk_ldap_source_users_source_ldap_sources"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_pk"],
            ["users.pk"],
            name=op.f("fk_ldap_source_users_user_pk_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_ldap_source_users")),
        sa.UniqueConstraint(
            "source", "identifier", name=op.f("uq_ldap_source_users_source_identifier")
        ),
        sa.UniqueConstraint("user_pk", name=op.f("uq_ldap_source_users_user_pk")),
    )


def downgrade() -> None:
    op.drop_table("ldap_source_users")
    op.drop_table("ldap_source_groups")
    op.drop_table("ldap_source_syncs")
    op.drop_table("ldap_sources")
    op.drop_table("ldap_source_property_mappings")
