"""How long an LDAP source takes to sync a large directory from a real slapd.

Run from the repository root: `.venv/bin/python bench/ldap_source_sync.py` (`--help` for
options). Not part of the test suite. A slapd (`tests/slapdkit.py`) is loaded offline with
`--users` inetOrgPerson entries and `--groups` groupOfNames groups of `--members` users each; a
fresh store (SQLite under a temporary directory, or PostgreSQL with `--postgresql-host`) gets an
LDAP source with the OpenLDAP mappings; then, as the worker runs it:

1. the first sync (every user and group created, memberships set);
2. a second sync with nothing changed (every entry read and compared, nothing written);
3. a third after `--changed` entries changed their mail in the directory.

Reported per run: seconds, entries per second, the run's counts, and the ratio to two references
measured in the same run: `ldapsearch` (OpenLDAP's C client) reading the same entries, paged, to
/dev/null, and the source's own directory read (ldap3, in its thread) alone. As JSON with
`--json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import ldap3

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import slapdkit

from tessera.core import config, store, wire
from tessera.core.crypto import Keyring
from tessera.core.sources.ldap import mappings, records, runner, sync
from tessera.core.store import crud

SECRET = "bench-secret-key-" + "x" * 40
PEOPLE = f"ou=people,{slapdkit.SUFFIX}"


def directory(users: int, groups: int, members: int) -> str:
    out = [slapdkit.organizational_units("people", "groups")]
    password = "bench-pw-1"  # noqa: S105 - every bench user's
    out += [slapdkit.person(f"user{i:05d}", password=password, posix=False) for i in range(users)]
    for g in range(groups):
        chosen = [f"uid=user{(g * members + m) % users:05d},{PEOPLE}" for m in range(members)]
        out.append(slapdkit.group(f"group{g:04d}", chosen))
    return "".join(out)


async def source(db: store.Store, keyring: Keyring, slapd: slapdkit.Slapd) -> str:
    await mappings.ensure_defaults(db)
    async with db.transaction() as tx:
        rows = await crud.all_rows(tx, mappings.TABLE)
        by_managed = {r["managed"]: r["pk"] for r in rows}
        user_maps = ["openldap-uid", "openldap-cn", "default-mail", "default-dn-path"]
        body = wire.sources.LDAPSourceRequest(
            name="Bench",
            slug="bench",
            server_uri=slapd.url,
            bind_cn=slapd.root_dn,
            bind_password=slapd.root_password,
            base_dn=slapdkit.SUFFIX,
            additional_user_dn="ou=people",
            additional_group_dn="ou=groups",
            user_object_filter="(objectClass=inetOrgPerson)",
            group_object_filter="(objectClass=groupOfNames)",
            group_membership_field="member",
            object_uniqueness_field="entryUUID",
            sync_users_password=False,
            user_property_mappings=[by_managed[mappings.managed_name(m)] for m in user_maps],
            group_property_mappings=[by_managed[mappings.managed_name("openldap-cn")]],
        )
        row = await records.create(tx, keyring, body)
    return str(row["pk"])


def change_mail(slapd: slapdkit.Slapd, count: int) -> None:
    server = ldap3.Server("127.0.0.1", port=slapd.port, get_info=ldap3.NONE)
    connection = ldap3.Connection(server, slapd.root_dn, slapd.root_password, auto_bind=True)
    for i in range(count):
        dn = f"uid=user{i:05d},{PEOPLE}"
        connection.modify(dn, {"mail": [(ldap3.MODIFY_REPLACE, [f"changed{i}@example.org"])]})
    connection.unbind()


def ldapsearch_seconds(slapd: slapdkit.Slapd) -> float:
    """The reference: OpenLDAP's own client reading every user and group, paged by 500."""
    started = time.perf_counter()
    for base, query in (
        (PEOPLE, "(objectClass=inetOrgPerson)"),
        (f"ou=groups,{slapdkit.SUFFIX}", "(objectClass=groupOfNames)"),
    ):
        subprocess.run(
            [
                "ldapsearch",
                "-x",
                "-LLL",
                "-H",
                slapd.url,
                "-D",
                slapd.root_dn,
                "-w",
                slapd.root_password,
                "-E",
                "pr=500/noprompt",
                "-b",
                base,
                query,
                "*",
                "entryUUID",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            timeout=600,
        )
    return time.perf_counter() - started


async def read_seconds(db: store.Store, keyring: Keyring, pk: str) -> float:
    """The source's directory read alone (ldap3 in a thread), without writing anything."""
    async with db.read() as tx:
        row = await crud.get(tx, records.TABLE, pk=pk)
        settings = await records.connection_settings(tx, keyring, row)
    job = sync.Job(row, settings, mappings.Mapper([], row, ""), mappings.Mapper([], row, ""))
    started = time.perf_counter()
    await asyncio.to_thread(sync.fetch, job)
    return time.perf_counter() - started


async def timed(db: store.Store, keyring: Keyring, pk: str, entries: int) -> dict[str, Any]:
    started = time.perf_counter()
    status = await runner.run(db, keyring, pk, "bench")
    took = time.perf_counter() - started
    assert status is not None and status.last_sync is not None
    return {
        "seconds": round(took, 2),
        "entries_per_second": round(entries / took),
        "status": status.last_sync.status,
        "counts": status.last_sync.counts.model_dump(),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        loaded = time.perf_counter()
        ldif = directory(args.users, args.groups, args.members)
        with slapdkit.running(Path(tmp) / "slapd", ldif) as slapd:
            load_seconds = time.perf_counter() - loaded
            overrides: dict[str, Any] = {"data_dir": Path(tmp) / "data", "secret_key": SECRET}
            if args.postgresql_host:
                overrides["postgresql"] = {
                    "host": args.postgresql_host,
                    "user": args.postgresql_user,
                    "name": args.postgresql_name,
                }
            settings = config.load(**overrides)
            db = store.Store(settings)
            await db.open()
            await db.migrate()
            keyring = Keyring(SECRET)
            try:
                pk = await source(db, keyring, slapd)
                entries = args.users + args.groups
                reference = ldapsearch_seconds(slapd)
                ldap3_read = await read_seconds(db, keyring, pk)
                first = await timed(db, keyring, pk, entries)
                second = await timed(db, keyring, pk, entries)
                change_mail(slapd, args.changed)
                third = await timed(db, keyring, pk, entries)
            finally:
                await db.close()
    return {
        "store": "postgresql" if args.postgresql_host else "sqlite",
        "users": args.users,
        "groups": args.groups,
        "members_per_group": args.members,
        "slapd_load_seconds": round(load_seconds, 2),
        "reference_ldapsearch_seconds": round(reference, 2),
        "reference_ldap3_read_seconds": round(ldap3_read, 2),
        "first_sync_vs_ldapsearch": round(first["seconds"] / reference, 1),
        "unchanged_sync_vs_ldapsearch": round(second["seconds"] / reference, 1),
        "first_sync": first,
        "unchanged_sync": second,
        f"sync_after_{args.changed}_changes": third,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--changed", type=int, default=100)
    parser.add_argument("--postgresql-host", default="")
    parser.add_argument("--postgresql-user", default="postgres")
    parser.add_argument("--postgresql-name", default="tessera_bench")
    parser.add_argument("--json", action="store_true")
    result = asyncio.run(main(parser.parse_args()))
    if "--json" in sys.argv:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
