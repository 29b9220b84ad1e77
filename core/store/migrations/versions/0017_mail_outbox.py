"""mail outbox: mail_outbox

Every outgoing mail is written here when its cause happens and delivered by the outbox drainer
(`tasks.mail`) with retries, so that a restart or an SMTP outage loses none.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tessera.core.store.tables

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

_UTC = tessera.core.store.tables.UTCDateTime(timezone=True)
_JSON = tessera.core.store.tables.JSON


def upgrade() -> None:
    op.create_table(
        "mail_outbox",
        sa.Column("pk", sa.String(length=36), nullable=False),
        sa.Column("created", _UTC, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("next_attempt", _UTC, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("expires", _UTC, nullable=True),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("connection", _JSON, nullable=True),
        sa.Column("origin", _JSON, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("done", _UTC, nullable=True),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_mail_outbox")),
    )
    for column in ("status", "next_attempt", "done"):
        op.create_index(op.f(f"ix_mail_outbox_{column}"), "mail_outbox", [column])


def downgrade() -> None:
    for column in ("status", "next_attempt", "done"):
        op.drop_index(op.f(f"ix_mail_outbox_{column}"), table_name="mail_outbox")
    op.drop_table("mail_outbox")
