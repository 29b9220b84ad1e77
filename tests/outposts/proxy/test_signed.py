"""Callback and logout on any path of a protected host (authentik's `X-authentik-auth-callback`
and `X-authentik-logout` query signatures): how a query is read, where a callback is completed,
and whole logins that come back at the external host's own redirect URI and log out from a page
of the application, through Traefik, nginx and Caddy (forward auth, standalone and embedded
outpost) and in proxy mode."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import proxykit
import pytest
from aiohttp.test_utils import make_mocked_request
from helpers import Server, free_port
from proxykit import DOMAIN, admin, browse, cookie_header, outpost_for, serving

from tessera.outposts import proxy
from tessera.outposts.proxy import handlers, signed

HOST = proxykit.APP_HOST
PREFIX = proxy.PREFIX
SIGNATURE = "X-authentik-auth-callback"
HOST_APP = "app.example.com"


# Reading a query --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "which"),
    [
        ("X-authentik-auth-callback=true&code=c&state=s", signed.CALLBACK),
        ("code=c&X-authentik-auth-callback=TRUE", signed.CALLBACK),  # the value in any case
        ("X-authentik-logout=true", signed.LOGOUT),
        ("X-authentik-logout=true&X-authentik-auth-callback=true", signed.CALLBACK),
        ("x-authentik-auth-callback=true", None),  # the key as authentik writes it
        ("X-authentik-auth-callback=false", None),
        ("X-authentik-logout=1", None),
        ("X-authentik-logout", None),
        ("X-authentik-logout=true&" + "a=1&" * 100, None),  # more fields than any callback
        ("q=X-authentik-logout%3Dtrue", None),
        ("", None),
    ],
)
def test_a_query_is_read_as_authentik_reads_it(query: str, which: str | None) -> None:
    assert signed.signature(query) == which


def _provider(external: str = "http://app.example.com") -> Any:
    outpost = proxykit.outpost([proxykit.config(external_host=external)])
    return outpost.registry.providers[0]


def test_a_callback_at_the_external_host_is_completed_with_its_redirect_uri() -> None:
    provider = _provider()
    hop = signed.callback_hop(
        provider, "http://app.example.com/?X-authentik-auth-callback=true&code=c&state=s&iss=i"
    )
    parts = urllib.parse.urlsplit(hop)
    assert (
        f"{parts.scheme}://{parts.netloc}{parts.path}" == f"http://app.example.com{PREFIX}/callback"
    )
    assert urllib.parse.parse_qsl(parts.query) == [
        (SIGNATURE, "true"),
        ("code", "c"),
        ("state", "s"),
        ("iss", "i"),
        ("redirect_uri", "http://app.example.com?X-authentik-auth-callback=true"),
    ]


def test_a_callback_on_another_path_keeps_only_the_authorization_response() -> None:
    hop = signed.callback_hop(
        _provider(),
        "http://app.example.com/deep?X-authentik-auth-callback=true&code=c&state=s&next=//evil",
    )
    assert urllib.parse.parse_qsl(urllib.parse.urlsplit(hop).query) == [
        (SIGNATURE, "true"),
        ("code", "c"),
        ("state", "s"),
    ]


def test_attack_a_redirect_uri_not_the_providers_is_not_used_for_the_exchange() -> None:
    provider = _provider()
    for forged in ("https://evil.example.net/?X-authentik-auth-callback=true", "x" * 5000):
        query = urllib.parse.urlencode({"redirect_uri": forged})
        request = make_mocked_request("GET", f"{PREFIX}/callback?{query}")
        assert handlers._issued_for(request, provider) == provider.redirect_uri
    query = urllib.parse.urlencode({"redirect_uri": provider.root_redirect_uri})
    request = make_mocked_request("GET", f"{PREFIX}/callback?{query}")
    assert handlers._issued_for(request, provider) == provider.root_redirect_uri


# The outpost's answers, no core needed --------------------------------------------------------


@pytest.fixture
async def standalone() -> AsyncIterator[tuple[str, proxy.Outpost]]:
    outpost = proxykit.outpost(
        [
            proxykit.config(external_host="http://app.example.com", client_id="a"),
            proxykit.config(
                external_host="http://proxied.example.com",
                mode="proxy",
                internal_host="http://127.0.0.1:9",  # never reached: the signatures come first
                client_id="b",
            ),
        ]
    )
    async with serving(proxy.create_app(outpost)) as port:
        yield f"http://127.0.0.1:{port}", outpost
    await outpost.close()


async def _get(url: str, headers: dict[str, str]) -> tuple[int, str, Any]:
    async with (
        aiohttp.ClientSession() as client,
        client.get(url, headers=headers, allow_redirects=False) as r,
    ):
        return r.status, await r.text(), r.headers


CALLBACK_URI = "/page?X-authentik-auth-callback=true&code=c&state=s"
HOP = f"http://app.example.com{PREFIX}/callback?X-authentik-auth-callback=true&code=c&state=s"


async def test_every_check_and_start_completes_a_callback_on_any_path(
    standalone: tuple[str, proxy.Outpost],
) -> None:
    base, _outpost = standalone
    forwarded = {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.example.com"}
    for kind in ("traefik", "caddy"):
        status, _, headers = await _get(
            f"{base}{PREFIX}/auth/{kind}", {**forwarded, "X-Forwarded-Uri": CALLBACK_URI}
        )
        assert (status, headers["Location"]) == (302, HOP), kind
    status, _, headers = await _get(f"{base}{PREFIX}/auth/envoy{CALLBACK_URI}", forwarded)
    assert (status, headers["Location"]) == (302, HOP)
    # nginx's check can only say 401; its error_page sends the browser to start, unencoded
    status, _, _ = await _get(
        f"{base}{PREFIX}/auth/nginx",
        {"X-Original-URL": "http://app.example.com" + CALLBACK_URI},
    )
    assert status == 401
    status, _, headers = await _get(
        f"{base}{PREFIX}/start?rd=http://app.example.com{CALLBACK_URI}",
        {"Host": "app.example.com"},
    )
    assert (status, headers["Location"]) == (302, HOP)
    # the application's own page, straight to the outpost (no proxy in between)
    status, _, headers = await _get(base + CALLBACK_URI, {"Host": "app.example.com"})
    assert (status, headers["Location"]) == (302, HOP)
    # where the hop leads, a state this provider never signed is refused (the code unused)
    status, _, _ = await _get(base + HOP.removeprefix("http://app.example.com"), {"Host": HOST_APP})
    assert status == 400


async def test_every_check_and_start_signs_out_on_any_path(
    standalone: tuple[str, proxy.Outpost],
) -> None:
    base, outpost = standalone
    end_session = outpost.registry.providers[0].endpoints.end_session
    uri = "/any/page?X-authentik-logout=true"
    forwarded = {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "app.example.com"}
    answers = [
        await _get(f"{base}{PREFIX}/auth/traefik", {**forwarded, "X-Forwarded-Uri": uri}),
        await _get(f"{base}{PREFIX}/start?rd=http://app.example.com{uri}", {"Host": HOST_APP}),
        await _get(base + uri, {"Host": HOST_APP}),
    ]
    for status, _, headers in answers:
        assert status == 302 and headers["Location"].startswith(end_session + "?client_id=a")
        assert "Max-Age=0" in headers["Set-Cookie"]  # the session's cookie expired


async def test_proxy_mode_answers_the_signatures_before_the_upstream(
    standalone: tuple[str, proxy.Outpost],
) -> None:
    base, outpost = standalone
    host = {"Host": "proxied.example.com"}
    status, _, headers = await _get(base + "/x?X-authentik-logout=true", host)
    assert status == 302
    assert headers["Location"].startswith(outpost.registry.providers[1].endpoints.end_session)
    status, _, headers = await _get(base + "/?X-authentik-auth-callback=true&code=c", host)
    assert status == 302
    assert headers["Location"].startswith(f"http://proxied.example.com{PREFIX}/callback?")


@pytest.mark.parametrize(
    ("path", "host"),
    [
        ("/page?X-authentik-logout=true", "nobody.example.com"),  # names no provider
        ("/page?X-authentik-logout=false", HOST_APP),  # no signature: not the outpost's page
        ("/page?X-authentik-logout=true&" + "a=1&" * 200, HOST_APP),
    ],
)
async def test_attack_a_signature_the_outpost_cannot_use_is_a_clean_4xx(
    standalone: tuple[str, proxy.Outpost], path: str, host: str
) -> None:
    base, _outpost = standalone
    status, _, _ = await _get(base + path, {"Host": host})
    assert 400 <= status < 500
    status, _, _ = await _get(base + f"{PREFIX}/ping", {})
    assert status == 204


# Whole logins against a real core ---------------------------------------------------------


@pytest.fixture
async def upstream() -> AsyncIterator[int]:
    async with serving(proxykit.echo_app()) as port:
        yield port


def _served_config(core: Server, external: str, **fields: Any) -> dict[str, Any]:
    """A proxy provider made through the API (its OAuth2 client registers both callback URIs),
    its config as its outpost reads it."""
    _outpost, token = proxykit.make_proxy_outpost(core, external, **fields)
    status, page = core.request("GET", "/api/v3/outposts/proxy/", token)
    assert status == 200 and len(page["results"]) == 1, page
    return dict(page["results"][0])


def _at_external_host(external: str) -> Callable[[str], str]:
    """The browser's authorization request, asking the core to come back to the external host's
    own redirect URI (`<external_host>?X-authentik-auth-callback=true`, registered as authentik
    registers it) instead of the outpost's callback path."""

    def rewrite(url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        if parts.path != "/application/o/authorize/":
            return url
        query = [
            (k, f"{external}?{SIGNATURE}=true" if k == "redirect_uri" else v)
            for k, v in urllib.parse.parse_qsl(parts.query)
        ]
        return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))

    return rewrite


async def _login_then_logout_on_any_path(
    core: Server, browser: aiohttp.ClientSession, external: str, core_url: str
) -> None:
    page = f"{external}/deep/page?a=1&b=2"
    final, visited = await browse(browser, page, core_url, rewrite=_at_external_host(external))
    assert final.status == 200, (visited, await final.text())
    came_back = [u for u in visited if u.startswith(external) and f"{SIGNATURE}=true&code=" in u]
    assert came_back and PREFIX not in came_back[0], visited  # at the external host's own URI
    assert any(f"{PREFIX}/callback?" in u and "redirect_uri=" in u for u in visited), visited
    assert visited[-1] == page  # back at the original URL, its whole query kept
    echoed = json.loads(await final.text())
    assert echoed["path"] == "/deep/page?a=1&b=2"
    headers = {k.lower(): v for k, v in echoed["headers"].items()}
    assert headers["x-authentik-username"] == "akadmin"

    # logout from a page of the application
    final, visited = await browse(
        browser, f"{external}/elsewhere?X-authentik-logout=true", core_url
    )
    assert any("/end-session/" in u for u in visited), visited
    assert cookie_header(browser) == ""  # the outpost's session cookie is gone
    # the core session ended too: the next visit asks for the password again
    final, visited = await browse(browser, page, core_url)
    assert final.status == 200
    assert any("/if/flow/default-authentication-flow/" in u for u in visited), visited


async def _routed(browser: aiohttp.ClientSession, url: str) -> None:
    async def answers() -> bool:  # Traefik applies its file provider after listening
        async with browser.get(url, allow_redirects=False) as r:
            return r.status == 302

    await proxykit.until(answers, timeout=20)


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(proxykit.REVERSE_PROXIES))
async def test_callback_and_logout_on_any_path_through_a_real_proxy(
    core: Server, kind: str, upstream: int, tmp_path: Path
) -> None:
    port = free_port()
    external = f"http://{HOST}:{port}"
    outpost = outpost_for(core, _served_config(core, external))
    async with serving(proxy.create_app(outpost)) as outpost_port:
        server = proxykit.REVERSE_PROXIES[kind](
            tmp_path, port, f"127.0.0.1:{outpost_port}", upstream
        )
        try:
            await server.ready()
            async with proxykit.browser() as browser:
                await _routed(browser, external + "/")
                await _login_then_logout_on_any_path(core, browser, external, core.url)
        finally:
            server.stop()
    await outpost.close()


@pytest.mark.slow
async def test_callback_and_logout_on_any_path_in_proxy_mode(core: Server, upstream: int) -> None:
    port = free_port()
    external = f"http://proxied.{DOMAIN}:{port}"
    config = _served_config(
        core, external, mode="proxy", internal_host=f"http://127.0.0.1:{upstream}"
    )
    outpost = outpost_for(core, config)
    async with serving(proxy.create_app(outpost), port), proxykit.browser() as browser:
        await _login_then_logout_on_any_path(core, browser, external, core.url)
    await outpost.close()


@pytest.mark.slow
async def test_callback_and_logout_on_any_path_through_traefik_to_the_embedded_outpost(
    core: Server, upstream: int, tmp_path: Path
) -> None:
    port = free_port()
    external = f"http://{HOST}:{port}"
    provider = proxykit.make_proxy_provider(core, external)
    embedded = _embedded(core)
    providers = [*embedded["providers"], provider["pk"]]
    admin(core, "PATCH", f"outposts/instances/{embedded['pk']}/", {"providers": providers})
    server = proxykit.traefik(tmp_path, port, f"127.0.0.1:{core.port}", upstream)
    try:
        await server.ready()
        async with proxykit.browser() as browser:
            await _routed(browser, external + "/")
            await _login_then_logout_on_any_path(core, browser, external, core.url)
    finally:
        server.stop()


def _embedded(core: Server) -> dict[str, Any]:
    query = urllib.parse.urlencode({"managed__iexact": "goauthentik.io/outposts/embedded"})
    [found] = admin(core, "GET", f"outposts/instances/?{query}")["results"]
    return dict(found)
