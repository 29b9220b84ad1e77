"""the default authentication flow's password stage gets its configure_flow

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tessera.core.store.tables

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

# The default password stage (managed) and the flow that changes a password, as created before
# this revision; new installs get the same from `flows.defaults`.
MANAGED = "goauthentik.io/flows/default-authentication-password"
CONFIGURE_FLOW = "default-password-change"


def upgrade() -> None:
    set_configure_flow(op.get_bind())


def _stages() -> sa.TableClause:
    return sa.table(
        "stages",
        sa.column("pk"),
        sa.column("kind"),
        sa.column("managed"),
        sa.column("config", tessera.core.store.tables.JSON),
    )


def set_configure_flow(bind: sa.Connection) -> None:
    """User settings list a password stage by its configure_flow: give the default stage the
    default password change flow, unless it has a configure_flow key already (an admin's value,
    null included, stays). Running it again changes nothing."""
    stages = _stages()
    found = bind.execute(
        sa.select(stages.c.pk, stages.c.config).where(
            stages.c.managed == MANAGED, stages.c.kind == "password"
        )
    )
    for pk, config in found.all():
        if isinstance(config, dict) and "configure_flow" not in config:
            changed = {**config, "configure_flow": CONFIGURE_FLOW}
            bind.execute(stages.update().where(stages.c.pk == pk).values(config=changed))


def downgrade() -> None:
    """At 0005 a password stage's settings have no configure_flow (unknown settings make a stage
    unusable): take it out of every password stage."""
    bind = op.get_bind()
    stages = _stages()
    found = bind.execute(sa.select(stages.c.pk, stages.c.config).where(stages.c.kind == "password"))
    for pk, config in found.all():
        if isinstance(config, dict) and "configure_flow" in config:
            kept = {k: v for k, v in config.items() if k != "configure_flow"}
            bind.execute(stages.update().where(stages.c.pk == pk).values(config=kept))
