"""Revision 0015 on a database at 0014, on SQLite and PostgreSQL: the LDAP tables appear as
`store.tables` declares them, with the references the code relies on (deleting a provider drops
its LDAP settings, grants and sessions; deleting a key pair leaves the provider without it; a
grant names exactly one grantee; two providers cannot share a base DN), and the journal's
triggers record every write of users, groups, memberships and grants, but not a login's
`last_login`. Back to 0014 they are gone, and up again they return."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import migrationkit
import pytest
import sqlalchemy as sa

from tessera.core import config, errors, store
from tessera.core.store import crud

NEW = ("ldap_providers", "ldap_search_grants", "ldap_sessions", "directory_changes")
CREATED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
KEY = "00000000-0000-4000-8000-0000000000cc"
FLOW = "00000000-0000-4000-8000-0000000000dd"
GROUP = "00000000-0000-4000-8000-0000000000ee"


async def _journal(db: store.Store) -> list[tuple[str, str]]:
    async with db.read() as tx:
        rows = await crud.all_rows(tx, "directory_changes")
    return [(r["kind"], r["object"]) for r in sorted(rows, key=lambda r: r["seq"])]


async def _seed_directory(tx: store.Tx) -> dict[str, Any]:
    user = await crud.insert(
        tx,
        "users",
        {
            "uuid": "00000000-0000-4000-8000-000000000004",
            "username": "ldap-user",
            "username_folded": "ldap-user",
            "attributes": {},
            "date_joined": CREATED,
        },
    )
    await crud.insert(tx, "groups", {"pk": GROUP, "num_pk": 1, "name": "g", "attributes": {}})
    await crud.insert(tx, "group_members", {"group_pk": GROUP, "user_pk": user["pk"]})
    return user


async def _seed(db: store.Store) -> dict[str, Any]:
    async with db.transaction() as tx:
        user = await _seed_directory(tx)
        await crud.insert(
            tx,
            "flows",
            {
                "pk": FLOW,
                "slug": "bind",
                "name": "bind",
                "title": "bind",
                "designation": "authentication",
                "created": CREATED,
            },
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
        await crud.insert(
            tx,
            "sessions",
            {"key_digest": "d" * 64, "user_pk": user["pk"], "expires": CREATED, "created": CREATED},
        )
        pks = []
        for n, name in enumerate(("kept", "dropped")):
            base = await crud.insert(
                tx, "providers", {"name": name, "component": "ldap", "created": CREATED}
            )
            pks.append(base["pk"])
            await crud.insert(
                tx,
                "ldap_providers",
                {
                    "pk": base["pk"],
                    "authorization_flow": FLOW,
                    "invalidation_flow": FLOW,
                    "base_dn": f"dc={name}",
                    "base_dn_folded": f"dc={name}",
                    "certificate": KEY,
                    "property_mappings": [],
                },
            )
            await crud.insert(
                tx,
                "ldap_search_grants",
                {
                    "pk": f"00000000-0000-4000-8000-00000000010{n}",
                    "provider": base["pk"],
                    "group_pk": GROUP,
                    "created": CREATED,
                },
            )
        await crud.insert(
            tx,
            "ldap_sessions",
            {
                "session_digest": "d" * 64,
                "provider": pks[1],
                "user_pk": user["pk"],
                "created": CREATED,
            },
        )
    return {"kept": pks[0], "dropped": pks[1], "user": user["pk"]}


async def _refused(db: store.Store, table: str, values: dict[str, Any]) -> bool:
    try:
        async with db.transaction() as tx:
            await crud.insert(tx, table, values)
    except (errors.Conflict, errors.NotFound, sa.exc.IntegrityError):
        return True
    return False


async def _constraints(db: store.Store, seeded: dict[str, Any]) -> dict[str, bool]:
    grant = {"pk": "00000000-0000-4000-8000-000000000200", "provider": seeded["kept"]}
    both = {**grant, "user_pk": seeded["user"], "group_pk": GROUP, "created": CREATED}
    neither = {**grant, "created": CREATED}
    async with db.transaction() as tx:
        base = await crud.insert(
            tx, "providers", {"name": "same-dn", "component": "ldap", "created": CREATED}
        )
    same_dn = {
        "pk": base["pk"],
        "authorization_flow": FLOW,
        "base_dn": "DC=kept",
        "base_dn_folded": "dc=kept",
        "property_mappings": [],
    }
    return {
        "both": await _refused(db, "ldap_search_grants", both),
        "neither": await _refused(db, "ldap_search_grants", neither),
        "same_dn": await _refused(db, "ldap_providers", same_dn),
    }


async def _delete_and_read(db: store.Store, seeded: dict[str, Any]) -> dict[str, Any]:
    async with db.transaction() as tx:
        await crud.delete(tx, "providers", pk=seeded["dropped"])
        await crud.delete(tx, "certificate_keypairs", pk=KEY)
    async with db.read() as tx:
        rows = await crud.all_rows(tx, "ldap_providers")
        grants = [r["provider"] for r in await crud.all_rows(tx, "ldap_search_grants")]
        sessions = await crud.all_rows(tx, "ldap_sessions")
    row = rows[0]
    return {
        "providers": [r["pk"] for r in rows],
        "grants": grants,
        "sessions": len(sessions),
        "certificate": row["certificate"],
        "defaults": (
            row["uid_start_number"],
            row["gid_start_number"],
            row["search_mode"],
            row["bind_mode"],
            row["mfa_support"],
            row["tls_server_name"],
        ),
    }


async def _journaled_writes(db: store.Store, user: int) -> list[tuple[str, str]]:
    async with db.transaction() as tx:
        await tx.conn.execute(sa.text("DELETE FROM directory_changes"))
    async with db.transaction() as tx:
        await crud.update(tx, "users", {"pk": user}, {"last_login": CREATED})  # not a change
        await crud.update(tx, "users", {"pk": user}, {"name": "Renamed"})
        await crud.update(tx, "users", {"pk": user}, {"name": "Renamed"})  # the same: none
        await crud.update(tx, "groups", {"pk": GROUP}, {"attributes": {"a": 1}})
        await crud.delete(tx, "group_members", group_pk=GROUP, user_pk=user)
        await crud.delete(tx, "users", pk=user)
    return await _journal(db)


@pytest.fixture(params=["sqlite", "postgresql"])
def settings_0014(request: pytest.FixtureRequest, tmp_path: Path) -> config.Settings:
    return migrationkit.settings_on(request.param, tmp_path, request)


async def test_0015_creates_the_ldap_tables_and_the_journal(
    settings_0014: config.Settings,
) -> None:
    async def exercise(db: store.Store) -> tuple[Any, ...]:
        seeded = await _seed(db)
        seeded_journal = await _journal(db)
        refused = await _constraints(db, seeded)
        after = await _delete_and_read(db, seeded)
        return seeded, seeded_journal, refused, after, await _journaled_writes(db, seeded["user"])

    outcome = await migrationkit.new_tables(settings_0014, "0014", "0015", NEW, exercise)
    seeded, seeded_journal, refused, after, writes = outcome["after"]
    user = str(seeded["user"])
    assert outcome["before"] == set()
    assert outcome["differences"] == []
    assert seeded_journal == [
        ("user", user),
        ("group", GROUP),
        ("user", user),
        ("group", GROUP),
        ("group", GROUP),
        ("group", GROUP),
    ]
    assert refused == {"both": True, "neither": True, "same_dn": True}
    assert after == {
        "providers": [seeded["kept"]],
        "grants": [seeded["kept"]],
        "sessions": 0,
        "certificate": None,
        "defaults": (2000, 4000, "direct", "direct", True, ""),
    }
    assert writes == [
        ("user", user),
        ("group", GROUP),
        ("user", user),
        ("group", GROUP),
        ("user", user),
    ]
    assert outcome["gone"] == set()
    assert outcome["again"] == set(NEW)


def _journal_triggers(connection: sa.Connection) -> set[str]:
    if connection.dialect.name == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
    else:
        sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
    names = {row[0] for row in connection.execute(sa.text(sql))}
    return {n for n in names if n.startswith("directory_changes_")}


async def test_the_journals_triggers_exist_at_head(db: store.Store) -> None:
    """SQLite drops a table's triggers when a migration rebuilds the table: a later migration
    that rebuilds users, groups, group_members, group_parents or ldap_search_grants must create
    them again (`create_triggers` of revision 0015)."""
    found = await migrationkit.run(db, _journal_triggers)
    tables = ("users", "groups", "group_members", "group_parents", "ldap_search_grants")
    if db.engine.dialect.name == "sqlite":
        events = ("insert", "delete", "update")
    else:
        events = ("write", "update")
    assert found == {f"directory_changes_{t}_{e}" for t in tables for e in events}
