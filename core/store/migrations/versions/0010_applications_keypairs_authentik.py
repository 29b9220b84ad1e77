"""applications: meta_icon and meta_hide; key pairs: authentik's key type "ec" for "ecdsa"

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def _keypairs() -> sa.TableClause:
    return sa.table("certificate_keypairs", sa.column("key_type"))


def upgrade() -> None:
    """Filled in by the next commit (the number is taken)."""
    _keypairs()


def downgrade() -> None:
    """Nothing to undo yet."""
