"""Revision 0009 on data written at 0008, on SQLite and PostgreSQL: stage settings naming flows by
slug name them by pk (a slug naming no flow becomes null); password backends `tessera.core.auth.*`
become authentik's `authentik.core.auth.*`; an email stage's token validity in minutes becomes
`minutes=<n>`; invitations whose creator is gone are deleted and later ones go with their
creator. Running the settings step again changes nothing; going back to 0008 restores the old
forms."""

from __future__ import annotations

import datetime as dt
import importlib
from pathlib import Path
from typing import Any

import migrationkit
import pytest
import sqlalchemy as sa

from tessera.core import config, store
from tessera.core.store import tables

CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
FLOW_PK = "f0000000-0000-4000-8000-000000000001"
# The tables as 0008 left them (tables.py describes the newest schema).
STAGES = sa.table(
    "stages",
    *(sa.column(c) for c in ("pk", "name", "kind", "created")),
    sa.column("config", tables.JSON),
)
FLOWS = sa.table(
    "flows", *(sa.column(c) for c in ("pk", "name", "slug", "title", "designation", "created"))
)
USERS = sa.table(
    "users",
    *(sa.column(c) for c in ("pk", "uuid", "username", "username_folded", "date_joined")),
    sa.column("attributes", tables.JSON),
)
INVITATIONS = sa.table(
    "invitations",
    *(sa.column(c) for c in ("pk", "name", "single_use", "created_by", "created")),
    sa.column("fixed_data", tables.JSON),
)
M0009 = importlib.import_module(
    "tessera.core.store.migrations.versions.0009_stage_settings_authentik"
)
OLD = {
    "password": {
        "backends": ["tessera.core.auth.InbuiltBackend", "tessera.core.auth.TokenBackend"],
        "configure_flow": "change-password",
    },
    "identification": {"recovery_flow": "change-password", "enrollment_flow": "gone"},
    "redirect": {"mode": "flow", "target_flow": "change-password"},
    "email": {"token_expiry": 45, "subject": "Hi"},
    "authenticator_totp": {"digits": 6, "configure_flow": FLOW_PK},
    "deny": {"deny_message": "change-password"},
}


def _seed(connection: sa.Connection) -> None:
    connection.execute(
        FLOWS.insert(),
        [
            {
                "pk": FLOW_PK,
                "name": "Change password",
                "slug": "change-password",
                "title": "Change password",
                "designation": "stage_configuration",
                "created": CREATED,
            }
        ],
    )
    connection.execute(
        STAGES.insert(),
        [
            {"pk": f"s-{kind}", "name": kind, "kind": kind, "config": cfg, "created": CREATED}
            for kind, cfg in OLD.items()
        ],
    )
    connection.execute(
        USERS.insert(),
        [
            {
                "pk": 7,
                "uuid": "u-7",
                "username": "ada",
                "username_folded": "ada",
                "attributes": {},
                "date_joined": CREATED,
            }
        ],
    )
    connection.execute(
        INVITATIONS.insert(),
        [
            {
                "pk": pk,
                "name": pk,
                "single_use": False,
                "fixed_data": {},
                "created_by": by,
                "created": CREATED,
            }
            for pk, by in (("i-kept", 7), ("i-orphan", None))
        ],
    )


def _configs(connection: sa.Connection) -> dict[str, Any]:
    return dict(connection.execute(sa.select(STAGES.c.kind, STAGES.c.config)).all())


def _invitations(connection: sa.Connection) -> list[str]:
    return sorted(pk for (pk,) in connection.execute(sa.select(INVITATIONS.c.pk)).all())


def _creator_reference(connection: sa.Connection) -> tuple[str, bool]:
    """How `invitations.created_by` refers to users: its ON DELETE, and whether it may be null."""
    inspector = sa.inspect(connection)
    (fk,) = [f for f in inspector.get_foreign_keys("invitations") if f["referred_table"] == "users"]
    (column,) = [c for c in inspector.get_columns("invitations") if c["name"] == "created_by"]
    return str(fk["options"].get("ondelete", "")).upper(), bool(column["nullable"])


@pytest.fixture
def settings_0008(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> config.Settings:
    return migrationkit.settings_on(backend, tmp_path, request)


@pytest.fixture
async def at_0008(settings_0008: config.Settings) -> Any:
    db = store.Store(settings_0008)
    await db.open()
    await migrationkit.run(db, migrationkit.to, "0008")
    await migrationkit.run(db, _seed)
    yield db
    await db.close()


async def test_0009_moves_stage_settings_to_authentiks_vocabulary(at_0008: store.Store) -> None:
    await migrationkit.run(at_0008, migrationkit.to, "0009")
    configs = await migrationkit.run(at_0008, _configs)
    assert configs["password"] == {
        "backends": ["authentik.core.auth.InbuiltBackend", "authentik.core.auth.TokenBackend"],
        "configure_flow": FLOW_PK,
    }
    # A slug that names no flow: null, as a deleted flow's reference.
    assert configs["identification"] == {"recovery_flow": FLOW_PK, "enrollment_flow": None}
    assert configs["redirect"] == {"mode": "flow", "target_flow": FLOW_PK}
    assert configs["email"] == {"token_expiry": "minutes=45", "subject": "Hi"}
    # Already a pk, or not a setting naming a flow: untouched.
    assert configs["authenticator_totp"] == OLD["authenticator_totp"]
    assert configs["deny"] == OLD["deny"]
    once = configs
    await migrationkit.run(at_0008, M0009.to_authentik)
    assert await migrationkit.run(at_0008, _configs) == once


async def test_0009_invitations_go_with_their_creator(at_0008: store.Store) -> None:
    await migrationkit.run(at_0008, migrationkit.to, "0009")
    assert await migrationkit.run(at_0008, _invitations) == ["i-kept"]
    assert await migrationkit.run(at_0008, _creator_reference) == ("CASCADE", False)


async def test_0009_down_restores_the_old_forms(at_0008: store.Store) -> None:
    await migrationkit.run(at_0008, migrationkit.to, "0009")
    await migrationkit.run(at_0008, migrationkit.back, "0008")
    configs = await migrationkit.run(at_0008, _configs)
    assert configs["password"] == OLD["password"]
    assert configs["redirect"] == OLD["redirect"]
    assert configs["email"] == OLD["email"]
    assert configs["identification"] == {
        "recovery_flow": "change-password",
        "enrollment_flow": None,
    }
