"""The fan-out across processes: two `tessera server`s (two serving processes each) on one
PostgreSQL, the outpost connected to one, the changes made through the other. The bus is
PostgreSQL's LISTEN/NOTIFY, or Redis when configured."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from helpers import BOOTSTRAP_TOKEN, PG_HOST, PG_USER, REDIS_HOST, SECRET_KEY, Server, pg_env
from hubkit import Outpost, create_outpost, hello_frame, receive, receive_instruction

from tessera.core import config, identity, store
from tessera.core.crypto import Keyring
from tessera.core.wire import outpost_channel as oc

ADMIN = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}


@pytest.fixture(params=["postgresql", "redis"])
def replicas(
    request: pytest.FixtureRequest, tmp_path: Path, fresh_database: str, redis_prefix: str
) -> Iterator[tuple[Server, Server]]:
    extra = {"AUTHENTIK_BOOTSTRAP_TOKEN": BOOTSTRAP_TOKEN, "AUTHENTIK_WEB__WORKERS": "2"}
    if request.param == "redis":
        extra |= {"AUTHENTIK_REDIS__HOST": REDIS_HOST, "AUTHENTIK_REDIS__PREFIX": redis_prefix}
    first = Server(pg_env(fresh_database, **extra), tmp_path)
    first.wait_ready(60)
    second = Server(pg_env(fresh_database, **extra), tmp_path)
    try:
        second.wait_ready(60)
        yield first, second
    finally:
        second.stop()
        first.stop()


def _store(tmp_path: Path, database: str) -> store.Store:
    """The test's own connection to the servers' database."""
    postgresql = {"host": PG_HOST, "user": PG_USER, "name": database}
    settings = config.load(data_dir=tmp_path / "data", secret_key=SECRET_KEY, postgresql=postgresql)
    return store.Store(settings)


@pytest.fixture
async def store_of(tmp_path: Path, fresh_database: str) -> AsyncIterator[store.Store]:
    db = _store(tmp_path, fresh_database)
    await db.open()
    yield db
    await db.close()


async def _connect(
    session: aiohttp.ClientSession, server: Server, outpost: Outpost
) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    instance = str(uuid.uuid4())
    ws = await session.ws_connect(server.url + outpost.path(instance), headers=outpost.headers())
    await ws.send_str(hello_frame(instance, hostname="replica-test"))
    assert (await receive(ws, 5.0))["instruction"] == oc.Instruction.ACK
    return ws, instance


async def _log_in_and_out(server: Server, db: store.Store) -> str:
    """Log akadmin in on `server` with a recovery link, then out; the session's digest."""
    async with db.transaction() as tx:
        key = await identity.bootstrap.recovery_key(tx, Keyring(SECRET_KEY), "akadmin", 5)
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        response = await browser.get(
            f"{server.url}/recovery/use-token/{key}/", allow_redirects=False
        )
        assert response.status == 302
        cookies = {c.key: c.value for c in browser.cookie_jar}
        response = await browser.get(
            f"{server.url}/api/v3/flows/executor/default-invalidation-flow/",
            headers={"X-authentik-CSRF": cookies["authentik_csrf"]},
        )
        assert (await response.json())["component"] == "xak-flow-redirect"
    return hashlib.sha256(cookies["authentik_session"].encode()).hexdigest()


@pytest.mark.slow
async def test_changes_on_another_replica_reach_the_outpost(
    replicas: tuple[Server, Server], store_of: store.Store
) -> None:
    connected_to, changed_on = replicas
    outpost = await create_outpost(store_of, "edge")
    bystander = await create_outpost(store_of, "bystander")
    async with aiohttp.ClientSession() as session:
        sockets = [await _connect(session, connected_to, outpost) for _ in range(3)]
        untold, _ = await _connect(session, connected_to, bystander)
        # Health through the other replica shows every instance (the shared cache).
        async with session.get(
            f"{changed_on.url}/api/v3/outposts/instances/{outpost.pk}/health/", headers=ADMIN
        ) as response:
            shown = await response.json()
        assert sorted(h["uid"] for h in shown) == sorted(i for _, i in sockets)

        # A change to the outpost made on the other replica: its instances only, within 1 s.
        started = time.monotonic()
        async with session.patch(
            f"{changed_on.url}/api/v3/outposts/instances/{outpost.pk}/",
            json={"config": {"refresh_interval": "minutes=7"}},
            headers=ADMIN,
        ) as response:
            assert response.status == 200, await response.text()
        for ws, _ in sockets:
            await receive_instruction(ws, oc.Instruction.TRIGGER_UPDATE, timeout=1.0)
        assert time.monotonic() - started < 1.0
        # One no outpost reads (an application without a provider): nobody.
        async with session.post(
            f"{changed_on.url}/api/v3/core/applications/",
            json={"name": "Wiki", "slug": "wiki"},
            headers=ADMIN,
        ) as response:
            assert response.status == 201
        for ws in [untold, *(ws for ws, _ in sockets)]:
            with pytest.raises(asyncio.TimeoutError):
                await receive_instruction(ws, oc.Instruction.TRIGGER_UPDATE, timeout=0.5)

        digest = await _log_in_and_out(changed_on, store_of)
        for ws in [untold, *(ws for ws, _ in sockets)]:
            frame = await receive_instruction(ws, oc.Instruction.SESSION_END, timeout=1.0)
            assert frame["args"]["session_id"] == digest
            await ws.close()


@pytest.mark.slow
def test_an_instance_that_stops_saying_hello_leaves_health_after_15_seconds(
    tmp_path: Path, fresh_database: str
) -> None:
    server = Server(pg_env(fresh_database, AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN), tmp_path)

    async def scenario() -> None:
        db = _store(tmp_path, fresh_database)
        await db.open()
        try:
            outpost = await create_outpost(db, "quiet")
        finally:
            await db.close()
        health = f"{server.url}/api/v3/outposts/instances/{outpost.pk}/health/"
        async with aiohttp.ClientSession() as session:
            ws, instance = await _connect(session, server, outpost)
            seen = time.monotonic()
            async with session.get(health, headers=ADMIN) as response:
                assert [h["uid"] for h in await response.json()] == [instance]
            await asyncio.sleep(oc.STATE_TTL - 3)
            async with session.get(health, headers=ADMIN) as response:
                assert [h["uid"] for h in await response.json()] == [instance]
            await asyncio.sleep(oc.STATE_TTL + 0.5 - (time.monotonic() - seen))
            async with session.get(health, headers=ADMIN) as response:
                assert await response.json() == []
            await ws.close()

    try:
        server.wait_ready(60)
        asyncio.run(scenario())
    finally:
        server.stop()
    assert "Traceback" not in server.output()
