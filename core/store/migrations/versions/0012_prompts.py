"""prompts: the prompt stage's fields as objects of their own (authentik's Prompt)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None


def upgrade() -> None:
    """Filled in by the next commit (the number is taken)."""


def downgrade() -> None:
    """Nothing to undo yet."""
