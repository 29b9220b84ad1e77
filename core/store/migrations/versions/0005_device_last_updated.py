"""authenticator devices: last_updated; the default setup stages get their configure_flow

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tessera.core.store.tables

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

# The default setup stages (managed, named after their flow), as created before this revision.
SETUP_STAGES = (
    "default-authenticator-totp-setup",
    "default-authenticator-static-setup",
    "default-authenticator-webauthn-setup",
)
MANAGED = "goauthentik.io/flows/"


def upgrade() -> None:
    with op.batch_alter_table("authenticator_devices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "last_updated",
                tessera.core.store.tables.UTCDateTime(timezone=True),
                nullable=True,
            )
        )
    devices = sa.table(
        "authenticator_devices",
        sa.column("last_updated"),
        sa.column("last_used"),
        sa.column("created"),
    )
    op.execute(
        devices.update().values(
            last_updated=sa.func.coalesce(devices.c.last_used, devices.c.created)
        )
    )
    _set_configure_flows(op.get_bind())


def _set_configure_flows(bind: sa.Connection) -> None:
    """The portal's "add" links now follow configure_flow: give the default stages theirs."""
    stages = sa.table(
        "stages",
        sa.column("pk"),
        sa.column("name"),
        sa.column("managed"),
        sa.column("config", tessera.core.store.tables.JSON),
    )
    managed = [MANAGED + name for name in SETUP_STAGES]
    for pk, name, config in bind.execute(
        sa.select(stages.c.pk, stages.c.name, stages.c.config).where(stages.c.managed.in_(managed))
    ):
        if name in SETUP_STAGES and not config.get("configure_flow"):
            changed = {**config, "configure_flow": name}
            bind.execute(stages.update().where(stages.c.pk == pk).values(config=changed))


def downgrade() -> None:
    with op.batch_alter_table("authenticator_devices", schema=None) as batch_op:
        batch_op.drop_column("last_updated")
