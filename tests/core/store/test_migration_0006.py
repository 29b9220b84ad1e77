"""Revision 0006 on data written at 0005, on SQLite and PostgreSQL: the default authentication
flow's password stage gets `configure_flow: default-password-change` unless it has a
configure_flow already (an admin's value, null included); other password stages are left alone;
running it again changes nothing; going back to 0005 takes the key out of every password stage."""

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
DEFAULT = "default-authentication-password"
BACKENDS = {"backends": ["tessera.core.auth.InbuiltBackend"]}
# The stages table as 0005 left it (tables.stages describes the newest schema).
STAGES = sa.table(
    "stages",
    *(sa.column(c) for c in ("pk", "name", "kind", "managed", "created")),
    sa.column("config", tables.JSON),
)
M0006 = importlib.import_module(
    "tessera.core.store.migrations.versions.0006_password_configure_flow"
)


def _seed(connection: sa.Connection, default_config: dict[str, Any]) -> None:
    rows = [
        (DEFAULT, "password", f"goauthentik.io/flows/{DEFAULT}", default_config),
        ("company-password", "password", None, dict(BACKENDS)),
        ("company-totp", "authenticator_totp", None, {"digits": 6}),
    ]
    connection.execute(
        STAGES.insert(),
        [
            {
                "pk": f"s-{i}",
                "name": name,
                "kind": kind,
                "managed": managed,
                "config": cfg,
                "created": CREATED,
            }
            for i, (name, kind, managed, cfg) in enumerate(rows)
        ],
    )


def _configs(connection: sa.Connection) -> dict[str, Any]:
    rows = connection.execute(sa.select(STAGES.c.name, STAGES.c.config))
    return {name: cfg for name, cfg in rows}


def _set_config(connection: sa.Connection, name: str, cfg: dict[str, Any]) -> None:
    connection.execute(STAGES.update().where(STAGES.c.name == name).values(config=cfg))


@pytest.fixture
def settings_0005(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> config.Settings:
    return migrationkit.settings_on(backend, tmp_path, request)


@pytest.fixture
async def at_0005(settings_0005: config.Settings) -> Any:
    db = store.Store(settings_0005)
    await db.open()
    await migrationkit.run(db, migrationkit.to, "0005")
    yield db
    await db.close()


async def test_0006_gives_the_default_password_stage_the_password_change_flow(
    at_0005: store.Store,
) -> None:
    await migrationkit.run(at_0005, _seed, dict(BACKENDS))
    await migrationkit.run(at_0005, migrationkit.to, "0006")
    configs = await migrationkit.run(at_0005, _configs)
    assert configs[DEFAULT] == {**BACKENDS, "configure_flow": "default-password-change"}
    # Not the managed default stage, or not a password stage: untouched.
    assert configs["company-password"] == BACKENDS
    assert configs["company-totp"] == {"digits": 6}


@pytest.mark.parametrize("value", ["company-password-change", None])
async def test_0006_keeps_a_configure_flow_already_set(
    at_0005: store.Store, value: str | None
) -> None:
    """A value that is there (an admin's, or null meaning "offer no password change") stays."""
    await migrationkit.run(at_0005, _seed, {**BACKENDS, "configure_flow": value})
    await migrationkit.run(at_0005, migrationkit.to, "0006")
    assert (await migrationkit.run(at_0005, _configs))[DEFAULT] == {
        **BACKENDS,
        "configure_flow": value,
    }


async def test_0006_again_changes_nothing_and_keeps_the_admins_later_choice(
    at_0005: store.Store,
) -> None:
    await migrationkit.run(at_0005, _seed, dict(BACKENDS))
    await migrationkit.run(at_0005, migrationkit.to, "0006")
    once = await migrationkit.run(at_0005, _configs)
    await migrationkit.run(at_0005, M0006.set_configure_flow)
    assert await migrationkit.run(at_0005, _configs) == once
    # The admin turns the password change off afterwards: running the step again keeps that.
    await migrationkit.run(at_0005, _set_config, DEFAULT, {**BACKENDS, "configure_flow": None})
    await migrationkit.run(at_0005, M0006.set_configure_flow)
    assert (await migrationkit.run(at_0005, _configs))[DEFAULT]["configure_flow"] is None


async def test_0006_down_and_up_again(at_0005: store.Store) -> None:
    """Back at 0005 no password stage carries the key (the stage would refuse it there); up
    again, the default stage gets the default flow back."""
    await migrationkit.run(at_0005, _seed, dict(BACKENDS))
    await migrationkit.run(at_0005, migrationkit.to, "0006")
    await migrationkit.run(at_0005, _set_config, "company-password", {"configure_flow": "mine"})
    await migrationkit.run(at_0005, migrationkit.back, "0005")
    configs = await migrationkit.run(at_0005, _configs)
    assert configs[DEFAULT] == BACKENDS and configs["company-password"] == {}
    assert configs["company-totp"] == {"digits": 6}
    await migrationkit.run(at_0005, migrationkit.to, "0006")
    configs = await migrationkit.run(at_0005, _configs)
    assert configs[DEFAULT] == {**BACKENDS, "configure_flow": "default-password-change"}
