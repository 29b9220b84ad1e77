"""Revision 0011 on data written at 0010, on SQLite and PostgreSQL: existing authenticator
devices are numbered in the order they were created (authentik's integer device id) and a new
one continues the count; back to 0010 and up again numbers them the same way. (OAuth2 providers
get a null `grant_types`, read as every grant: `providers.oauth2.records.grant_types`.)"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import migrationkit
import pytest
import sqlalchemy as sa
from helpers import SECRET_KEY

from tessera.core import config, store
from tessera.core.crypto import Keyring
from tessera.core.identity import devices
from tessera.core.store import tables

DEVICES = sa.table(
    "authenticator_devices",
    *(sa.column(c) for c in ("pk", "user_pk", "kind", "name")),
    sa.column("data", tables.JSON),
    sa.column("created", tables.UTCDateTime()),
)
EARLY = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LATE = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def _seed(connection: sa.Connection) -> int:
    user = connection.execute(
        sa.insert(tables.users).values(
            uuid="00000000-0000-4000-8000-000000000002",
            username="petra",
            username_folded="petra",
            attributes={},
            date_joined=EARLY,
        )
    ).inserted_primary_key[0]
    # Inserted out of order: the numbering follows `created`, not the insertion.
    for pk, created in (("d-late", LATE), ("d-early", EARLY)):
        connection.execute(
            DEVICES.insert().values(
                pk=pk, user_pk=user, kind="totp", name=pk, data={}, created=created
            )
        )
    return int(user)


def _numbers(connection: sa.Connection) -> dict[str, Any]:
    c = tables.devices.c
    return {r.pk: r.num_pk for r in connection.execute(sa.select(c.pk, c.num_pk))}


@pytest.fixture(params=["sqlite", "postgresql"])
def settings_0010(request: pytest.FixtureRequest, tmp_path: Path) -> config.Settings:
    return migrationkit.settings_on(request.param, tmp_path, request)


async def test_0011_numbers_devices_in_creation_order(settings_0010: config.Settings) -> None:
    db = store.Store(settings_0010)
    await db.open()
    try:
        await migrationkit.run(db, migrationkit.to, "0010")
        user = await migrationkit.run(db, _seed)
        await migrationkit.run(db, migrationkit.to, "0011")
        numbered = await migrationkit.run(db, _numbers)
        async with db.transaction() as tx:
            made = await devices.create_static(tx, Keyring(SECRET_KEY), user)
        await migrationkit.run(db, migrationkit.back, "0010")
        await migrationkit.run(db, migrationkit.to, "0011")
        again = await migrationkit.run(db, _numbers)
    finally:
        await db.close()
    assert numbered == {"d-early": 1, "d-late": 2}
    assert made["num_pk"] == 3
    assert again == {"d-early": 1, "d-late": 2, made["pk"]: 3}
