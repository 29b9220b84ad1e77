"""Outposts in the store and their control channels, for the hub and outpost tests."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from helpers import SECRET_KEY

from tessera.core import identity, store
from tessera.core.crypto import Keyring
from tessera.core.wire import outpost_channel as oc


@dataclass
class Outpost:
    pk: str
    name: str
    key: str
    row: dict[str, Any] = field(repr=False)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def path(self, instance: str | None = None, attempt: int = 1) -> str:
        return f"/ws/outpost/{self.pk}/?instance_uuid={instance or uuid.uuid4()}&attempt={attempt}"


async def create_outpost(
    db: store.Store, name: str, providers: list[int] | None = None, type: str = "proxy"
) -> Outpost:
    keyring = Keyring(SECRET_KEY)
    async with db.transaction() as tx:
        row = await identity.outposts.create(
            tx,
            keyring,
            name=name,
            type=type,
            config=identity.outposts.default_config("http://core.example"),
            providers=providers or [],
        )
        key = await identity.outposts.token_key(tx, keyring, row)
    assert key is not None
    return Outpost(pk=str(row["pk"]), name=name, key=key, row=row)


def hello_frame(instance: str, **extra: Any) -> str:
    args = {
        "version": oc.PROTOCOL_VERSION,
        "hostname": "outpost-host-1",
        "uuid": instance,
        "buildHash": "",
        "golangVersion": "",
        "opensslEnabled": True,
        "opensslVersion": "OpenSSL 3",
        "fipsEnabled": False,
        **extra,
    }
    return json.dumps({"instruction": 1, "args": args})


async def receive(ws: aiohttp.ClientWebSocketResponse, timeout: float = 2.0) -> dict[str, Any]:
    """The next frame from the core, parsed (fails on a close or after `timeout`)."""
    msg = await ws.receive(timeout=timeout)
    assert msg.type == aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
    return dict(json.loads(msg.data))


async def receive_instruction(
    ws: aiohttp.ClientWebSocketResponse, instruction: int, timeout: float = 2.0
) -> dict[str, Any]:
    """The next frame with `instruction`, skipping ACKs (and, waiting for another instruction,
    TRIGGER_UPDATEs: making a second outpost is a change the first is told of)."""
    skipped = {oc.Instruction.ACK, oc.Instruction.TRIGGER_UPDATE} - {instruction}
    while True:
        frame = await receive(ws, timeout)
        if frame["instruction"] == instruction:
            return frame
        assert frame["instruction"] in skipped, frame


async def closed_with(ws: aiohttp.ClientWebSocketResponse, timeout: float = 5.0) -> int | None:
    """The close code the core ended the connection with (ACKs before it skipped)."""
    while True:
        msg = await ws.receive(timeout=timeout)
        if msg.type == aiohttp.WSMsgType.TEXT:
            continue
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
        return ws.close_code
