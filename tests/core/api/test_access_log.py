"""The access log: one line per request with the route's pattern (never the path's secrets or the
query string), the status, the duration and the user; `X-Request-ID` honoured when safe, always
returned, and bound to every line logged while serving the request. The renderer follows stderr:
columns for a terminal, JSON otherwise."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from aiohttp import web
from structlog.testing import LogCapture

from tessera.core import logs
from tessera.core.app import access


@pytest.fixture
def captured() -> Iterator[LogCapture]:
    saved = structlog.get_config()
    capture = LogCapture()
    structlog.configure(processors=[structlog.contextvars.merge_contextvars, capture])
    try:
        yield capture
    finally:
        structlog.configure(**saved)


def _access(capture: LogCapture) -> list[dict[str, Any]]:
    return [e for e in capture.entries if e["event"] == "request"]


async def test_one_line_per_request_with_the_route_not_the_query(
    client: Any, captured: LogCapture, admin_headers: dict[str, str]
) -> None:
    response = await client.get(
        "/api/v3/core/users/?search=code-secret-in-query", headers=admin_headers
    )
    assert response.status == 200
    rid = response.headers["X-Request-ID"]
    [line] = _access(captured)
    assert line["method"] == "GET" and line["route"] == "/api/v3/core/users/"
    assert line["status"] == 200 and line["user"] == "akadmin" and line["request_id"] == rid
    assert isinstance(line["duration_ms"], float)
    assert "code-secret-in-query" not in str(captured.entries)


async def test_secret_paths_are_logged_as_their_pattern(client: Any, captured: LogCapture) -> None:
    response = await client.get("/recovery/use-token/a-recovery-key-never-logged/")
    assert response.status == 404
    [line] = _access(captured)
    assert line["route"] == "/recovery/use-token/{key}/" and line["user"] is None
    assert "a-recovery-key-never-logged" not in str(captured.entries)
    unmatched = await client.get("/no/such/page/with-a-token-in-it")
    assert unmatched.status == 404 and _access(captured)[-1]["route"] == "unmatched"
    assert "with-a-token-in-it" not in str(captured.entries)


async def test_a_safe_request_id_is_honoured_and_returned(
    client: Any, captured: LogCapture
) -> None:
    response = await client.get("/-/health/live/", headers={"X-Request-ID": "lb-7f3a.2:9"})
    assert response.headers["X-Request-ID"] == "lb-7f3a.2:9"
    assert _access(captured)[-1]["request_id"] == "lb-7f3a.2:9"


@pytest.mark.parametrize(
    "forged",
    ["x" * 129, "a b", 'evil"}{"status":200', "line\tbreak", "<script>", "id;rm", ""],
)
async def test_attack_an_unsafe_request_id_is_replaced(
    client: Any, captured: LogCapture, forged: str
) -> None:
    response = await client.get("/-/health/live/", headers={"X-Request-ID": forged})
    returned = response.headers["X-Request-ID"]
    assert returned != forged and len(returned) == 32
    assert _access(captured)[-1]["request_id"] == returned


async def test_redirects_raised_as_exceptions_carry_the_id(client: Any) -> None:
    response = await client.get("/", allow_redirects=False, headers={"X-Request-ID": "r-1"})
    assert response.headers.get("X-Request-ID") == "r-1"


async def test_the_id_is_bound_to_every_line_of_the_request(
    aiohttp_client: Any, captured: LogCapture
) -> None:
    async def handler(_request: web.Request) -> web.Response:
        structlog.get_logger("test").info("inside the handler")
        return web.Response(text="ok")

    app = web.Application(middlewares=[access.middleware])
    app.router.add_get("/items/{item}/", handler)
    client = await aiohttp_client(app)
    response = await client.get("/items/42/", headers={"X-Request-ID": "abc-123"})
    assert response.status == 200
    inside = [e for e in captured.entries if e["event"] == "inside the handler"]
    assert [e["request_id"] for e in inside] == ["abc-123"]
    assert _access(captured)[-1]["route"] == "/items/{item}/"
    structlog.get_logger("test").info("after the request")
    assert "request_id" not in captured.entries[-1]


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False])
def test_console_for_a_terminal_json_otherwise(monkeypatch: pytest.MonkeyPatch, tty: bool) -> None:
    saved, handlers = structlog.get_config(), logging.getLogger().handlers[:]
    stream = _Stream(tty)
    monkeypatch.setattr(sys, "stderr", stream)
    try:
        logs.configure("info")
        structlog.get_logger("test").info("hello", password="hunter2-hunter2")
        logging.getLogger("some.library").warning("from the standard library")
    finally:
        structlog.configure(**saved)
        logging.getLogger().handlers[:] = handlers
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and all("hunter2" not in line for line in lines)
    if tty:
        assert all(not line.startswith("{") for line in lines) and "hello" in lines[0]
    else:
        parsed = [json.loads(line) for line in lines]
        assert parsed[0]["event"] == "hello" and parsed[1]["logger"] == "some.library"
