"""The outpost inside another aiohttp application, as the core's embedded outpost serves it: its
endpoints mounted under /outpost.goauthentik.io/ and proxy mode as a middleware in front of the
host application's own routes."""

from __future__ import annotations

import urllib.parse

import aiohttp
import proxykit
from aiohttp import web
from proxykit import serving

from tessera.outposts import proxy


async def _home(request: web.Request) -> web.Response:
    return web.Response(text="the core")


async def test_mounted_endpoints_and_proxy_middleware() -> None:
    outpost = proxykit.outpost(
        [
            proxykit.config(external_host="http://app.example.com", client_id="a"),
            proxykit.config(
                external_host="http://proxied.example.com",
                mode="proxy",
                internal_host="http://127.0.0.1:9",
                client_id="b",
            ),
        ]
    )
    host = web.Application(middlewares=[proxy.proxy_middleware(outpost)])
    host.router.add_get("/", _home)
    host.add_subapp(proxy.PREFIX, proxy.endpoints(outpost))
    async with serving(host) as port, aiohttp.ClientSession() as client:
        base = f"http://127.0.0.1:{port}"
        async with client.get(base + "/outpost.goauthentik.io/ping") as r:
            assert r.status == 204
        check = {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.example.com"}
        async with client.get(
            base + "/outpost.goauthentik.io/auth/envoy/deep/path?x=1",
            headers={"Host": "app.example.com"},
            allow_redirects=False,
        ) as r:
            assert r.status == 302
            rd = urllib.parse.parse_qs(urllib.parse.urlsplit(r.headers["Location"]).query)["rd"]
            assert rd == ["http://app.example.com/deep/path?x=1"]
        async with client.get(
            base + "/outpost.goauthentik.io/auth/traefik",
            headers={**check, "X-Forwarded-Uri": "/"},
            allow_redirects=False,
        ) as r:
            assert r.status == 302
        async with client.get(base + "/", headers={"Host": "core.example.com"}) as r:
            assert await r.text() == "the core"  # not a proxied host: the core's own route
        async with client.get(
            base + "/", headers={"Host": "proxied.example.com"}, allow_redirects=False
        ) as r:
            assert r.status == 302  # a proxy-mode host: the outpost's, login first
            assert r.headers["Location"].startswith(
                "http://proxied.example.com/outpost.goauthentik.io/start?"
            )
    await outpost.close()
