"""What `tessera worker` commits reaches the other processes as a serving process's commits do:
its LDAP sync writes users, and the `state` news goes out on the bus (PostgreSQL's, here, with
no Redis), so the serving processes drop the claims they cached for those users."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Any

import slapdkit
from helpers import BOOTSTRAP_TOKEN, PG_HOST, PG_USER, Server, pg_env, run_cli

from tessera.core import cache, config
from tessera.core.store import pgcache


async def _collect(bus: cache.Cache, channel: str, into: list[Any], ready: asyncio.Event) -> None:
    async with bus.subscribe(channel) as messages:
        ready.set()
        async for message in messages:
            into.append(message)


def _source(server: Server, slapd: slapdkit.Slapd) -> None:
    _, page = server.request(
        "GET", "/api/v3/propertymappings/source/ldap/?managed__isnull=false", BOOTSTRAP_TOKEN
    )
    uid = [m["pk"] for m in page["results"] if m["managed"].endswith("/openldap-uid")]
    body = {
        "name": "Corp",
        "slug": "corp",
        "server_uri": slapd.url,
        "bind_cn": slapd.root_dn,
        "bind_password": slapd.root_password,
        "base_dn": slapdkit.SUFFIX,
        "additional_user_dn": "ou=people",
        "user_object_filter": "(objectClass=inetOrgPerson)",
        "object_uniqueness_field": "entryUUID",
        "sync_groups": False,
        "sync_users_password": False,
        "user_property_mappings": uid,
    }
    status, created = server.request("POST", "/api/v3/sources/ldap/", BOOTSTRAP_TOKEN, body)
    assert status == 201, created


async def test_the_workers_user_writes_are_announced_to_the_serving_processes(
    tmp_path: Path, fresh_database: str, slapd: slapdkit.Slapd
) -> None:
    env = pg_env(
        fresh_database,
        AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
        AUTHENTIK_WORKER__EMBEDDED="false",
    )
    assert (await asyncio.to_thread(run_cli, "migrate", env=env, cwd=tmp_path)).returncode == 0
    server = Server(env, tmp_path)
    bus = pgcache.PostgresCache(config.PostgreSQL(host=PG_HOST, user=PG_USER, name=fresh_database))
    heard: list[Any] = []
    ready = asyncio.Event()
    listener = asyncio.create_task(_collect(bus, "config", heard, ready))
    worker: Server | None = None
    try:
        await asyncio.to_thread(server.wait_ready)
        await asyncio.to_thread(_source, server, slapd)
        await asyncio.wait_for(ready.wait(), 10)
        heard.clear()  # the server's own news so far
        worker = Server(env, tmp_path, command="worker")  # syncs the due source at start
        deadline = time.monotonic() + 30
        while not any(m.get("kind") == "state" for m in heard):
            assert time.monotonic() < deadline, (heard, worker.output())
            await asyncio.sleep(0.2)
        _, users = await asyncio.to_thread(
            server.request, "GET", "/api/v3/core/users/?username=alice", BOOTSTRAP_TOKEN
        )
        assert users["pagination"]["count"] == 1
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        await bus.close()
        if worker is not None:
            code = worker.stop()
            assert code == 0, worker.output()
        server.stop()
