"""The access log's direct JSON line (`logs.write_direct`) is the line the structlog chain would
write: same keys and values, the request's context, registered secrets masked, the level
honoured; and it steps aside for any configuration that is not `logs.configure`'s JSON one."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from tessera.core import logs

FIELDS = {
    "method": "GET",
    "route": "/x/{id}/",
    "status": 200,
    "duration_ms": 1.5,
    "user": "akadmin",
}


@pytest.fixture
def restored() -> Iterator[None]:
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_the_direct_line_is_the_chains_line(
    restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("info")
    with structlog.contextvars.bound_contextvars(request_id="req-1"):
        structlog.get_logger("t").info("request", **FIELDS)
        assert logs.write_direct(logging.INFO, "request", dict(FIELDS))
    chain, direct = _lines(capsys.readouterr().err)
    assert chain.pop("timestamp")[:10] == direct.pop("timestamp")[:10]
    assert chain == direct
    assert direct["request_id"] == "req-1"


def test_secrets_masked_and_the_level_honoured(
    restored: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure("info")
    logs.register_secret("a-registered-secret-value")
    assert logs.write_direct(logging.INFO, "request", {"user": "a-registered-secret-value"})
    assert logs.write_direct(logging.DEBUG, "request", dict(FIELDS))  # filtered: nothing
    [line] = _lines(capsys.readouterr().err)
    assert line["user"] == logs.MASK
    logs.configure("warning")
    assert logs.write_direct(logging.INFO, "request", dict(FIELDS))
    assert _lines(capsys.readouterr().err) == []


def test_another_configuration_gets_every_line(restored: None) -> None:
    logs.configure("info")
    structlog.configure(processors=[structlog.testing.LogCapture()])
    assert not logs.write_direct(logging.INFO, "request", dict(FIELDS))


def test_hot_paths_log_their_successes_at_debug_and_their_failures_at_info() -> None:
    from tessera.core.app import access

    assert access._level("/application/o/userinfo/", 200) == logging.DEBUG
    assert access._level("/outpost.goauthentik.io/auth/traefik", 302) == logging.DEBUG
    assert access._level("/application/o/token/", 401) == logging.INFO
    assert access._level("/api/v3/core/users/", 200) == logging.INFO
    assert access._level("/-/health/ready/", 503) == logging.DEBUG
