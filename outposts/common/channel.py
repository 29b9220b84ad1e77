"""The outpost end of the control channel: connect, HELLO every 10 s, hand frames on, reconnect.

`Channel.run` keeps one websocket to `/ws/outpost/<outpost pk>/?instance_uuid=&attempt=` open
for as long as it runs: HELLO on connect and every `HELLO_INTERVAL` seconds, the core's
TRIGGER_UPDATE, PROVIDER_SPECIFIC and SESSION_END handed to `on_frame`, ACKs taken as signs of
life. A connection that fails, is closed, or hears nothing for three HELLO intervals is
replaced after a jittered exponential backoff (`backoff.Backoff`, up to 5 minutes), reset once
the core has acknowledged a HELLO. `runtime.Runtime` runs it and is told of each new connection
(`on_connected`: something may have changed while the channel was down).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import structlog

from tessera.core.wire import outpost_channel as oc
from tessera.outposts.common import backoff as backoff_
from tessera.outposts.common import client as client_

HANDSHAKE_TIMEOUT = 10.0
SILENCE_LIMIT = 3  # HELLO intervals without any frame from the core before reconnecting
log = structlog.get_logger("tessera.outposts.channel")

FrameHandler = Callable[[oc.Frame], Awaitable[None]]


class Channel:
    """One instance's control channel to the core."""

    def __init__(
        self,
        client: client_.CoreClient,
        *,
        outpost_pk: Callable[[], str],
        instance_uuid: str,
        hello: dict[str, Any],
        on_frame: FrameHandler,
        on_connected: Callable[[], Awaitable[None]],
        on_state: Callable[[bool], None] = lambda _: None,
        backoff: backoff_.Backoff | None = None,
        hello_interval: float = oc.HELLO_INTERVAL,
    ) -> None:
        self.client = client
        self.outpost_pk = outpost_pk
        self.instance_uuid = instance_uuid
        self.hello = hello
        self.on_frame = on_frame
        self.on_connected = on_connected
        self.on_state = on_state
        self.backoff = backoff or backoff_.Backoff()
        self.hello_interval = hello_interval
        self.attempt = 0
        self.connected = False
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._closing = False

    def url(self) -> str:
        query = urlencode({"instance_uuid": self.instance_uuid, "attempt": str(self.attempt)})
        return self.client.ws_url(f"/ws/outpost/{self.outpost_pk()}/?{query}")

    async def run(self) -> None:
        """Connect, serve, reconnect; returns when cancelled or after `close()`."""
        while True:
            self.attempt += 1
            await self._connect_once()
            if self._closing:
                return
            delay = self.backoff.next()
            log.info("outpost_channel_retry", seconds=round(delay, 2), attempt=self.attempt)
            await asyncio.sleep(delay)

    async def reconnect(self) -> None:
        """Close the current connection (the loop opens a new one after the backoff)."""
        if self._ws is not None:
            await self._ws.close(code=oc.CLOSE_GOING_AWAY)

    async def close(self) -> None:
        """Say goodbye to the core (close code 1000); the loop then ends."""
        self._closing = True
        if self._ws is not None and not self._ws.closed:
            with contextlib.suppress(TimeoutError, aiohttp.ClientError, ConnectionError):
                async with asyncio.timeout(2.0):
                    await self._ws.close(code=oc.CLOSE_NORMAL)

    async def _connect_once(self) -> None:
        try:
            ws = await self.client.session.ws_connect(
                self.url(),
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                max_msg_size=oc.MAX_FRAME_BYTES,
                autoping=True,
                heartbeat=self.hello_interval * 2,
                ssl=self.client.ssl,
            )
        except aiohttp.WSServerHandshakeError as exc:
            self._handshake_refused(exc)
            return
        except (TimeoutError, aiohttp.ClientError, OSError, ssl.SSLError) as exc:
            log.warning(
                "outpost_channel_unreachable",
                host=self.client.settings.host,
                error=client_.describe_error(exc),
            )
            return
        self._ws = ws
        self._set_state(True)
        log.info("outpost_channel_connected", attempt=self.attempt)
        try:
            await self.on_connected()
            await self._serve(ws)
        finally:
            self._ws = None
            self._set_state(False)
            if not ws.closed:
                await ws.close()
            log.info("outpost_channel_closed", code=ws.close_code)

    def _handshake_refused(self, exc: aiohttp.WSServerHandshakeError) -> None:
        if exc.status in (401, 403):
            log.error(
                "outpost_channel_refused",
                status=exc.status,
                hint="the core refused the token: check AUTHENTIK_TOKEN",
            )
        else:
            log.warning("outpost_channel_handshake_failed", status=exc.status)

    def _set_state(self, connected: bool) -> None:
        self.connected = connected
        self.on_state(connected)

    async def _serve(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        hello = asyncio.create_task(self._hello_loop(ws))
        try:
            await self._read_loop(ws)
        finally:
            hello.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await hello

    async def _hello_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        frame = oc.make(oc.Instruction.HELLO, **self.hello).to_text()
        while not ws.closed:
            try:
                await ws.send_str(frame)
            except (aiohttp.ClientError, ConnectionError, RuntimeError):
                return  # the read loop sees the close
            await asyncio.sleep(self.hello_interval)

    async def _read_loop(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            try:
                msg = await ws.receive(timeout=self.hello_interval * SILENCE_LIMIT)
            except TimeoutError:
                log.warning("outpost_channel_silent", seconds=self.hello_interval * SILENCE_LIMIT)
                return
            if msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                return
            if msg.type != aiohttp.WSMsgType.TEXT:
                await ws.close(code=oc.CLOSE_UNSUPPORTED)
                return
            try:
                frame = oc.parse(msg.data)
                which = oc.instruction(frame)
            except oc.FrameError as exc:
                if exc.close_code == oc.CLOSE_POLICY:  # a newer core's instruction: skip it
                    log.info("outpost_channel_unknown_instruction", error=str(exc))
                    continue
                log.warning("outpost_channel_bad_frame", error=str(exc))
                await ws.close(code=exc.close_code)
                return
            if which == oc.Instruction.ACK:
                self.backoff.reset()
                continue
            await self.on_frame(frame)
