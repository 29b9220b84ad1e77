"""The core changing and going away under a running `tessera outpost proxy`: a provider added to
the outpost is served after TRIGGER_UPDATE; with the core stopped, existing sessions keep
working and new logins get a clear 503 page; with the core back, the outpost reconnects, shows
in health, and logins work again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import proxykit
import pytest
from helpers import BOOTSTRAP_PASSWORD, BOOTSTRAP_TOKEN, SECRET_KEY, Server, base_env, free_port
from proxykit import (
    DOMAIN,
    OutpostProcess,
    admin,
    browse,
    check_headers,
    cookie_header,
    make_proxy_outpost,
    make_proxy_provider,
    status_of,
)


@pytest.fixture
def own_core(tmp_path: Path) -> Iterator[tuple[list[Server], dict[str, str]]]:
    """A core of this test's own (stopped and started again on the same port: the test adds
    each new process to the list, and every one is stopped at the end)."""
    port = free_port()
    env = base_env(
        AUTHENTIK_SECRET_KEY=SECRET_KEY,
        AUTHENTIK_BOOTSTRAP_PASSWORD=BOOTSTRAP_PASSWORD,
        AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
        AUTHENTIK_WEB__PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    server = Server(env, tmp_path, port=port)
    server.wait_ready()
    servers = [server]
    yield servers, env
    for each in servers:
        each.stop()


def add_provider(core: Server, outpost: dict[str, Any], external: str) -> None:
    provider = make_proxy_provider(core, external)
    providers = [*outpost["providers"], provider["pk"]]
    admin(core, "PATCH", f"outposts/instances/{outpost['pk']}/", {"providers": providers})


@pytest.mark.slow
async def test_config_change_and_core_outage(
    own_core: tuple[list[Server], dict[str, str]], tmp_path: Path
) -> None:
    servers, env = own_core
    core = servers[0]
    port = free_port()
    external = f"http://app.{DOMAIN}:{port}"
    outpost_row, token = make_proxy_outpost(core, external)
    (tmp_path / "outpost").mkdir()
    outpost = OutpostProcess(core, token, tmp_path / "outpost", port)
    try:
        await outpost.ready()
        original = f"{external}/page"
        async with proxykit.browser() as browser, aiohttp.ClientSession() as client:
            await browse(
                browser, f"{external}/outpost.goauthentik.io/start?rd={original}", core.url
            )
            session = check_headers(port, original, Cookie=cookie_header(browser))
            assert await status_of(client, outpost, session) == 200

            # a provider added to the outpost is served after TRIGGER_UPDATE (0-2 s jitter)
            other = f"http://two.{DOMAIN}:{port}"
            assert await status_of(client, outpost, check_headers(port, other + "/")) == 400
            add_provider(core, outpost_row, other)

            async def served() -> bool:
                return await status_of(client, outpost, check_headers(port, other + "/")) == 302

            await proxykit.until(served, timeout=10)

            # the core stops: existing sessions go on, new logins get a clear page
            core.stop()
            assert await status_of(client, outpost, session) == 200
            start = f"http://127.0.0.1:{port}/outpost.goauthentik.io/start"

            async def login_refused() -> bool:
                async with client.get(
                    start,
                    headers={"Host": f"app.{DOMAIN}:{port}", "Accept": "text/html"},
                    allow_redirects=False,
                ) as r:
                    return r.status == 503 and "unreachable" in await r.text()

            await proxykit.until(login_refused, timeout=30)
            assert await status_of(client, outpost, session) == 200

            # the core comes back on its port: the outpost reconnects and logins work again
            core = Server(env, core.log.parent, port=core.port)
            servers.append(core)
            core.wait_ready()

            async def reconnected() -> bool:
                health = admin(core, "GET", f"outposts/instances/{outpost_row['pk']}/health/")
                return len(health) >= 1

            await proxykit.until(reconnected, timeout=90)

            async def login_offered() -> bool:
                async with client.get(
                    start, headers={"Host": f"app.{DOMAIN}:{port}"}, allow_redirects=False
                ) as r:
                    return r.status == 302

            await proxykit.until(login_offered, timeout=10)
            assert await status_of(client, outpost, session) == 200
    finally:
        outpost.stop()
