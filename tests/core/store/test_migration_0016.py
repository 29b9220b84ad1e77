"""Revision 0016 on a database at 0015, on SQLite and PostgreSQL: the LDAP source tables appear
as `store.tables` declares them, with the references the code relies on: deleting a source drops
its links and its sync status but not the users and groups it brought in; deleting a user or a
group drops its link; deleting the key pair or the parent group a source names leaves the source
without it. Back to 0015 they are gone, and up again they return."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import migrationkit
import pytest

from tessera.core import config, store
from tessera.core.store import crud

NEW = (
    "ldap_sources",
    "ldap_source_property_mappings",
    "ldap_source_syncs",
    "ldap_source_users",
    "ldap_source_groups",
)
CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
KEY = "00000000-0000-4000-8000-0000000000cc"
GROUP = "00000000-0000-4000-8000-0000000000ee"
PARENT = "00000000-0000-4000-8000-0000000000ef"


def _source(pk: str, slug: str) -> dict[str, Any]:
    return {
        "pk": pk,
        "name": slug,
        "slug": slug,
        "user_path_template": "goauthentik.io/sources/%(slug)s",
        "server_uri": "ldap://127.0.0.1",
        "base_dn": "dc=example,dc=org",
        "user_object_filter": "(objectClass=person)",
        "group_object_filter": "(objectClass=groupOfNames)",
        "group_membership_field": "member",
        "user_membership_attribute": "distinguishedName",
        "object_uniqueness_field": "entryUUID",
        "peer_certificate": KEY,
        "sync_parent_group": PARENT,
        "user_property_mappings": [],
        "group_property_mappings": [],
        "created": CREATED,
    }


async def _seed(db: store.Store) -> dict[str, Any]:
    async with db.transaction() as tx:
        users = []
        for name in ("kept", "dropped"):
            users.append(
                await crud.insert(
                    tx,
                    "users",
                    {
                        "uuid": f"00000000-0000-4000-8000-00000000000{len(users)}",
                        "username": name,
                        "username_folded": name,
                        "attributes": {},
                        "date_joined": CREATED,
                    },
                )
            )
        for pk, name, num in ((GROUP, "g", 1), (PARENT, "parent", 2)):
            await crud.insert(
                tx, "groups", {"pk": pk, "num_pk": num, "name": name, "attributes": {}}
            )
        await crud.insert(
            tx,
            "certificate_keypairs",
            {
                "pk": KEY,
                "name": "k",
                "certificate_data": "x",
                "fingerprint_sha256": "x",
                "fingerprint_sha1": "x",
                "cert_expiry": CREATED,
                "cert_subject": "x",
                "created": CREATED,
            },
        )
        sources = ["00000000-0000-4000-8000-00000000aaa1", "00000000-0000-4000-8000-00000000aaa2"]
        for pk, slug in zip(sources, ("kept", "dropped"), strict=True):
            await crud.insert(tx, "ldap_sources", _source(pk, slug))
            await crud.insert(tx, "ldap_source_syncs", {"source": pk, "counts": {}, "messages": []})
        for user, source in zip(users, sources, strict=True):
            await crud.insert(
                tx,
                "ldap_source_users",
                {
                    "source": source,
                    "user_pk": user["pk"],
                    "identifier": f"id-{user['username']}",
                    "dn": f"uid={user['username']},dc=example,dc=org",
                    "created": CREATED,
                    "last_updated": CREATED,
                },
            )
        await crud.insert(
            tx,
            "ldap_source_groups",
            {
                "source": sources[0],
                "group_pk": GROUP,
                "identifier": "id-g",
                "dn": "cn=g,dc=example,dc=org",
                "created": CREATED,
                "last_updated": CREATED,
            },
        )
        await crud.insert(
            tx,
            "ldap_source_property_mappings",
            {"pk": KEY, "name": "m", "expression": "return {}", "created": CREATED},
        )
    return {"sources": sources, "users": [u["pk"] for u in users]}


async def _delete_and_read(db: store.Store, seeded: dict[str, Any]) -> dict[str, Any]:
    async with db.transaction() as tx:
        await crud.delete(tx, "ldap_sources", pk=seeded["sources"][1])
        await crud.delete(tx, "certificate_keypairs", pk=KEY)
        await crud.delete(tx, "groups", pk=PARENT)
        await crud.delete(tx, "groups", pk=GROUP)
    async with db.read() as tx:
        source = (await crud.all_rows(tx, "ldap_sources"))[0]
        return {
            "sources": [source["pk"]],
            "syncs": [r["source"] for r in await crud.all_rows(tx, "ldap_source_syncs")],
            "linked": [r["user_pk"] for r in await crud.all_rows(tx, "ldap_source_users")],
            "users": sorted(r["pk"] for r in await crud.all_rows(tx, "users")),
            "groups": await crud.all_rows(tx, "ldap_source_groups"),
            "peer_certificate": source["peer_certificate"],
            "sync_parent_group": source["sync_parent_group"],
            "enabled": source["enabled"],
            "start_tls": source["start_tls"],
            "bind_password_sealed": source["bind_password_sealed"],
        }


@pytest.fixture(params=["sqlite", "postgresql"])
def settings_0015(request: pytest.FixtureRequest, tmp_path: Path) -> config.Settings:
    return migrationkit.settings_on(request.param, tmp_path, request)


async def test_0016_creates_the_ldap_source_tables_as_declared(
    settings_0015: config.Settings,
) -> None:
    async def exercise(db: store.Store) -> tuple[Any, Any]:
        seeded = await _seed(db)
        return seeded, await _delete_and_read(db, seeded)

    outcome = await migrationkit.new_tables(settings_0015, "0015", "0016", NEW, exercise)
    seeded, after = outcome["after"]
    assert outcome["before"] == set()
    assert outcome["differences"] == []
    assert after == {
        "sources": [seeded["sources"][0]],
        "syncs": [seeded["sources"][0]],
        "linked": [seeded["users"][0]],
        "users": sorted(seeded["users"]),
        "groups": [],
        "peer_certificate": None,
        "sync_parent_group": None,
        "enabled": True,
        "start_tls": False,
        "bind_password_sealed": "",
    }
    assert outcome["gone"] == set()
    assert outcome["again"] == set(NEW)
