"""stage settings in authentik's vocabulary: flows by pk, password backends by authentik's names;
an invitation goes with its creator

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import tessera.core.store.tables

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: Sequence[str] | None = None
depends_on: Sequence[str] | None = None

# Settings that name a flow, by stage kind: slugs before this revision, pks after it.
FLOW_SETTINGS = {
    "password": ("configure_flow",),
    "authenticator_totp": ("configure_flow",),
    "authenticator_static": ("configure_flow",),
    "authenticator_webauthn": ("configure_flow",),
    "identification": ("enrollment_flow", "recovery_flow", "passwordless_flow"),
    "redirect": ("target_flow",),
}
OLD_BACKEND, NEW_BACKEND = "tessera.core.auth.", "authentik.core.auth."
INVITATIONS_FK = "fk_invitations_created_by_users"


def _stages() -> sa.TableClause:
    return sa.table(
        "stages",
        sa.column("pk"),
        sa.column("kind"),
        sa.column("config", tessera.core.store.tables.JSON),
    )


def _flows(bind: sa.Connection) -> dict[str, str]:
    """slug -> pk of every flow."""
    flows = sa.table("flows", sa.column("pk"), sa.column("slug"))
    return {slug: pk for pk, slug in bind.execute(sa.select(flows.c.pk, flows.c.slug)).all()}


def _rewrite(bind: sa.Connection, change: Any) -> None:
    """Apply `change(kind, config) -> config` to every stage, writing only the changed ones."""
    stages = _stages()
    for pk, kind, config in bind.execute(
        sa.select(stages.c.pk, stages.c.kind, stages.c.config)
    ).all():
        if not isinstance(config, dict):
            continue
        changed = change(kind, dict(config))
        if changed != config:
            bind.execute(stages.update().where(stages.c.pk == pk).values(config=changed))


def to_authentik(bind: sa.Connection) -> None:
    """Flows named by slug become their pk (a slug naming no flow becomes null, as a deleted
    flow's pk would); `tessera.core.auth.<Name>` backends become `authentik.core.auth.<Name>`;
    an email stage's token validity in minutes becomes authentik's `minutes=<n>`. Running it
    again changes nothing."""
    pks = _flows(bind)
    known = set(pks.values())

    def change(kind: str, config: dict[str, Any]) -> dict[str, Any]:
        for key in FLOW_SETTINGS.get(kind, ()):
            value = config.get(key)
            if isinstance(value, str) and value not in known:
                config[key] = pks.get(value)
        if kind == "password" and isinstance(config.get("backends"), list):
            config["backends"] = [
                NEW_BACKEND + b.removeprefix(OLD_BACKEND)
                if isinstance(b, str) and b.startswith(OLD_BACKEND)
                else b
                for b in config["backends"]
            ]
        expiry = config.get("token_expiry")
        if kind == "email" and isinstance(expiry, int) and not isinstance(expiry, bool):
            config["token_expiry"] = f"minutes={expiry}"
        return config

    _rewrite(bind, change)


def to_tessera(bind: sa.Connection) -> None:
    """The reverse of `to_authentik` for the settings 0008 knows."""
    slugs = {pk: slug for slug, pk in _flows(bind).items()}

    def change(kind: str, config: dict[str, Any]) -> dict[str, Any]:
        for key in FLOW_SETTINGS.get(kind, ()):
            value = config.get(key)
            if isinstance(value, str) and value in slugs:
                config[key] = slugs[value]
        if kind == "redirect" and config.get("target_flow") is None and "target_flow" in config:
            config["target_flow"] = ""
        if kind == "password" and isinstance(config.get("backends"), list):
            config["backends"] = [
                OLD_BACKEND + b.removeprefix(NEW_BACKEND)
                if isinstance(b, str) and b.startswith(NEW_BACKEND)
                else b
                for b in config["backends"]
            ]
        expiry = config.get("token_expiry")
        if kind == "email" and isinstance(expiry, str) and expiry.startswith("minutes="):
            config["token_expiry"] = int(float(expiry.removeprefix("minutes=")))
        return config

    _rewrite(bind, change)


def upgrade() -> None:
    bind = op.get_bind()
    to_authentik(bind)
    # authentik deletes a user's invitations with the user; before, they stayed without one.
    invitations = sa.table("invitations", sa.column("created_by"))
    bind.execute(invitations.delete().where(invitations.c.created_by.is_(None)))
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.drop_constraint(INVITATIONS_FK, type_="foreignkey")
        batch_op.alter_column(
            "created_by", existing_type=tessera.core.store.tables.BIGINT, nullable=False
        )
        batch_op.create_foreign_key(
            INVITATIONS_FK, "users", ["created_by"], ["pk"], ondelete="CASCADE"
        )


def downgrade() -> None:
    with op.batch_alter_table("invitations", schema=None) as batch_op:
        batch_op.drop_constraint(INVITATIONS_FK, type_="foreignkey")
        batch_op.alter_column(
            "created_by", existing_type=tessera.core.store.tables.BIGINT, nullable=True
        )
        batch_op.create_foreign_key(
            INVITATIONS_FK, "users", ["created_by"], ["pk"], ondelete="SET NULL"
        )
    to_tessera(op.get_bind())
