"""The outpost end of the control channel against a peer that misbehaves (which the real core
never does): garbage closes the connection and the outpost connects again with the next
`attempt`; an unknown instruction is skipped; the rest is handed on, and the runtime drops a
malformed SESSION_END."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from tessera.core.wire import outpost_channel as oc
from tessera.outposts.common import backoff, channel, client, runtime, settings


async def test_a_hostile_peer_never_stops_the_outpost(aiohttp_server: Any, tmp_path: Path) -> None:
    attempts: list[str] = []
    closes: list[int | None] = []

    async def peer(request: web.Request) -> web.WebSocketResponse:
        attempts.append(request.query["attempt"])
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        hello = json.loads((await ws.receive()).data)
        assert hello["instruction"] == oc.Instruction.HELLO
        assert hello["args"]["uuid"] == request.query["instance_uuid"]
        if len(attempts) == 1:
            await ws.send_str("garbage")
            await ws.receive()
            closes.append(ws.close_code)
            return ws
        await ws.send_str(json.dumps({"instruction": 99, "args": {}}))
        await ws.send_str(json.dumps({"instruction": 4, "args": {"session_id": "nope"}}))
        await ws.send_str(oc.session_end("b" * 64).to_text())
        await ws.send_str(oc.make(oc.Instruction.TRIGGER_UPDATE).to_text())
        await ws.receive()
        return ws

    app = web.Application()
    app.router.add_get("/ws/outpost/{pk}/", peer)
    server = await aiohttp_server(app)
    config = settings.load(
        host=str(server.make_url("")).rstrip("/"), token="t" * 20, state_dir=tmp_path
    )
    frames: list[dict[str, Any]] = []
    done = asyncio.Event()

    async def on_frame(frame: oc.Frame) -> None:
        frames.append({"instruction": frame.instruction, "args": frame.args})
        if frame.instruction == oc.Instruction.TRIGGER_UPDATE:
            done.set()

    async def on_connected() -> None:
        return None

    core = client.CoreClient(config, user_agent="test")
    link = channel.Channel(
        core,
        outpost_pk=lambda: "4f7d2d8c-6a1e-4a53-9a58-2b3f3c0f8e11",
        instance_uuid="0b7b1e0e-5c55-4d3a-9d0c-3d2f3a1c7e21",
        hello={"uuid": "0b7b1e0e-5c55-4d3a-9d0c-3d2f3a1c7e21", "version": oc.PROTOCOL_VERSION},
        on_frame=on_frame,
        on_connected=on_connected,
        backoff=backoff.Backoff(base=0.05, cap=0.1),
        hello_interval=0.5,
    )
    task = asyncio.create_task(link.run())
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await core.close()
    assert attempts[:2] == ["1", "2"]
    assert closes == [oc.CLOSE_INVALID]
    # The unknown instruction skipped; SESSION_END handed on as sent (the runtime checks it).
    assert [f["instruction"] for f in frames] == [4, 4, 2]


async def test_the_runtime_drops_a_malformed_session_end(tmp_path: Path) -> None:
    config = settings.load(host="http://127.0.0.1:1", token="t" * 20, state_dir=tmp_path)
    rt = runtime.Runtime(config, "proxy")
    ended: list[str] = []

    async def on_session_end(digest: str) -> None:
        ended.append(digest)

    async def broken(digest: str) -> None:
        raise RuntimeError("a callback that fails")

    rt.on_session_end(broken)
    rt.on_session_end(on_session_end)
    for args in ({"session_id": "nope"}, {"session_id": "B" * 64}, {}, {"session_id": 5}):
        await rt._on_frame(oc.make(oc.Instruction.SESSION_END, **args))
    assert ended == []
    await rt._on_frame(oc.session_end("c" * 64))
    assert ended == ["c" * 64]  # the failing callback before it changed nothing
    await rt.client.close()
