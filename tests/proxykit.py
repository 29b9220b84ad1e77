"""Harness for the proxy outpost tests: provider configs, a browser with a cookie jar that
resolves the test host names to loopback, an upstream that echoes what it receives, and a login
driven through a real core's flow executor."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import abc, web
from helpers import BOOTSTRAP_PASSWORD, BOOTSTRAP_TOKEN, TESSERA, Server, base_env, free_port

from tessera.core.wire import outposts as wire
from tessera.outposts import proxy
from tessera.outposts.proxy import identity

DOMAIN = "tessera.test"
COOKIE_SECRET = "A" * 16 + "B" * 16


def oidc_configuration(core: str, slug: str) -> dict[str, Any]:
    base = f"{core}/application/o"
    return {
        "issuer": f"{base}/{slug}/",
        "authorization_endpoint": f"{base}/authorize/",
        "token_endpoint": f"{base}/token/",
        "userinfo_endpoint": f"{base}/userinfo/",
        "end_session_endpoint": f"{base}/{slug}/end-session/",
        "introspection_endpoint": f"{base}/introspect/",
        "jwks_uri": f"{base}/{slug}/jwks/",
        "response_types_supported": ["code"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "subject_types_supported": ["public"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
    }


def config(
    *,
    external_host: str,
    mode: str = "forward_single",
    core: str = "http://127.0.0.1:9",
    slug: str = "app",
    client_id: str = "client-id",
    client_secret: str = "client-secret",
    **overrides: Any,
) -> wire.ProxyOutpostConfig:
    body: dict[str, Any] = {
        "pk": 1,
        "name": f"{slug} provider",
        "internal_host": "",
        "external_host": external_host,
        "internal_host_ssl_validation": True,
        "client_id": client_id,
        "client_secret": client_secret,
        "oidc_configuration": oidc_configuration(core, slug),
        "cookie_secret": COOKIE_SECRET,
        "certificate": None,
        "skip_path_regex": "",
        "basic_auth_enabled": False,
        "basic_auth_password_attribute": "",
        "basic_auth_user_attribute": "",
        "mode": mode,
        "cookie_domain": "",
        "access_token_validity": 3600,
        "intercept_header_auth": True,
        "scopes_to_request": ["openid", "profile", "email", "ak_proxy"],
        "assigned_application_slug": slug,
        "assigned_application_name": slug,
        **overrides,
    }
    return wire.ProxyOutpostConfig.model_validate(body)


def outpost(configs: list[wire.ProxyOutpostConfig], core: str = "http://127.0.0.1:9") -> Any:
    options = proxy.Options(outpost_name="test outpost", version="2026.8.5", core_host=core)
    instance = proxy.Outpost(options)
    assert instance.update(configs) == []
    return instance


class LoopbackResolver(abc.AbstractResolver):
    """Every name under DOMAIN (and localhost) is 127.0.0.1, as a browser's hosts file would say."""

    async def resolve(
        self, host: str, port: int = 0, family: int = socket.AF_INET
    ) -> list[dict[str, Any]]:
        if host.endswith("." + DOMAIN) or host in (DOMAIN, "localhost", "127.0.0.1"):
            address = "127.0.0.1"
        else:
            raise OSError(f"unknown host {host}")
        return [
            {
                "hostname": host,
                "host": address,
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST,
            }
        ]

    async def close(self) -> None:
        pass


def browser() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(resolver=LoopbackResolver(), force_close=True),
        cookie_jar=aiohttp.CookieJar(unsafe=True),
        headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
    )


@asynccontextmanager
async def serving(app: web.Application, port: int | None = None) -> AsyncIterator[int]:
    """Serve `app` on 127.0.0.1 at a free port (or `port`) for the block; an outpost's
    application as `tessera outpost proxy` serves it (with its hot path)."""
    port = port or free_port()
    runner = web.AppRunner(app, access_log=None, **proxy.app.SERVER_LIMITS)
    await runner.setup()
    if proxy.handlers.OUTPOST in app:
        proxy.app.hot_path(runner)
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


def echo_app() -> web.Application:
    """The upstream: answers every request with what it received (headers, path, body); a
    websocket at /ws echoes each message."""

    async def echo(request: web.Request) -> web.StreamResponse:
        if request.path == "/ws":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for message in ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await ws.send_str("echo:" + message.data)
            return ws
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "path": request.path_qs,
                "headers": {k: v for k, v in request.headers.items()},
                "header_names": list(request.headers.keys()),
                "body_length": len(body),
            }
        )

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


# A login through the core ---------------------------------------------------------------------


def _csrf(session: aiohttp.ClientSession) -> dict[str, str]:
    found = [c.value for c in session.cookie_jar if c.key == "authentik_csrf"]
    return {"X-authentik-CSRF": found[0]} if found else {}


async def _flow(
    session: aiohttp.ClientSession, core: str, url: str, username: str, password: str
) -> str:
    """Answer the core's login flow at `url` (a /if/flow/<slug>/ page); where it sends us."""
    async with session.get(url) as page:
        assert page.status == 200, await page.text()
    slug = urllib.parse.urlsplit(url).path.split("/")[3]
    executor = f"{core}/api/v3/flows/executor/{slug}/"
    for _ in range(6):
        async with session.get(executor, headers=_csrf(session)) as r:
            body = await r.json()
        component = body.get("component")
        if component == "xak-flow-redirect":
            return urllib.parse.urljoin(core, body["to"])
        answer: dict[str, Any]
        if component == "ak-stage-identification":
            answer = {"uid_field": username}
            if body.get("password_fields"):
                answer["password"] = password
        elif component == "ak-stage-password":
            answer = {"password": password}
        elif component == "ak-stage-consent":
            answer = {"token": body["token"]}
        else:
            raise AssertionError(f"unexpected challenge {json.dumps(body)[:500]}")
        async with session.post(executor, json=answer, headers=_csrf(session)) as r:
            body = await r.json()
        if body.get("component") == "xak-flow-redirect":
            return urllib.parse.urljoin(core, body["to"])
        assert not body.get("response_errors"), body
    raise AssertionError("the flow did not finish")


async def browse(
    session: aiohttp.ClientSession,
    url: str,
    core: str,
    username: str = "akadmin",
    password: str = BOOTSTRAP_PASSWORD,
    hops: int = 15,
    rewrite: Callable[[str], str] | None = None,
    **kwargs: Any,
) -> tuple[aiohttp.ClientResponse, list[str]]:
    """GET `url` as a browser would, logging in at the core when sent there; the final
    response (body read) and every URL visited (`rewrite` may change each before it is
    visited)."""
    visited = [url]
    for _ in range(hops):
        if rewrite is not None:
            url = visited[-1] = rewrite(url)
        response = await session.get(url, allow_redirects=False, **kwargs)
        await response.read()
        if response.status in (301, 302, 303, 307):
            url = urllib.parse.urljoin(url, response.headers["Location"])
        elif urllib.parse.urlsplit(url).path.startswith("/if/flow/") and url.startswith(core):
            url = await _flow(session, core, url, username, password)
        else:
            return response, visited
        visited.append(url)
    raise AssertionError(f"too many hops: {visited}")


async def until(predicate: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


# Applications at the core -------------------------------------------------------------------


def admin(core: Server, method: str, path: str, body: Any = None) -> Any:
    status, answer = core.request(method, "/api/v3/" + path, BOOTSTRAP_TOKEN, body)
    assert status in (200, 201, 204), (method, path, status, answer)
    return answer


def make_client(core: Server, external: str, **fields: Any) -> tuple[str, dict[str, Any]]:
    """An application with a confidential OAuth2 client redirecting to the outpost's callback;
    its slug and the ProxyOutpostConfig fields that come from it."""
    slug = "app-" + uuid.uuid4().hex[:8]
    flows = {
        name: admin(core, "GET", f"flows/instances/{name}/")["pk"]
        for name in ("default-provider-authorization-implicit-consent", "default-invalidation-flow")
    }
    mappings = admin(core, "GET", "propertymappings/provider/scope/?page_size=100")["results"]
    key = admin(
        core,
        "POST",
        "crypto/certificatekeypairs/generate/",
        {"common_name": slug, "alg": "rsa", "validity_days": 30},
    )["pk"]
    callback = f"{external}/outpost.goauthentik.io/callback?X-authentik-auth-callback=true"
    provider = admin(
        core,
        "POST",
        "providers/oauth2/",
        {
            "name": f"{slug} provider",
            "authorization_flow": flows["default-provider-authorization-implicit-consent"],
            "invalidation_flow": flows["default-invalidation-flow"],
            "client_type": "confidential",
            "redirect_uris": [{"matching_mode": "strict", "url": callback}],
            "signing_key": key,
            "property_mappings": [m["pk"] for m in mappings],
            **fields,
        },
    )
    admin(
        core, "POST", "core/applications/", {"name": slug, "slug": slug, "provider": provider["pk"]}
    )
    return slug, {
        "client_id": provider["client_id"],
        "client_secret": provider["client_secret"],
        "scopes_to_request": ["openid", *{m["scope_name"] for m in mappings}],
    }


def outpost_for(core: Server, *configs: Any, **options: Any) -> proxy.Outpost:
    instance = proxy.Outpost(
        proxy.Options(
            outpost_name="test outpost", version="2026.8.5", core_host=core.url, **options
        )
    )
    assert instance.update(list(configs)) == []
    return instance


def forward_config(core: Server, port: int, **overrides: Any) -> Any:
    external = f"http://app.{DOMAIN}:{port}"
    slug, client = make_client(core, external)
    return config(external_host=external, core=core.url, slug=slug, **client, **overrides)


def check_headers(port: int, original: str, **extra: str) -> dict[str, str]:
    parts = urllib.parse.urlsplit(original)
    return {
        "X-Forwarded-Proto": parts.scheme,
        "X-Forwarded-Host": parts.netloc,
        "X-Forwarded-Uri": parts.path + ("?" + parts.query if parts.query else ""),
        **extra,
    }


def cookie_header(jar: aiohttp.ClientSession) -> str:
    """The outpost's session cookies in the jar, as a Cookie header."""
    return "; ".join(
        f"{c.key}={c.value}"
        for c in jar.cookie_jar
        if c.key.startswith("authentik_proxy_") and not c.key.endswith("_bind")
    )


class Process:
    """A reverse proxy (or any server) as a child process, ready once its port accepts."""

    def __init__(self, argv: list[str], cwd: Any, port: int, env: dict[str, str] | None = None):
        self.port = port
        self.log = cwd / f"{Path(argv[0]).name}-{port}-{uuid.uuid4().hex[:6]}.log"
        self._handle = self.log.open("w")
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=self._handle, stderr=subprocess.STDOUT
        )

    async def ready(self, timeout: float = 20.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                assert asyncio.get_running_loop().time() < deadline, self.log.read_text()
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._handle.close()


# `tessera outpost proxy` processes ---------------------------------------------------------


class OutpostProcess:
    """One `tessera outpost proxy` replica."""

    def __init__(self, core: Server, token: str, work: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.metrics_port = free_port()
        self.https_port = free_port()
        env = base_env(
            AUTHENTIK_LISTEN__HTTPS=f"127.0.0.1:{self.https_port}",
            AUTHENTIK_HOST=core.url,
            AUTHENTIK_TOKEN=token,
            AUTHENTIK_LISTEN__HTTP=f"127.0.0.1:{self.port}",
            AUTHENTIK_LISTEN__METRICS=f"127.0.0.1:{self.metrics_port}",
            AUTHENTIK_STATE_DIR=str(work / "state"),
        )
        self.process = Process([TESSERA, "outpost", "proxy"], work, self.port, env=env)

    @property
    def check(self) -> str:
        return f"http://127.0.0.1:{self.port}/outpost.goauthentik.io/auth/traefik"

    async def ready(self) -> None:
        await self.process.ready(30)

    def stop(self) -> None:
        self.process.stop()


def make_proxy_provider(core: Server, external: str, **fields: Any) -> dict[str, Any]:
    """A proxy provider (forward_single unless `fields` say otherwise) and its application,
    both named by the provider's `name`."""
    name = "proxied-" + uuid.uuid4().hex[:8]
    flows = {
        slug: admin(core, "GET", f"flows/instances/{slug}/")["pk"]
        for slug in ("default-provider-authorization-implicit-consent", "default-invalidation-flow")
    }
    body = {
        "name": name,
        "authorization_flow": flows["default-provider-authorization-implicit-consent"],
        "invalidation_flow": flows["default-invalidation-flow"],
        "external_host": external,
        "mode": "forward_single",
        **fields,
    }
    provider: dict[str, Any] = admin(core, "POST", "providers/proxy/", body)
    app = {"name": name, "slug": name, "provider": provider["pk"]}
    admin(core, "POST", "core/applications/", app)
    return provider


def make_proxy_outpost(core: Server, external: str, **fields: Any) -> tuple[dict[str, Any], str]:
    """A proxy provider, its application and an outpost serving it (all named alike); the
    outpost and its API token."""
    provider = make_proxy_provider(core, external, **fields)
    outpost = admin(
        core,
        "POST",
        "outposts/instances/",
        {"name": provider["name"], "type": "proxy", "providers": [provider["pk"]], "config": {}},
    )
    key = admin(core, "GET", f"core/tokens/{outpost['token_identifier']}/view_key/")["key"]
    return outpost, str(key)


async def status_of(
    client: aiohttp.ClientSession, outpost: OutpostProcess, headers: dict[str, str]
) -> int:
    async with client.get(outpost.check, headers=headers, allow_redirects=False) as r:
        return r.status


# Real reverse proxies in front of a forward-auth server --------------------------------------

TRAEFIK = str(Path(sys.executable).parent / "traefik")
NGINX = "/usr/sbin/nginx"
CADDY = shutil.which("caddy") or "/usr/bin/caddy"
APP_HOST = f"app.{DOMAIN}"
# authentik's compose labels, exactly; `{target}` is where the forward-auth checks go (the
# standalone outpost, or the core with its embedded outpost: `authentik:9000` in the guides).
COMPOSE_LABELS = """
traefik.http.middlewares.authentik.forwardAuth.address=http://{target}/outpost.goauthentik.io/auth/traefik
traefik.http.middlewares.authentik.forwardAuth.trustForwardHeader=true
traefik.http.middlewares.authentik.forwardAuth.authResponseHeaders=X-authentik-username,X-authentik-groups,X-authentik-email,X-authentik-name,X-authentik-uid
"""

_TRAEFIK_ROUTES = """
http:
  middlewares:
    authentik:
      forwardAuth:
        address: "{address}"
        trustForwardHeader: {trust}
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
        servers: [{{url: "http://{target}"}}]
"""

_NGINX_CONF = """
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
            proxy_pass http://{target};
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

_CADDYFILE = """
{{
    admin off
    auto_https off
}}
http://{host}:{port} {{
    bind 127.0.0.1
    route {{
        reverse_proxy /outpost.goauthentik.io/* {target}
        forward_auth {target} {{
            uri /outpost.goauthentik.io/auth/caddy
            copy_headers {copy}
            trusted_proxies private_ranges
        }}
        reverse_proxy 127.0.0.1:{upstream}
    }}
}}
"""


def compose_labels(target: str) -> dict[str, str]:
    """The compose labels for `target`, as the forwardAuth middleware's keys and values."""
    out = {}
    for line in COMPOSE_LABELS.format(target=target).strip().splitlines():
        key, _sep, value = line.partition("=")
        out[key.rsplit(".", 1)[1]] = value
    return out


def traefik(work: Path, port: int, target: str, upstream: int) -> Process:
    """Traefik v3 on `port` (file provider): the app's host behind the compose labels' middleware,
    and `/outpost.goauthentik.io/` on that host routed to `target`, as authentik's guide does."""
    labels = compose_labels(target)
    dynamic = work / "dynamic.yml"
    dynamic.write_text(
        _TRAEFIK_ROUTES.format(
            address=labels["address"],
            trust=labels["trustForwardHeader"],
            headers=", ".join(labels["authResponseHeaders"].split(",")),
            host=APP_HOST,
            upstream=upstream,
            target=target,
        )
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


def nginx(work: Path, port: int, target: str, upstream: int) -> Process:
    """nginx on `port`: `auth_request` to `auth/nginx` at `target`, `error_page 401` to start."""
    (work / "tmp").mkdir(exist_ok=True)
    conf = work / "nginx.conf"
    conf.write_text(
        _NGINX_CONF.format(work=work, port=port, host=APP_HOST, target=target, upstream=upstream)
    )
    argv = [NGINX, "-e", str(work / "nginx-error.log"), "-p", str(work), "-c", str(conf)]
    return Process(argv, work, port, env=base_env())


def caddy(work: Path, port: int, target: str, upstream: int) -> Process:
    """Caddy on `port`: `forward_auth` to `auth/caddy` at `target`, copying every identity
    header (in Caddy's capitalisation)."""
    conf = work / "Caddyfile"
    copy = " ".join(name.title() for name in identity.NAMES)
    conf.write_text(
        _CADDYFILE.format(host=APP_HOST, port=port, target=target, upstream=upstream, copy=copy)
    )
    env = base_env(
        HOME=str(work), XDG_DATA_HOME=str(work / "data"), XDG_CONFIG_HOME=str(work / "config")
    )
    argv = [CADDY, "run", "--config", str(conf), "--adapter", "caddyfile"]
    return Process(argv, work, port, env=env)


REVERSE_PROXIES = {"traefik": traefik, "nginx": nginx, "caddy": caddy}
