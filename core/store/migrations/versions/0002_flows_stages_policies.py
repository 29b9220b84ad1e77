"""flows stages policies

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tessera.core.store.tables

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "flows",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("slug", sa.String(length=50), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("designation", sa.String(length=32), nullable=False),
        sa.Column("authentication", sa.String(length=32), server_default="none", nullable=False),
        sa.Column("policy_engine_mode", sa.String(length=8), server_default="any", nullable=False),
        sa.Column(
            "denied_action", sa.String(length=32), server_default="message_continue", nullable=False
        ),
        sa.Column("layout", sa.String(length=40), server_default="stacked", nullable=False),
        sa.Column("compatibility_mode", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("managed", sa.String(length=200), nullable=True),
        sa.Column("created", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_flows")),
        sa.UniqueConstraint("slug", name=op.f("uq_flows_slug")),
    )
    with op.batch_alter_table("flows", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flows_designation"), ["designation"], unique=False)

    op.create_table(
        "policies",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("execution_logging", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("managed", sa.String(length=200), nullable=True),
        sa.Column("created", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_policies")),
        sa.UniqueConstraint("name", name=op.f("uq_policies_name")),
    )
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_policies_kind"), ["kind"], unique=False)

    op.create_table(
        "stages",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column(
            "config",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("managed", sa.String(length=200), nullable=True),
        sa.Column("created", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_stages")),
        sa.UniqueConstraint("name", name=op.f("uq_stages_name")),
    )
    with op.batch_alter_table("stages", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_stages_kind"), ["kind"], unique=False)

    op.create_table(
        "authenticator_devices",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("user_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("confirmed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("secret_sealed", sa.Text(), server_default="", nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("last_used", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created", tessera.core.store.tables.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_pk"],
            ["users.pk"],
            name=op.f("fk_authenticator_devices_user_pk_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_authenticator_devices")),
    )
    with op.batch_alter_table("authenticator_devices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_authenticator_devices_user_pk"), ["user_pk"], unique=False
        )

    op.create_table(
        "flow_stage_bindings",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("target", sa.String(length=36), nullable=True),
        sa.Column("stage", sa.String(length=36), nullable=True),
        sa.Column("order", sa.Integer(), nullable=False),
        sa.Column("evaluate_on_plan", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("re_evaluate_policies", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column(
            "invalid_response_action", sa.String(length=32), server_default="retry", nullable=False
        ),
        sa.Column("policy_engine_mode", sa.String(length=8), server_default="any", nullable=False),
        sa.ForeignKeyConstraint(
            ["stage"],
            ["stages.pk"],
            name=op.f("fk_flow_stage_bindings_stage_stages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["target"],
            ["flows.pk"],
            name=op.f("fk_flow_stage_bindings_target_flows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_flow_stage_bindings")),
        sa.UniqueConstraint(
            "target", "stage", "order", name=op.f("uq_flow_stage_bindings_target_stage_order")
        ),
    )
    with op.batch_alter_table("flow_stage_bindings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_flow_stage_bindings_stage"), ["stage"], unique=False)
        batch_op.create_index(batch_op.f("ix_flow_stage_bindings_target"), ["target"], unique=False)

    op.create_table(
        "policy_bindings",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("target", sa.String(length=36), nullable=False),
        sa.Column("policy", sa.String(length=36), nullable=True),
        sa.Column("group", sa.String(length=36), nullable=True),
        sa.Column("user", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("negate", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("order", sa.Integer(), nullable=False),
        sa.Column("timeout", sa.Integer(), server_default="30", nullable=False),
        sa.Column("failure_result", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.CheckConstraint(
            'CASE WHEN "policy" IS NULL THEN 0 ELSE 1 END'
            ' + CASE WHEN "group" IS NULL THEN 0 ELSE 1 END'
            ' + CASE WHEN "user" IS NULL THEN 0 ELSE 1 END = 1',
            name=op.f("ck_policy_bindings_one_subject"),
        ),
        sa.ForeignKeyConstraint(
            ["group"],
            ["groups.pk"],
            name=op.f("fk_policy_bindings_group_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["policy"],
            ["policies.pk"],
            name=op.f("fk_policy_bindings_policy_policies"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user"], ["users.pk"], name=op.f("fk_policy_bindings_user_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_policy_bindings")),
    )
    with op.batch_alter_table("policy_bindings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_policy_bindings_target"), ["target"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("policy_bindings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policy_bindings_target"))

    op.drop_table("policy_bindings")
    with op.batch_alter_table("flow_stage_bindings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flow_stage_bindings_target"))
        batch_op.drop_index(batch_op.f("ix_flow_stage_bindings_stage"))

    op.drop_table("flow_stage_bindings")
    with op.batch_alter_table("authenticator_devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_authenticator_devices_user_pk"))

    op.drop_table("authenticator_devices")
    with op.batch_alter_table("stages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stages_kind"))

    op.drop_table("stages")
    with op.batch_alter_table("policies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_policies_kind"))

    op.drop_table("policies")
    with op.batch_alter_table("flows", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_flows_designation"))

    op.drop_table("flows")
