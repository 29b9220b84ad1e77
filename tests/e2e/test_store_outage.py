"""The database goes away under a running server, then comes back: 503 with a reason, then 200.

A TCP relay between the server and PostgreSQL is cut and restored, so the outage is real: the
server's connections break and new ones are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from pathlib import Path

from helpers import BOOTSTRAP_TOKEN, PG_HOST, Server, free_port, pg_env


class Relay:
    """Forwards 127.0.0.1:<port> to PostgreSQL until cut."""

    def __init__(self) -> None:
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.restore()

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)  # type: ignore[arg-type]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(PG_HOST, 5432)
        self.writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _cut(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()

    def restore(self) -> None:
        self._call(self._start())

    def cut(self) -> None:
        self._call(self._cut())

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.cut()
        self.loop.call_soon_threadsafe(self.loop.stop)


def _wait_status(
    server: Server, path: str, expected: int, timeout: float = 20
) -> tuple[int, object]:
    deadline = time.monotonic() + timeout
    status, body = server.request("GET", path)
    while status != expected and time.monotonic() < deadline:
        time.sleep(0.2)
        status, body = server.request("GET", path)
    return status, body


def test_ready_reports_outage_and_recovers(tmp_path: Path, fresh_database: str) -> None:
    relay = Relay()
    env = pg_env(
        fresh_database,
        AUTHENTIK_POSTGRESQL__PORT=str(relay.port),
        AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
    )
    server = Server(env, tmp_path)
    try:
        server.wait_ready()
        # Every serving worker holds pooled connections when the network is cut.
        for _ in range(20):
            assert server.request("GET", "/api/v3/core/users/me/", BOOTSTRAP_TOKEN)[0] == 200
        relay.cut()
        status, body = _wait_status(server, "/-/health/ready/", 503)
        assert status == 503, body
        assert isinstance(body, dict) and body["component"] == "store" and body["reason"]
        assert server.request("GET", "/-/health/live/")[0] == 200
        status, body = server.request("GET", "/api/v3/core/users/", BOOTSTRAP_TOKEN)
        assert status == 503 and isinstance(body, dict) and "detail" in body
        relay.restore()
        status, _ = _wait_status(server, "/-/health/ready/", 200)
        assert status == 200
        # Ready on one worker is ready on all: none serves a 503 from a connection the cut closed.
        statuses = [
            server.request("GET", "/api/v3/core/users/me/", BOOTSTRAP_TOKEN)[0] for _ in range(20)
        ]
        assert statuses == [200] * 20
        assert server.proc.poll() is None
    finally:
        server.stop()
        relay.close()
