"""stage settings in authentik's vocabulary: flows by pk, password backends by authentik's names

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tessera.core.store.tables

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def _stages() -> sa.TableClause:
    return sa.table(
        "stages",
        sa.column("pk"),
        sa.column("kind"),
        sa.column("config", tessera.core.store.tables.JSON),
    )


def upgrade() -> None:
    """Filled in by the next commit (the number is taken)."""
    _stages()


def downgrade() -> None:
    """Nothing to undo yet."""
