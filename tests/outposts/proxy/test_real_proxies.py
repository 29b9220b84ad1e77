"""The real reverse proxies in front of an upstream that echoes the identity headers it receives:
Traefik v3 with forwardAuth exactly as authentik's compose labels, nginx with auth_request and
`error_page 401`, Caddy with forward_auth and copy_headers. A whole login through each, with a
cookie jar: the application's URL, the core's login flow, and back with `X-authentik-username`."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import proxykit
import pytest
from helpers import Server, free_port
from proxykit import browse, forward_config, outpost_for, serving

from tessera.outposts import proxy

HOST = proxykit.APP_HOST
PROXIES = proxykit.REVERSE_PROXIES
TRAEFIK, NGINX, CADDY = proxykit.TRAEFIK, proxykit.NGINX, proxykit.CADDY


@pytest.fixture
async def upstream() -> AsyncIterator[int]:
    async with serving(proxykit.echo_app()) as port:
        yield port


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(PROXIES))
async def test_whole_login_through_a_real_reverse_proxy(
    core: Server, kind: str, upstream: int, tmp_path: Path
) -> None:
    port = free_port()
    outpost = outpost_for(core, forward_config(core, port))
    async with serving(proxy.create_app(outpost)) as outpost_port:
        server = PROXIES[kind](tmp_path, port, f"127.0.0.1:{outpost_port}", upstream)
        try:
            await server.ready()
            async with proxykit.browser() as browser:

                async def routed() -> bool:  # Traefik applies its file provider after listening
                    ping = f"http://{HOST}:{port}/outpost.goauthentik.io/ping"
                    async with browser.get(ping, allow_redirects=False) as r:
                        return r.status == 204

                await proxykit.until(routed, timeout=20)
                url = f"http://{HOST}:{port}/private/page?q=1"
                final, visited = await browse(browser, url, core.url)
                assert final.status == 200, (kind, visited, await final.text())
                assert any("/outpost.goauthentik.io/start?" in u for u in visited), visited
                assert any(u.startswith(core.url + "/if/flow/") for u in visited), visited
                assert visited[-1] == url
                echoed = _lower(json.loads(await final.text()))
                assert echoed["path"] == "/private/page?q=1"
                assert echoed["headers"]["x-authentik-username"] == "akadmin"
                assert echoed["headers"]["x-authentik-groups"] == "authentik Admins"
                assert echoed["headers"]["x-authentik-uid"]
                # once logged in, the next request goes straight through
                again, hops = await browse(browser, url, core.url)
                assert again.status == 200 and len(hops) == 1
                # a script without a session gets 401 (through nginx: its error_page decides)
                async with (
                    proxykit.browser() as stranger,
                    stranger.get(
                        url, headers={"X-Requested-With": "XMLHttpRequest"}, allow_redirects=False
                    ) as r,
                ):
                    assert r.status == (302 if kind == "nginx" else 401)
        finally:
            server.stop()
    await outpost.close()


def _lower(echoed: dict[str, Any]) -> dict[str, Any]:
    return {**echoed, "headers": {k.lower(): v for k, v in echoed["headers"].items()}}


def test_binaries_are_installed() -> None:
    for binary in (TRAEFIK, NGINX, CADDY):
        assert os.access(binary, os.X_OK), binary
