"""The worker's schedule of LDAP source syncs, and what keeps runs apart: an enabled source
that never ran is due and runs; it is not due again until two hours after its last start; a
disabled source never runs; a run another process holds (the lease) is not started twice, and
the API answers 409 meanwhile. Also on PostgreSQL: the first sync, as on SQLite."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from helpers import SECRET_KEY
from ldapsourcekit import run_sync

from tessera.core import store
from tessera.core.crypto import Keyring
from tessera.core.identity import util
from tessera.core.sources.ldap import records, runner, schedule
from tessera.core.store import crud


async def _source_pk(db: store.Store, slug: str) -> str:
    async with db.read() as tx:
        return str((await crud.get(tx, records.TABLE, slug=slug))["pk"])


async def test_due_sources_run_every_two_hours(make_source: Any, bootstrapped: store.Store) -> None:
    await make_source("corp", sync_groups=False)
    await make_source("off", enabled=False, sync_groups=False)
    keyring = Keyring(SECRET_KEY)
    assert await schedule.due_sources(bootstrapped) == [await _source_pk(bootstrapped, "corp")]
    assert await schedule.tick(bootstrapped, keyring, "worker:test") == 1
    assert await schedule.due_sources(bootstrapped) == []
    assert await schedule.tick(bootstrapped, keyring, "worker:test") == 0
    # Two hours later it is due again.
    pk = await _source_pk(bootstrapped, "corp")
    earlier = util.now() - schedule.EVERY - dt.timedelta(minutes=1)
    async with bootstrapped.transaction() as tx:
        await crud.update(tx, records.SYNCS, {"source": pk}, {"started": earlier})
    assert await schedule.due_sources(bootstrapped) == [pk]


async def test_a_run_held_elsewhere_is_not_started_twice(
    api: Any, make_source: Any, bootstrapped: store.Store
) -> None:
    await make_source(sync_groups=False)
    pk = await _source_pk(bootstrapped, "corp")
    async with bootstrapped.transaction() as tx:
        assert await crud.take_lease(
            tx, records.lease_name(pk), "worker:elsewhere", util.now(), dt.timedelta(minutes=5)
        )
    assert await runner.run(bootstrapped, Keyring(SECRET_KEY), pk, "worker:here") is None
    status, body = await api("POST", "sources/ldap/corp/sync/")
    assert status == 409, body
    async with bootstrapped.transaction() as tx:
        await crud.delete(tx, "leases", name=records.lease_name(pk))
    assert (await run_sync(api, "corp"))["last_sync_status"] == "warning"


async def test_the_status_shows_a_run_in_progress(
    api: Any, make_source: Any, bootstrapped: store.Store
) -> None:
    await make_source(sync_groups=False)
    pk = await _source_pk(bootstrapped, "corp")
    now = util.now()
    async with bootstrapped.transaction() as tx:
        await crud.take_lease(tx, records.lease_name(pk), "w", now, dt.timedelta(minutes=5))
        await crud.update(tx, records.SYNCS, {"source": pk}, {"running_since": now, "started": now})
    status, body = await api("GET", "sources/ldap/corp/sync/status/")
    assert status == 200 and body["is_running"] is True, body


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_first_sync_on_postgresql(
    api: Any, make_source: Any, bootstrapped: store.Store
) -> None:
    await make_source()
    first = (await run_sync(api, "corp"))["last_sync"]["counts"]
    again = (await run_sync(api, "corp"))["last_sync"]["counts"]
    assert first["users_created"] == 4 and first["groups_created"] == 3, first
    assert again["users_unchanged"] == 4 and again["users_updated"] == 0, again


async def test_password_hashes_never_reach_mappings(
    api: Any, make_source: Any, bootstrapped: store.Store
) -> None:
    expression = 'return {"attributes": {"seen": sorted(ldap.keys())}}'
    status, mapping = await api(
        "POST", "propertymappings/source/ldap/", json={"name": "keys", "expression": expression}
    )
    assert status == 201, mapping
    source = await make_source(sync_groups=False)
    mappings = [*source["user_property_mappings"], mapping["pk"]]
    await api("PATCH", "sources/ldap/corp/", json={"user_property_mappings": mappings})
    await run_sync(api, "corp")
    async with bootstrapped.read() as tx:
        alice = await crud.get(tx, "users", username="alice")
    seen = [name.lower() for name in alice["attributes"]["seen"]]
    assert "mail" in seen and "entryuuid" in seen
    assert "userpassword" not in seen and "SSHA" not in str(alice["attributes"])
