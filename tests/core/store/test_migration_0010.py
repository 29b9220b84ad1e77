"""Revision 0010 on data written at 0009, on SQLite and PostgreSQL: key pairs stored with
Tessera's old key type "ecdsa" read authentik's "ec", other key types are left alone;
applications get `meta_icon` "" and `meta_hide` false; going back to 0009 restores "ecdsa" and
drops the two columns, keeping the applications."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import migrationkit
import pytest
import sqlalchemy as sa

from tessera.core import config, store

CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
# The tables as 0009 left them (tables.py describes the newest schema).
KEYPAIRS = sa.table(
    "certificate_keypairs",
    *(
        sa.column(c)
        for c in (
            "pk",
            "name",
            "certificate_data",
            "key_sealed",
            "fingerprint_sha256",
            "fingerprint_sha1",
            "cert_expiry",
            "cert_subject",
            "key_type",
            "created",
        )
    ),
)
APPLICATIONS = sa.table("applications", *(sa.column(c) for c in ("pk", "name", "slug", "created")))
KEY_TYPES = {"k-ec": "ecdsa", "k-rsa": "rsa", "k-ed": "ed25519", "k-none": None}


def _seed(connection: sa.Connection) -> None:
    connection.execute(
        KEYPAIRS.insert(),
        [
            {
                "pk": pk,
                "name": pk,
                "certificate_data": "-----BEGIN CERTIFICATE-----",
                "key_sealed": "",
                "fingerprint_sha256": "00",
                "fingerprint_sha1": "00",
                "cert_expiry": CREATED,
                "cert_subject": "CN=x",
                "key_type": key_type,
                "created": CREATED,
            }
            for pk, key_type in KEY_TYPES.items()
        ],
    )
    connection.execute(
        APPLICATIONS.insert(), [{"pk": "a-1", "name": "Wiki", "slug": "wiki", "created": CREATED}]
    )


def _key_types(connection: sa.Connection) -> dict[str, Any]:
    return dict(connection.execute(sa.select(KEYPAIRS.c.pk, KEYPAIRS.c.key_type)).all())


def _applications(connection: sa.Connection) -> list[dict[str, Any]]:
    rows = connection.execute(sa.text("SELECT * FROM applications")).mappings().all()
    return [dict(r) for r in rows]


@pytest.fixture
def settings_0009(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> config.Settings:
    return migrationkit.settings_on(backend, tmp_path, request)


@pytest.fixture
async def at_0009(settings_0009: config.Settings) -> Any:
    db = store.Store(settings_0009)
    await db.open()
    await migrationkit.run(db, migrationkit.to, "0009")
    await migrationkit.run(db, _seed)
    yield db
    await db.close()


async def test_0010_renames_ecdsa_key_types_to_authentiks_ec(at_0009: store.Store) -> None:
    await migrationkit.run(at_0009, migrationkit.to, "0010")
    assert await migrationkit.run(at_0009, _key_types) == {
        "k-ec": "ec",
        "k-rsa": "rsa",
        "k-ed": "ed25519",
        "k-none": None,
    }


async def test_0010_gives_applications_an_empty_icon_and_no_hiding(at_0009: store.Store) -> None:
    await migrationkit.run(at_0009, migrationkit.to, "0010")
    (app,) = await migrationkit.run(at_0009, _applications)
    assert app["slug"] == "wiki" and app["meta_icon"] == "" and not app["meta_hide"]


async def test_0010_downgrade_restores_ecdsa_and_keeps_the_applications(
    at_0009: store.Store,
) -> None:
    await migrationkit.run(at_0009, migrationkit.to, "0010")
    await migrationkit.run(at_0009, migrationkit.back, "0009")
    assert (await migrationkit.run(at_0009, _key_types))["k-ec"] == "ecdsa"
    (app,) = await migrationkit.run(at_0009, _applications)
    assert app["slug"] == "wiki" and "meta_hide" not in app and "meta_icon" not in app
