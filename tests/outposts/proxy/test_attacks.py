"""Hostile input at the proxy outpost: every answer a clear 4xx (503 while the core is away),
never a 500, never a crash. No core is needed: these are refused before the outpost asks it
(its core URL points at a closed port)."""

from __future__ import annotations

import base64
import json
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import proxykit
import pytest
from helpers import free_port
from proxykit import serving

from tessera.outposts import proxy
from tessera.outposts.proxy import sealing
from tessera.outposts.proxy.providers import Provider

APP = "app.example.com"
AUTH = "/outpost.goauthentik.io/auth/"


def _fwd(uri: str = "/x", host: str = APP, **extra: str) -> dict[str, str]:
    return {"X-Forwarded-Proto": "http", "X-Forwarded-Host": host, "X-Forwarded-Uri": uri, **extra}


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, proxy.Outpost]]:
    configs = [
        proxykit.config(external_host=f"http://{APP}", client_id="single"),
        proxykit.config(
            external_host="http://proxied.example.com",
            mode="proxy",
            internal_host=f"http://127.0.0.1:{free_port()}",  # nothing listens there
            client_id="proxied",
        ),
    ]
    outpost = proxykit.outpost(configs)
    async with serving(proxy.create_app(outpost)) as port:
        yield f"http://127.0.0.1:{port}", outpost
    await outpost.close()


async def _get(url: str, **kwargs: Any) -> tuple[int, str, Any]:
    async with (
        aiohttp.ClientSession() as client,
        client.get(url, allow_redirects=False, **kwargs) as r,
    ):
        return r.status, await r.text(), r.headers


async def test_attack_host_naming_no_provider_is_400(served: Any) -> None:
    base, _ = served
    status, body, _ = await _get(base + AUTH + "traefik", headers=_fwd(host="nowhere.org"))
    assert status == 400
    assert json.loads(body) == {
        "Message": "no app for hostname",
        "Detail": "No provider serves nowhere.org.",
        "Host": "nowhere.org",
    }
    status, _, _ = await _get(base + "/outpost.goauthentik.io/start", headers={"Host": "x.org"})
    assert status == 400
    status, _, _ = await _get(base + "/anything", headers={"Host": "nowhere.org"})
    assert status == 404


@pytest.mark.parametrize(
    "headers",
    [
        _fwd(host="evil.com/path"),
        _fwd(host=""),
        _fwd(uri="not-a-path"),
        _fwd(uri="//evil.com/x"),
        _fwd(uri="/" + "a" * 9000),
        {**_fwd(), "X-Forwarded-Proto": "file"},
        {"X-Forwarded-Proto": "http", "X-Forwarded-Uri": "/x", "Host": ""},
    ],
)
async def test_attack_bad_forwarded_headers_are_400(served: Any, headers: dict[str, str]) -> None:
    base, _ = served
    status, body, _ = await _get(base + AUTH + "traefik", headers=headers)
    assert status == 400, body
    assert json.loads(body)["Message"] in ("Bad forwarded request", "no app for hostname")


async def test_attack_forwarded_headers_from_an_untrusted_peer_are_ignored() -> None:
    options = proxy.Options(
        outpost_name="o", version="v", core_host="http://127.0.0.1:9", trusted_proxies=()
    )
    outpost = proxy.Outpost(options)
    outpost.update([proxykit.config(external_host=f"http://{APP}")])
    async with serving(proxy.create_app(outpost)) as port:
        status, body, _ = await _get(f"http://127.0.0.1:{port}{AUTH}traefik", headers=_fwd())
        assert status == 400 and "trusted proxy" in body
        # start believes Host, not X-Forwarded-Host, from an untrusted peer
        status, body, _ = await _get(
            f"http://127.0.0.1:{port}/outpost.goauthentik.io/start",
            headers={"X-Forwarded-Host": APP, "Host": "127.0.0.1"},
        )
        assert status == 400 and "no app for hostname" in body
    await outpost.close()


@pytest.mark.parametrize(
    "cookie",
    [
        "garbage",
        "A" * 4000,
        "3.abc",
        "2.abc",  # claims a second chunk that is not there
        "AQ" + "A" * 100,
        "%00%ff",
        '"quoted"',
    ],
)
async def test_attack_malformed_session_cookies_are_no_session(served: Any, cookie: str) -> None:
    base, outpost = served
    name = outpost.registry.lookup(APP).cookie_name
    status, _, headers = await _get(
        base + AUTH + "traefik", headers={**_fwd(), "Cookie": f"{name}={cookie}"}
    )
    assert status == 302
    assert headers["Location"].startswith(f"http://{APP}/outpost.goauthentik.io/start?rd=")


async def test_attack_a_cookie_sealed_for_another_provider_does_not_open(served: Any) -> None:
    base, outpost = served
    target = outpost.registry.lookup(APP)
    other = Provider.build(proxykit.config(external_host="http://b.example.com", client_id="b"))
    token = "e30." + base64.urlsafe_b64encode(b'{"sub":"x","exp":9999999999}').decode() + ".sig"
    sealed = sealing.seal(other.session_key, target.cookie_name, {"t": token})
    status, _, _ = await _get(
        base + AUTH + "traefik", headers={**_fwd(), "Cookie": f"{target.cookie_name}={sealed}"}
    )
    assert status == 302


async def test_attack_oversized_cookie_header_is_refused_cleanly(served: Any) -> None:
    base, _ = served
    status, _, _ = await _get(
        base + AUTH + "traefik", headers={**_fwd(), "Cookie": "a=" + "b" * 40000}
    )
    assert status in (400, 431)
    status, _, _ = await _get(base + "/outpost.goauthentik.io/ping")
    assert status == 204  # still serving


@pytest.mark.parametrize(
    "rd",
    [
        "https://evil.com/",
        "//evil.com",
        "/\\evil.com",
        "http://app.example.com@evil.com/",
        "javascript:alert(1)",
        "http://app.example.com:notaport/",
        "http://app.example.com/\x00",
        "x" * 10000,
    ],
)
async def test_attack_bad_rd_is_400(served: Any, rd: str) -> None:
    base, _ = served
    url = base + "/outpost.goauthentik.io/start?" + urllib.parse.urlencode({"rd": rd})
    status, body, headers = await _get(url, headers={"Host": APP})
    assert status == 400, body
    assert "Location" not in headers


async def test_start_binds_a_signed_state_to_the_browser(served: Any) -> None:
    base, outpost = served
    rd = f"http://{APP}/deep/link?q=1"
    url = base + "/outpost.goauthentik.io/start?" + urllib.parse.urlencode({"rd": rd})
    status, _, headers = await _get(url, headers={"Host": APP})
    assert status == 302
    location = urllib.parse.urlsplit(headers["Location"])
    query = dict(urllib.parse.parse_qsl(location.query))
    provider = outpost.registry.lookup(APP)
    assert location.path == "/application/o/authorize/"
    assert query["client_id"] == "single"
    assert query["redirect_uri"] == provider.redirect_uri
    state = sealing.decode_state(provider.state_key, query["state"])
    assert state.redirect == rd and state.nonce == query["nonce"]
    assert provider.cookie_name + "_bind=" in headers["Set-Cookie"]


async def test_attack_callback_state_forged_replayed_or_from_another_browser(served: Any) -> None:
    base, outpost = served
    provider = outpost.registry.lookup(APP)
    callback = base + "/outpost.goauthentik.io/callback?"

    async def call(state: str, cookie: str = "") -> tuple[int, str]:
        query = urllib.parse.urlencode(
            {"X-authentik-auth-callback": "true", "code": "c", "state": state}
        )
        headers = {"Host": APP, "Cookie": cookie} if cookie else {"Host": APP}
        status, body, _ = await _get(callback + query, headers=headers)
        return status, body

    assert (await call("forged.state"))[0] == 400
    assert (await call(""))[0] == 400
    binding = "b" * 32
    good = sealing.encode_state(provider.state_key, sealing.new_state(f"http://{APP}/", binding))
    status, body = await call(good)  # no binding cookie: started in another browser
    assert status == 400 and "another browser" in body
    status, body = await call(good, f"{provider.cookie_name}_bind={'c' * 32}")
    assert status == 400 and "another browser" in body
    # the right browser: the state passes, the code exchange fails (the core is away): 503
    status, body = await call(good, f"{provider.cookie_name}_bind={binding}")
    assert status == 503, body
    status, body = await call(good, f"{provider.cookie_name}_bind={binding}")
    assert status == 400 and "already used" in body
    status, _, _ = await _get(
        callback + "error=access_denied&state=x", headers={"Host": APP, "Accept": "text/html"}
    )
    assert status == 403


async def test_attack_authorization_headers_without_a_core(served: Any) -> None:
    base, _ = served
    for value in ("Bearer garbage", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode()):
        status, body, _ = await _get(
            base + AUTH + "traefik", headers={**_fwd(), "Authorization": value}
        )
        assert status == 401, (value, body)
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"k"}').decode().rstrip("=")
    jwt_like = f"{header}.e30.c2ln"
    status, body, _ = await _get(
        base + AUTH + "traefik", headers={**_fwd(), "Authorization": f"Bearer {jwt_like}"}
    )
    assert status == 503, body  # the key set cannot be fetched: not known to be bad


async def test_proxy_mode_upstream_down_is_502_and_the_outpost_pages_need_no_login(
    served: Any,
) -> None:
    base, _ = served
    status, _, headers = await _get(base + "/x", headers={"Host": "proxied.example.com"})
    assert status == 302  # not logged in: to start
    status, _, _ = await _get(
        base + AUTH + "traefik", headers=_fwd(uri="/outpost.goauthentik.io/start")
    )
    assert status == 200
    status, _, _ = await _get(base + "/outpost.goauthentik.io/ping", headers={"Host": "any"})
    assert status == 204


async def test_skip_path_regex_passes_without_identity() -> None:
    outpost = proxykit.outpost(
        [proxykit.config(external_host=f"http://{APP}", skip_path_regex="/public/.*")]
    )
    async with serving(proxy.create_app(outpost)) as port:
        status, _, headers = await _get(
            f"http://127.0.0.1:{port}{AUTH}traefik", headers=_fwd(uri="/public/a")
        )
        assert status == 200 and "X-authentik-username" not in headers
        status, _, _ = await _get(
            f"http://127.0.0.1:{port}{AUTH}traefik", headers=_fwd(uri="/x/public/a")
        )
        assert status == 302
    await outpost.close()
