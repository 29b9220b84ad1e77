"""What the core tells connected outposts: TRIGGER_UPDATE after a change to what they read, and
SESSION_END (the sha256 of the session key) whenever a core session ends."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from typing import Any

import aiohttp
import pytest
from flowkit import csrf_headers, log_in_as
from hubkit import Outpost, hello_frame, receive, receive_instruction
from oauth2kit import key_pair, make_provider

from tessera.core.wire import outpost_channel as oc


async def _connected(client: Any, outpost: Outpost) -> aiohttp.ClientWebSocketResponse:
    instance = str(uuid.uuid4())
    ws = await client.ws_connect(outpost.path(instance), headers=outpost.headers())
    await ws.send_str(hello_frame(instance))
    assert (await receive(ws))["instruction"] == oc.Instruction.ACK
    return ws


async def _nothing_within(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await ws.receive(timeout=seconds)


def _session_digest(client: Any) -> str:
    key = next(c.value for c in client.session.cookie_jar if c.key == "authentik_session")
    return hashlib.sha256(key.encode()).hexdigest()


async def test_trigger_update_after_a_provider_change(
    client: Any, api: Any, make_outpost: Any
) -> None:
    provider = await make_provider(api, "app-one")
    outpost = await make_outpost("edge", providers=[provider["pk"]])
    sockets = [await _connected(client, outpost) for _ in range(2)]
    status, _ = await api("PATCH", f"providers/oauth2/{provider['pk']}/", json={"name": "renamed"})
    assert status == 200
    for ws in sockets:  # every instance of the outpost, within a second
        frame = await receive_instruction(ws, oc.Instruction.TRIGGER_UPDATE, timeout=1.0)
        assert frame == {"instruction": 2, "args": {}}
        await ws.close()


async def test_trigger_update_after_an_application_or_key_pair_change(
    client: Any, api: Any, make_outpost: Any
) -> None:
    signing = await key_pair(api, "edge")
    provider = await make_provider(api, "app-two", signing_key=signing)
    ws = await _connected(client, await make_outpost("edge", providers=[provider["pk"]]))
    status, _ = await api("PATCH", "core/applications/app-two/", json={"name": "App Two"})
    assert status == 200
    await receive_instruction(ws, oc.Instruction.TRIGGER_UPDATE, timeout=1.0)
    # The key pair its provider signs with (an outpost reads the key pairs its providers name).
    status, _ = await api(
        "PATCH", f"crypto/certificatekeypairs/{signing}/", json={"name": "edge-renamed"}
    )
    assert status == 200
    await receive_instruction(ws, oc.Instruction.TRIGGER_UPDATE, timeout=1.0)
    await ws.close()


async def test_no_trigger_for_what_outposts_do_not_read(
    client: Any, api: Any, make_outpost: Any, make_user: Any
) -> None:
    ws = await _connected(client, await make_outpost("edge"))
    await make_user("bystander")
    status, _ = await api("POST", "core/groups/", json={"name": "bystanders"})
    assert status == 201
    await _nothing_within(ws, 0.5)
    await ws.close()


async def test_session_end_on_logout(client: Any, make_outpost: Any, bootstrapped: Any) -> None:
    ws = await _connected(client, await make_outpost("edge"))
    await log_in_as(client, bootstrapped, "akadmin")
    digest = _session_digest(client)
    response = await client.get(
        "/api/v3/flows/executor/default-invalidation-flow/", headers=csrf_headers(client)
    )
    assert (await response.json())["component"] == "xak-flow-redirect"
    frame = await receive_instruction(ws, oc.Instruction.SESSION_END, timeout=1.0)
    assert frame == {
        "instruction": 4,
        "args": {"type": "event.session.end", "session_id": digest},
    }
    await ws.close()


async def test_session_end_reaches_every_outpost(
    client: Any, make_outpost: Any, bootstrapped: Any
) -> None:
    first = await _connected(client, await make_outpost("one"))
    second = await _connected(client, await make_outpost("two"))
    await log_in_as(client, bootstrapped, "akadmin")
    digest = _session_digest(client)
    await client.get(
        "/api/v3/flows/executor/default-invalidation-flow/", headers=csrf_headers(client)
    )
    for ws in (first, second):
        frame = await receive_instruction(ws, oc.Instruction.SESSION_END, timeout=1.0)
        assert frame["args"]["session_id"] == digest
        await ws.close()


@pytest.mark.parametrize("how", ["deactivated", "deleted"])
async def test_session_end_when_the_user_is_deactivated_or_deleted(
    client: Any, api: Any, make_outpost: Any, make_user: Any, bootstrapped: Any, how: str
) -> None:
    alice = await make_user("alice")
    ws = await _connected(client, await make_outpost("edge"))
    await log_in_as(client, bootstrapped, "alice")
    digest = _session_digest(client)
    client.session.cookie_jar.clear()
    if how == "deactivated":
        status, _ = await api("PATCH", f"core/users/{alice['pk']}/", json={"is_active": False})
        assert status == 200
    else:
        status, _ = await api("DELETE", f"core/users/{alice['pk']}/")
        assert status == 204
    frame = await receive_instruction(ws, oc.Instruction.SESSION_END, timeout=1.0)
    assert frame["args"]["session_id"] == digest
    await ws.close()


async def test_a_deactivated_users_session_stays_ended_when_activated_again(
    client: Any, api: Any, make_user: Any, bootstrapped: Any
) -> None:
    alice = await make_user("alice")
    await log_in_as(client, bootstrapped, "alice")
    cookies = {c.key: c.value for c in client.session.cookie_jar}
    await api("PATCH", f"core/users/{alice['pk']}/", json={"is_active": False})
    await api("PATCH", f"core/users/{alice['pk']}/", json={"is_active": True})
    client.session.cookie_jar.update_cookies(cookies)
    response = await client.get("/api/v3/core/users/me/")
    assert response.status == 401


async def test_session_end_when_a_user_revokes_their_other_sessions(
    aiohttp_client: Any, client: Any, make_outpost: Any, bootstrapped: Any
) -> None:
    other = await aiohttp_client(client.server)
    await log_in_as(other, bootstrapped, "akadmin")
    elsewhere = _session_digest(other)
    ws = await _connected(client, await make_outpost("edge"))
    await log_in_as(client, bootstrapped, "akadmin")
    portal = await client.get("/if/user/")
    text = await portal.text()
    token = text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    response = await client.post(
        "/if/user/sessions/revoke/",
        data={"session": "others", "csrf_token": token},
        allow_redirects=False,
    )
    assert response.status == 302, await response.text()
    frame = await receive_instruction(ws, oc.Instruction.SESSION_END, timeout=1.0)
    assert frame["args"]["session_id"] == elsewhere
    await ws.close()


async def test_a_slow_outpost_does_not_hold_up_the_others(
    client: Any, api: Any, make_outpost: Any
) -> None:
    provider = await make_provider(api, "app-three")
    outpost = await make_outpost("edge", providers=[provider["pk"]])
    idle = await _connected(client, outpost)  # never reads
    busy = await _connected(client, outpost)
    for n in range(3):
        await api("PATCH", f"providers/oauth2/{provider['pk']}/", json={"name": f"n{n}"})
        await receive_instruction(busy, oc.Instruction.TRIGGER_UPDATE, timeout=1.0)
    await busy.close()
    await idle.close()


def test_frames_are_json_objects() -> None:
    assert json.loads(oc.session_end("a" * 64).to_text())["args"]["session_id"] == "a" * 64
    with pytest.raises(ValueError, match="sha256"):
        oc.session_end("not a digest")
