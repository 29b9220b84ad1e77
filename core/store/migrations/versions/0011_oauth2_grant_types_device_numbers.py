"""oauth2 providers: grant_types; authenticator devices: num_pk, authentik's integer device id

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tessera.core.store.tables

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    # Both columns are added in place (no table rebuild): null grant_types means every grant.
    with op.batch_alter_table("oauth2_providers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grant_types", tessera.core.store.tables.JSON, nullable=True))
    with op.batch_alter_table("authenticator_devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("num_pk", sa.Integer(), nullable=True))
    _number_devices(op.get_bind())
    with op.batch_alter_table("authenticator_devices", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_authenticator_devices_num_pk"), ["num_pk"], unique=True
        )


def _number_devices(bind: sa.Connection) -> None:
    """Existing devices are numbered 1, 2, ... in the order they were created."""
    devices = sa.table(
        "authenticator_devices", sa.column("pk"), sa.column("created"), sa.column("num_pk")
    )
    rows = bind.execute(sa.select(devices.c.pk).order_by(devices.c.created, devices.c.pk)).scalars()
    for number, pk in enumerate(list(rows), start=1):
        bind.execute(devices.update().where(devices.c.pk == pk).values(num_pk=number))


def downgrade() -> None:
    with op.batch_alter_table("authenticator_devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_authenticator_devices_num_pk"))
        batch_op.drop_column("num_pk")
    with op.batch_alter_table("oauth2_providers", schema=None) as batch_op:
        batch_op.drop_column("grant_types")
