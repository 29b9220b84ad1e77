"""A process whose bus subscription breaks may have missed news for its outposts: once it is
subscribed again, every connected instance is told to refetch (PostgreSQL's bus, its listening
connection killed)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pgcachekit
import pytest
from hubkit import hello_frame, receive, receive_instruction

from tessera.core import config
from tessera.core.app import embedded
from tessera.core.store import pgcache
from tessera.core.wire import outpost_channel as oc


@pytest.fixture
def backend() -> str:
    return "postgresql"


async def test_a_lost_bus_subscription_makes_every_instance_refetch(
    client: Any, make_outpost: Any, settings: config.Settings
) -> None:
    """Every instance of every outpost, though nothing any of them reads has changed here."""
    sockets = []
    for name in ("edge", "other"):
        outpost = await make_outpost(name)
        instance = str(uuid.uuid4())
        ws = await client.ws_connect(outpost.path(instance), headers=outpost.headers())
        await ws.send_str(hello_frame(instance))
        assert (await receive(ws))["instruction"] == oc.Instruction.ACK
        sockets.append(ws)
    conn = await pgcachekit.admin_connection(settings)
    try:
        ended = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND application_name = $2",
            settings.postgresql.name,
            pgcache.LISTENER_NAME,
        )
    finally:
        await conn.close()
    assert ended >= 1
    # The keep-alive finds the dead connection within 5 s; the hub subscribes again after 1 s.
    for ws in sockets:
        frame = await receive_instruction(ws, oc.Instruction.TRIGGER_UPDATE, timeout=12.0)
        assert frame == {"instruction": 2, "args": {}}
        await ws.close()


async def test_a_lost_bus_subscription_makes_the_embedded_outpost_confirm_sessions_again(
    client: Any, settings: config.Settings
) -> None:
    """SESSION_END may have been missed: every session is confirmed with the core once more."""
    embedded_outpost = client.app[embedded.EMBEDDED]
    before = embedded_outpost.sessions.epoch
    conn = await pgcachekit.admin_connection(settings)
    try:
        await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND application_name = $2",
            settings.postgresql.name,
            pgcache.LISTENER_NAME,
        )
    finally:
        await conn.close()
    async with asyncio.timeout(12.0):
        while embedded_outpost.sessions.epoch == before:
            await asyncio.sleep(0.1)
