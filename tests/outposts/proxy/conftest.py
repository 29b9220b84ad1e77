"""The real core the proxy outpost tests log in through: one `tessera server` per run (each
test makes its own application and provider)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import BOOTSTRAP_PASSWORD, BOOTSTRAP_TOKEN, SECRET_KEY, Server, base_env, free_port


@pytest.fixture(scope="session")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    env = base_env(
        AUTHENTIK_SECRET_KEY=SECRET_KEY,
        AUTHENTIK_BOOTSTRAP_PASSWORD=BOOTSTRAP_PASSWORD,
        AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
        AUTHENTIK_WEB__PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    server = Server(env, tmp_path_factory.mktemp("core"), port=port)
    server.wait_ready()
    yield server
    server.stop()
