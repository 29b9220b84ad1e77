"""The outposts' log lines: JSON, with the token masked wherever it appears."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from tessera.outposts.common import logs

CANARY = "outpost-token-canary-5e1d0c"


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.configure(**config)
    root.handlers[:] = handlers
    root.setLevel(level)


def test_the_token_never_reaches_the_log(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", [CANARY])
    log = structlog.get_logger("test")
    log.info("calling the core", url=f"http://core/?token={CANARY}", headers={"x": CANARY})
    log.warning("refused", token="anything", authorization=f"Bearer {CANARY}")
    logging.getLogger("aiohttp.client").warning("header was Bearer %s", CANARY)
    log.debug("not shown at info")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert len(lines) == 3
    assert CANARY not in json.dumps(lines)
    assert lines[1]["token"] == logs.MASK and lines[1]["authorization"] == logs.MASK
    assert lines[0]["event"] == "calling the core" and lines[0]["level"] == "info"
