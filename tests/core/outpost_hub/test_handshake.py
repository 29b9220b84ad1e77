"""The control channel's handshake: the bearer token and the parameters, checked before the
upgrade, each refusal a JSON answer; the right token upgrades."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp
import pytest
from helpers import BOOTSTRAP_TOKEN
from hubkit import Outpost

UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


async def _get(client: Any, path: str, **headers: str) -> tuple[int, Any]:
    response = await client.get(path, headers={**UPGRADE, **headers})
    assert response.content_type == "application/json", await response.text()
    return response.status, await response.json()


async def test_the_outposts_own_token_upgrades(client: Any, make_outpost: Any) -> None:
    outpost: Outpost = await make_outpost("edge")
    ws = await client.ws_connect(outpost.path(), headers=outpost.headers())
    assert not ws.closed
    await ws.close()


async def test_no_token_is_401_before_the_upgrade(client: Any, make_outpost: Any) -> None:
    outpost = await make_outpost("edge")
    status, body = await _get(client, outpost.path())
    assert status == 401 and body == {"detail": "Authentication credentials were not provided."}
    status, _ = await _get(client, outpost.path(), Authorization=f"Basic {outpost.key}")
    assert status == 401


async def test_a_wrong_token_is_401(client: Any, make_outpost: Any) -> None:
    outpost = await make_outpost("edge")
    status, body = await _get(client, outpost.path(), Authorization="Bearer not-a-token")
    assert status == 401 and body == {"detail": "Invalid token."}
    status, _ = await _get(client, outpost.path(), Authorization="Bearer " + "x" * 5000)
    assert status == 401
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(outpost.path(), headers={"Authorization": "Bearer nope"})
    assert refused.value.status == 401


async def test_attack_another_outposts_token_is_403(client: Any, make_outpost: Any) -> None:
    mine, theirs = await make_outpost("mine"), await make_outpost("theirs")
    status, body = await _get(client, theirs.path(), **mine.headers())
    assert status == 403 and "permission" in body["detail"]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(theirs.path(), headers=mine.headers())
    assert refused.value.status == 403


async def test_attack_an_admin_token_is_not_an_outposts(client: Any, make_outpost: Any) -> None:
    outpost = await make_outpost("edge")
    status, _ = await _get(client, outpost.path(), Authorization=f"Bearer {BOOTSTRAP_TOKEN}")
    assert status == 403


@pytest.mark.parametrize(
    ("where", "status", "field"),
    [
        ("/ws/outpost/not-a-uuid/?instance_uuid={i}", 404, "detail"),
        ("/ws/outpost/{o}/?instance_uuid=nope", 400, "instance_uuid"),
        ("/ws/outpost/{o}/", 400, "instance_uuid"),
        ("/ws/outpost/{o}/?instance_uuid={i}&attempt=-1", 400, "attempt"),
        ("/ws/outpost/{o}/?instance_uuid={i}&attempt=99999999999", 400, "attempt"),
        ("/ws/outpost/{o}/?instance_uuid={i}&attempt=%C2%B2", 400, "attempt"),
        ("/ws/outpost/{o}/?instance_uuid=%00&attempt=1", 400, "instance_uuid"),
    ],
)
async def test_attack_bad_handshake_parameters_are_4xx(
    client: Any, make_outpost: Any, where: str, status: int, field: str
) -> None:
    outpost = await make_outpost("edge")
    path = where.format(o=outpost.pk, i=uuid.uuid4())
    got, body = await _get(client, path, **outpost.headers())
    assert got == status and field in body


async def test_attack_an_unknown_outpost_is_refused(client: Any, make_outpost: Any) -> None:
    outpost = await make_outpost("edge")
    path = f"/ws/outpost/{uuid.uuid4()}/?instance_uuid={uuid.uuid4()}"
    status, _ = await _get(client, path, **outpost.headers())
    assert status == 403


async def test_a_plain_get_with_the_right_token_is_400(client: Any, make_outpost: Any) -> None:
    outpost = await make_outpost("edge")
    response = await client.get(outpost.path(), headers=outpost.headers())
    assert response.status == 400
    assert "websocket" in (await response.json())["detail"]


async def test_attack_a_deleted_outposts_token_is_refused(
    client: Any, make_outpost: Any, bootstrapped: Any
) -> None:
    from tessera.core import identity

    outpost = await make_outpost("gone")
    async with bootstrapped.transaction() as tx:
        await identity.outposts.delete(tx, outpost.row)
    status, _ = await _get(client, outpost.path(), **outpost.headers())
    assert status == 401
