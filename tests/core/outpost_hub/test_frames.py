"""Frames on the control channel: HELLO answered by ACK and shown by the health operation;
whatever else an outpost may not send closes the connection with a close code, logged, and the
core goes on serving."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any

import pytest
from authentik_client.models.outpost_health import OutpostHealth
from hubkit import Outpost, closed_with, hello_frame, receive

from tessera.core import identity
from tessera.core.wire import outpost_channel as oc


async def _connect(client: Any, outpost: Outpost, instance: str | None = None) -> Any:
    return await client.ws_connect(outpost.path(instance), headers=outpost.headers())


async def _health(api: Any, outpost: Outpost) -> list[dict[str, Any]]:
    status, body = await api("GET", f"outposts/instances/{outpost.pk}/health/")
    assert status == 200, body
    return list(body)


async def test_hello_is_answered_by_ack(client: Any, make_outpost: Any) -> None:
    outpost = await make_outpost("edge")
    instance = str(uuid.uuid4())
    ws = await _connect(client, outpost, instance)
    await ws.send_str(hello_frame(instance))
    assert await receive(ws) == {"instruction": 0, "args": {}}
    await ws.send_str(json.dumps({"instruction": 3, "args": {"sub_type": "x"}}))
    assert await receive(ws) == {"instruction": 0, "args": {}}
    await ws.close()


async def test_health_shows_the_instance_in_authentiks_shape(
    client: Any, api: Any, make_outpost: Any
) -> None:
    outpost = await make_outpost("edge")
    assert await _health(api, outpost) == []
    instance = str(uuid.uuid4())
    ws = await _connect(client, outpost, instance)
    await ws.send_str(hello_frame(instance, hostname="pod-a", version="2026.8.5"))
    await receive(ws)
    [shown] = await _health(api, outpost)
    parsed = OutpostHealth.from_dict(shown)  # authentik's own client accepts it
    assert parsed is not None
    assert parsed.uid == instance and parsed.hostname == "pod-a"
    assert parsed.version == parsed.version_should == oc.PROTOCOL_VERSION
    assert parsed.version_outdated is False
    await ws.close()
    await asyncio.sleep(0.2)
    assert await _health(api, outpost) == []  # a closed channel's instance goes at once


@pytest.mark.parametrize(
    ("version", "outdated"),
    [("2025.10.1", True), ("2026.8.5", False), ("2027.2.0-rc1", False), ("", True), ("²³.x", True)],
)
async def test_an_older_outpost_is_outdated(
    client: Any, api: Any, make_outpost: Any, version: str, outdated: bool
) -> None:
    outpost = await make_outpost("edge")
    instance = str(uuid.uuid4())
    ws = await _connect(client, outpost, instance)
    await ws.send_str(hello_frame(instance, version=version))
    await receive(ws)
    [shown] = await _health(api, outpost)
    assert shown["version_outdated"] is outdated
    await ws.close()


async def test_health_needs_a_superuser_and_a_real_outpost(
    client: Any, api: Any, make_outpost: Any
) -> None:
    outpost = await make_outpost("edge")
    response = await client.get(f"/api/v3/outposts/instances/{outpost.pk}/health/")
    assert response.status == 401
    response = await client.get(
        f"/api/v3/outposts/instances/{outpost.pk}/health/", headers=outpost.headers()
    )
    assert response.status == 403
    status, _ = await api("GET", f"outposts/instances/{uuid.uuid4()}/health/")
    assert status == 404
    status, _ = await api("GET", "outposts/instances/not-a-uuid/health/")
    assert status == 404


HOSTILE = [
    ("not json", "garbage", oc.CLOSE_INVALID),
    ("a list", "[1, 2]", oc.CLOSE_INVALID),
    ("no instruction", '{"args": {}}', oc.CLOSE_INVALID),
    ("a string instruction", '{"instruction": "1", "args": {}}', oc.CLOSE_INVALID),
    ("extra keys", '{"instruction": 0, "args": {}, "x": 1}', oc.CLOSE_INVALID),
    ("args not an object", '{"instruction": 1, "args": []}', oc.CLOSE_INVALID),
    ("deep nesting", '{"instruction": 1, "args": ' + "[" * 5000 + "]" * 5000 + "}", 1007),
    ("NaN", '{"instruction": 1, "args": {"v": NaN}}', oc.CLOSE_INVALID),
    ("an unknown instruction", '{"instruction": 99, "args": {}}', oc.CLOSE_POLICY),
    ("a negative instruction", '{"instruction": -1, "args": {}}', oc.CLOSE_INVALID),
    ("SESSION_END from an outpost", '{"instruction": 4, "args": {}}', oc.CLOSE_POLICY),
    ("TRIGGER_UPDATE from an outpost", '{"instruction": 2, "args": {}}', oc.CLOSE_POLICY),
    ("HELLO with a wrong type", '{"instruction": 1, "args": {"version": 5}}', oc.CLOSE_INVALID),
    ("HELLO of a bad uuid", '{"instruction": 1, "args": {"uuid": "zz"}}', oc.CLOSE_POLICY),
    (
        "HELLO of another instance",
        json.dumps({"instruction": 1, "args": {"uuid": str(uuid.uuid4())}}),
        oc.CLOSE_POLICY,
    ),
    ("a huge hostname", hello_frame("{i}", hostname="h" * 1000), oc.CLOSE_INVALID),
]


@pytest.mark.parametrize(("what", "frame", "code"), HOSTILE, ids=[h[0] for h in HOSTILE])
async def test_attack_hostile_frames_close_with_a_code(
    client: Any,
    api: Any,
    make_outpost: Any,
    what: str,
    frame: str,
    code: int,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    outpost = await make_outpost("edge")
    instance = str(uuid.uuid4())
    ws = await _connect(client, outpost, instance)
    await ws.send_str(frame.replace("{i}", instance))
    assert await closed_with(ws) == code, what
    assert await _health(api, outpost) == []  # no partial state
    ws = await _connect(client, outpost, instance)  # the core still serves the outpost
    await ws.send_str(hello_frame(instance))
    assert (await receive(ws))["instruction"] == 0
    await ws.close()
    output = capsys.readouterr()
    assert "outpost_channel_refused" in output.out  # logged, with its reason
    assert "outpost_channel_failed" not in output.out and "Traceback" not in output.out
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_attack_an_oversized_frame_is_1009(client: Any, make_outpost: Any) -> None:
    outpost = await make_outpost("edge")
    ws = await _connect(client, outpost)
    await ws.send_str(json.dumps({"instruction": 1, "args": {"x": "a" * (oc.MAX_FRAME_BYTES)}}))
    assert await closed_with(ws) == oc.CLOSE_TOO_BIG


async def test_attack_a_binary_frame_is_1003(client: Any, make_outpost: Any) -> None:
    outpost = await make_outpost("edge")
    ws = await _connect(client, outpost)
    await ws.send_bytes(b"\x00\x01")
    assert await closed_with(ws) == oc.CLOSE_UNSUPPORTED


async def test_a_deleted_outpost_loses_its_channel_at_the_next_hello(
    client: Any, make_outpost: Any, bootstrapped: Any
) -> None:
    outpost = await make_outpost("edge")
    instance = str(uuid.uuid4())
    ws = await _connect(client, outpost, instance)
    await ws.send_str(hello_frame(instance))
    await receive(ws)
    async with bootstrapped.transaction() as tx:
        await identity.outposts.delete(tx, outpost.row)
    await ws.send_str(hello_frame(instance))
    assert await closed_with(ws) == oc.CLOSE_OUTPOST_GONE


async def test_the_connected_gauge_counts_instances(client: Any, make_outpost: Any) -> None:
    from tessera.core import app as core_app

    outpost = await make_outpost("edge")
    sockets = [await _connect(client, outpost) for _ in range(2)]
    registry = client.app[core_app.METRICS].registry
    value = registry.get_sample_value(
        "tessera_outpost_instances_connected", {"outpost": outpost.pk, "outpost_name": "edge"}
    )
    assert value == 2
    for ws in sockets:
        await ws.close()
    await asyncio.sleep(0.1)
    value = registry.get_sample_value(
        "tessera_outpost_instances_connected", {"outpost": outpost.pk, "outpost_name": "edge"}
    )
    assert value is None


def test_outposts_report_the_authentik_release_the_core_follows() -> None:
    from tessera.core.api import admin

    assert oc.PROTOCOL_VERSION == admin.AUTHENTIK_VERSION
