"""The real reverse proxies in front of an upstream that echoes the identity headers it receives:
Traefik v3 with forwardAuth exactly as authentik's compose labels, nginx with auth_request and
`error_page 401`, Caddy with forward_auth and copy_headers. A whole login through each, with a
cookie jar: the application's URL, the core's login flow, and back with `X-authentik-username`."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import proxykit
import pytest
from helpers import Server, base_env, free_port
from proxykit import DOMAIN, Process, browse, forward_config, outpost_for, serving

from tessera.outposts import proxy
from tessera.outposts.proxy import identity

TRAEFIK = str(Path(sys.executable).parent / "traefik")
NGINX = "/usr/sbin/nginx"
CADDY = shutil.which("caddy") or "/usr/bin/caddy"
HOST = f"app.{DOMAIN}"
# authentik's compose labels, exactly
LABEL_HEADERS = (
    "X-authentik-username,X-authentik-groups,X-authentik-email,X-authentik-name,X-authentik-uid"
)

TRAEFIK_DYNAMIC = """
http:
  middlewares:
    authentik:
      forwardAuth:
        address: "http://127.0.0.1:{outpost}/outpost.goauthentik.io/auth/traefik"
        trustForwardHeader: true
        authResponseHeaders: [{headers}]
  routers:
    app:
      rule: "Host(`{host}`)"
      entryPoints: [web]
      middlewares: [authentik]
      service: app
    outpost:
      rule: "Host(`{host}`) && PathPrefix(`/outpost.goauthentik.io/`)"
      entryPoints: [web]
      priority: 1000
      service: outpost
  services:
    app:
      loadBalancer:
        servers: [{{url: "http://127.0.0.1:{upstream}"}}]
    outpost:
      loadBalancer:
        servers: [{{url: "http://127.0.0.1:{outpost}"}}]
"""

NGINX_CONF = """
daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {work}/tmp; proxy_temp_path {work}/tmp;
    fastcgi_temp_path {work}/tmp; uwsgi_temp_path {work}/tmp; scgi_temp_path {work}/tmp;
    proxy_buffers 8 16k;
    proxy_buffer_size 32k;
    server {{
        listen 127.0.0.1:{port};
        server_name {host};
        location /outpost.goauthentik.io {{
            proxy_pass http://127.0.0.1:{outpost};
            proxy_set_header Host $http_host;
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            add_header Set-Cookie $auth_cookie;
            auth_request_set $auth_cookie $upstream_http_set_cookie;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
        }}
        location @goauthentik_proxy_signin {{
            internal;
            add_header Set-Cookie $auth_cookie;
            return 302 /outpost.goauthentik.io/start?rd=$scheme://$http_host$request_uri;
        }}
        location / {{
            auth_request /outpost.goauthentik.io/auth/nginx;
            error_page 401 = @goauthentik_proxy_signin;
            auth_request_set $auth_cookie $upstream_http_set_cookie;
            add_header Set-Cookie $auth_cookie;
            auth_request_set $authentik_username $upstream_http_x_authentik_username;
            auth_request_set $authentik_groups $upstream_http_x_authentik_groups;
            auth_request_set $authentik_email $upstream_http_x_authentik_email;
            auth_request_set $authentik_uid $upstream_http_x_authentik_uid;
            proxy_set_header X-authentik-username $authentik_username;
            proxy_set_header X-authentik-groups $authentik_groups;
            proxy_set_header X-authentik-email $authentik_email;
            proxy_set_header X-authentik-uid $authentik_uid;
            proxy_pass http://127.0.0.1:{upstream};
        }}
    }}
}}
"""

CADDYFILE = """
{{
    admin off
    auto_https off
}}
http://{host}:{port} {{
    bind 127.0.0.1
    route {{
        reverse_proxy /outpost.goauthentik.io/* 127.0.0.1:{outpost}
        forward_auth 127.0.0.1:{outpost} {{
            uri /outpost.goauthentik.io/auth/caddy
            copy_headers {copy}
            trusted_proxies private_ranges
        }}
        reverse_proxy 127.0.0.1:{upstream}
    }}
}}
"""


def _traefik(work: Path, port: int, outpost: int, upstream: int) -> Process:
    dynamic = work / "dynamic.yml"
    headers = ", ".join(LABEL_HEADERS.split(","))
    dynamic.write_text(
        TRAEFIK_DYNAMIC.format(outpost=outpost, upstream=upstream, host=HOST, headers=headers)
    )
    argv = [
        TRAEFIK,
        f"--entryPoints.web.address=127.0.0.1:{port}",
        f"--providers.file.filename={dynamic}",
        "--log.level=ERROR",
        "--global.checkNewVersion=false",
        "--global.sendAnonymousUsage=false",
    ]
    return Process(argv, work, port, env=base_env(HOME=str(work)))


def _nginx(work: Path, port: int, outpost: int, upstream: int) -> Process:
    (work / "tmp").mkdir(exist_ok=True)
    conf = work / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(work=work, port=port, host=HOST, outpost=outpost, upstream=upstream)
    )
    argv = [NGINX, "-e", str(work / "nginx-error.log"), "-p", str(work), "-c", str(conf)]
    return Process(argv, work, port, env=base_env())


def _caddy(work: Path, port: int, outpost: int, upstream: int) -> Process:
    conf = work / "Caddyfile"
    copy = " ".join(name.title() for name in identity.NAMES)  # Caddy's exact capitalisation
    conf.write_text(
        CADDYFILE.format(host=HOST, port=port, outpost=outpost, upstream=upstream, copy=copy)
    )
    env = base_env(
        HOME=str(work), XDG_DATA_HOME=str(work / "data"), XDG_CONFIG_HOME=str(work / "config")
    )
    argv = [CADDY, "run", "--config", str(conf), "--adapter", "caddyfile"]
    return Process(argv, work, port, env=env)


PROXIES = {"traefik": _traefik, "nginx": _nginx, "caddy": _caddy}


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
        server = PROXIES[kind](tmp_path, port, outpost_port, upstream)
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
