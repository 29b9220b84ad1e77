"""Revision 0005 on data written at 0004, on SQLite and PostgreSQL: devices get `last_updated`
(their last use, else their creation), and the default setup stages get their `configure_flow`
unless an admin already set one."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import migrationkit
import pytest
import sqlalchemy as sa

from tessera.core import config, store
from tessera.core.store import tables

DEVICES = sa.table(
    "authenticator_devices",
    sa.column("pk"),
    sa.column("user_pk"),
    sa.column("kind"),
    sa.column("name"),
    sa.column("data", tables.JSON),
    sa.column("last_used", tables.UTCDateTime()),
    sa.column("created", tables.UTCDateTime()),
)
CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
USED = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)


def _stage(pk: str, name: str, config: dict[str, Any]) -> dict[str, Any]:
    managed = f"goauthentik.io/flows/{name}"
    return {"pk": pk, "name": name, "kind": "authenticator_totp", "config": config,
            "managed": managed, "created": CREATED}  # fmt: skip


def _seed(connection: sa.Connection) -> None:
    user = connection.execute(
        sa.insert(tables.users).values(
            uuid="00000000-0000-4000-8000-000000000001",
            username="olga",
            username_folded="olga",
            attributes={},
            date_joined=CREATED,
        )
    ).inserted_primary_key[0]
    for pk, used in (("d-used", USED), ("d-new", None)):
        connection.execute(
            DEVICES.insert().values(
                pk=pk, user_pk=user, kind="totp", name=pk, data={}, last_used=used, created=CREATED
            )
        )
    stages = sa.table(
        "stages", *(sa.column(c) for c in ("pk", "name", "kind", "managed", "created")),
        sa.column("config", tables.JSON),
    )  # fmt: skip
    connection.execute(
        stages.insert(),
        [
            _stage("s-1", "default-authenticator-totp-setup", {"digits": 6}),
            _stage("s-2", "default-authenticator-static-setup", {"configure_flow": "mine"}),
        ],
    )


def _read(connection: sa.Connection) -> tuple[list[Any], list[Any]]:
    """The columns 0005 knows (tables.py describes the newest schema)."""
    devices, stages = tables.devices.c, tables.stages.c
    rows = connection.execute(sa.select(devices.pk, devices.last_updated)).mappings().all()
    stage_rows = connection.execute(sa.select(stages.name, stages.config)).mappings().all()
    return list(rows), list(stage_rows)


@pytest.fixture(params=["sqlite", "postgresql"])
def settings_0004(request: pytest.FixtureRequest, tmp_path: Path) -> config.Settings:
    return migrationkit.settings_on(request.param, tmp_path, request)


async def test_0005_fills_last_updated_and_the_default_configure_flows(
    settings_0004: config.Settings,
) -> None:
    db = store.Store(settings_0004)
    await db.open()
    try:
        await migrationkit.run(db, migrationkit.to, "0004")
        await migrationkit.run(db, _seed)
        await migrationkit.run(db, migrationkit.to, "0005")
        rows, stage_rows = await migrationkit.run(db, _read)
    finally:
        await db.close()
    assert {r["pk"]: r["last_updated"] for r in rows} == {"d-used": USED, "d-new": CREATED}
    configs = {r["name"]: r["config"] for r in stage_rows}
    assert configs["default-authenticator-totp-setup"] == {
        "digits": 6,
        "configure_flow": "default-authenticator-totp-setup",
    }
    assert configs["default-authenticator-static-setup"] == {"configure_flow": "mine"}
