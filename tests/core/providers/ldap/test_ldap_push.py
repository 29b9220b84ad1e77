"""Pushes over the control channel to an LDAP outpost: a change of a user, a membership, a
password or a search grant reaches it as PROVIDER_SPECIFIC with `DirectoryChanged` args (its LDAP
providers, the new generation, the users whose cached binds must go), and ending a session a
bind opened (unbind) as SESSION_END with the session's digest. A proxy outpost hears none of
the directory's news."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any

import aiohttp
import pytest
from hubkit import hello_frame, receive, receive_instruction
from ldapcorekit import Served, serve, user_with_password
from proxyadminkit import bearer, make_outpost, outpost_token

from tessera.core.wire import ldap as wire
from tessera.core.wire import outpost_channel as oc


async def _connected(client: Any, outpost_pk: str, key: str) -> aiohttp.ClientWebSocketResponse:
    instance = str(uuid.uuid4())
    ws = await client.ws_connect(
        f"/ws/outpost/{outpost_pk}/?instance_uuid={instance}&attempt=1", headers=bearer(key)
    )
    await ws.send_str(hello_frame(instance))
    while (await receive(ws))["instruction"] != oc.Instruction.ACK:
        pass  # news of the changes made just before may come first
    await asyncio.sleep(0.5)
    with contextlib.suppress(asyncio.TimeoutError):
        while True:
            await receive(ws, timeout=0.1)
    return ws


async def _changed(ws: aiohttp.ClientWebSocketResponse) -> wire.DirectoryChanged:
    frame = await receive_instruction(ws, oc.Instruction.PROVIDER_SPECIFIC, timeout=5.0)
    return wire.DirectoryChanged.model_validate(frame["args"])


@pytest.fixture
async def served(api: Any) -> Served:
    return await serve(api, "pushed")


async def test_directory_changes_reach_the_ldap_outpost(
    served: Served, api: Any, client: Any
) -> None:
    alice = await user_with_password(api, "alice")
    proxy = await make_outpost(api, "web", [])
    ws = await _connected(client, served.outpost["pk"], served.key)
    other = await _connected(client, proxy["pk"], await outpost_token(api, proxy))
    status, _ = await api("PATCH", f"core/users/{alice['pk']}/", json={"name": "Alice Again"})
    first = await _changed(ws)
    assert first.providers == [served.pk] and first.users == [alice["pk"]]
    assert first.generation > 0
    status, group = await api("POST", "core/groups/", json={"name": "media"})
    await api("POST", f"core/groups/{group['pk']}/add_user/", json={"pk": alice["pk"]})
    seen: set[int] = set()
    while alice["pk"] not in seen:
        later = await _changed(ws)
        assert later.generation > first.generation
        seen |= set(later.users)
    status, _ = await api(
        "PUT", f"providers/ldap/{served.pk}/search_access/", json={"groups": [group["pk"]]}
    )
    assert alice["pk"] in (await _changed(ws)).users  # a grant to her group: her binds go
    status, _ = await api("PATCH", f"providers/ldap/{served.pk}/", json={"uid_start_number": 10000})
    assert status == 200
    settings_changed = await _changed(ws)  # the DIT's numbers changed: no user named
    assert settings_changed.providers == [served.pk] and settings_changed.users == []
    with pytest.raises(asyncio.TimeoutError):  # the proxy outpost hears no directory news
        while True:
            frame = await receive(other, timeout=0.5)
            assert frame["instruction"] != oc.Instruction.PROVIDER_SPECIFIC, frame
    await ws.close()
    await other.close()


async def test_unbind_ends_the_session_and_the_outpost_hears_it(
    served: Served, api: Any, client: Any
) -> None:
    await user_with_password(api, "bob")
    bound = await served.bound("bob")
    ws = await _connected(client, served.outpost["pk"], served.key)
    status, body = await served.call("POST", "unbind", {"session_id": bound["session_id"]})
    assert status == 204, body
    frame = await receive_instruction(ws, oc.Instruction.SESSION_END, timeout=5.0)
    assert frame["args"]["session_id"] == bound["session_id"]
    status, answer = await served.call("POST", "search", {"session_id": bound["session_id"]})
    assert status == 403, answer
    status, events = await api("GET", "events/events/?action=logout")
    assert [e["user"]["username"] for e in events["results"]] == ["bob"]
    assert events["results"][0]["context"]["flow"] == "default-invalidation-flow"
    await ws.close()
