"""Revision 0013 on a database at 0012, on SQLite and PostgreSQL: the tables of outposts, their
providers and proxy providers appear as `store.tables` declares them (columns, keys, indexes),
with the references the code relies on: deleting a provider drops its proxy settings and its
outposts' links, deleting an outpost drops its links, deleting its service account leaves the
outpost without one. Back to 0012 they are gone, and up again they return."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import migrationkit
import pytest

from tessera.core import config, store
from tessera.core.store import crud

NEW = ("proxy_providers", "outposts", "outpost_providers")
CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
OUTPOST = "00000000-0000-4000-8000-0000000000aa"


async def _seed(db: store.Store) -> dict[str, int]:
    """Through the store (its connections enforce foreign keys on SQLite too)."""
    async with db.transaction() as tx:
        user = await crud.insert(
            tx,
            "users",
            {
                "uuid": "00000000-0000-4000-8000-000000000003",
                "username": "ak-outpost-x",
                "username_folded": "ak-outpost-x",
                "attributes": {},
                "date_joined": CREATED,
            },
        )
        providers = []
        for name in ("kept", "dropped"):
            base = await crud.insert(
                tx, "providers", {"name": name, "component": "proxy", "created": CREATED}
            )
            providers.append(base["pk"])
            await crud.insert(
                tx,
                "proxy_providers",
                {
                    "pk": base["pk"],
                    "external_host": "https://app.example.com",
                    "cookie_secret_sealed": "x",
                },
            )
        await crud.insert(
            tx,
            "outposts",
            {
                "pk": OUTPOST,
                "name": "edge",
                "type": "proxy",
                "config": {},
                "user_pk": user["pk"],
                "created": CREATED,
            },
        )
        for position, provider in enumerate(providers):
            await crud.insert(
                tx,
                "outpost_providers",
                {"outpost": OUTPOST, "provider": provider, "position": position},
            )
    return {"user": user["pk"], "kept": providers[0], "dropped": providers[1]}


async def _delete_and_read(db: store.Store, seeded: dict[str, int]) -> dict[str, Any]:
    async with db.transaction() as tx:
        await crud.delete(tx, "providers", pk=seeded["dropped"])
        await crud.delete(tx, "users", pk=seeded["user"])
    async with db.read() as tx:
        links = [r["provider"] for r in await crud.all_rows(tx, "outpost_providers")]
        proxies = [r["pk"] for r in await crud.all_rows(tx, "proxy_providers")]
        user_pk = (await crud.get(tx, "outposts", pk=OUTPOST))["user_pk"]
    async with db.transaction() as tx:
        await crud.delete(tx, "outposts", pk=OUTPOST)
    async with db.read() as tx:
        left = len(await crud.all_rows(tx, "outpost_providers"))
    return {"links": links, "proxies": proxies, "user_pk": user_pk, "left": left}


@pytest.fixture(params=["sqlite", "postgresql"])
def settings_0012(request: pytest.FixtureRequest, tmp_path: Path) -> config.Settings:
    return migrationkit.settings_on(request.param, tmp_path, request)


async def test_0013_creates_the_outpost_tables_as_declared(settings_0012: config.Settings) -> None:
    async def exercise(db: store.Store) -> tuple[Any, Any]:
        seeded = await _seed(db)
        return seeded, await _delete_and_read(db, seeded)

    outcome = await migrationkit.new_tables(settings_0012, "0012", "0013", NEW, exercise)
    before, differences, gone, again = (
        outcome["before"],
        outcome["differences"],
        outcome["gone"],
        outcome["again"],
    )
    seeded, after = outcome["after"]
    assert before == set()
    assert differences == []
    assert after == {
        "links": [seeded["kept"]],
        "proxies": [seeded["kept"]],
        "user_pk": None,
        "left": 0,
    }
    assert gone == set()
    assert again == set(NEW)
