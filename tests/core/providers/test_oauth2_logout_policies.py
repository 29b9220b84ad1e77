"""Logout and access rules of the OAuth2 provider: back-channel logout tokens reach the relying
party when the user logs out and the session's grants die; end-session only returns to registered
URIs; application policies deny users (an error page, or `access_denied` with prompt=none)."""

from __future__ import annotations

import asyncio
import urllib.parse
from typing import Any

from aiohttp import test_utils, web
from joserfc import jwt as jose_jwt
from joserfc.jwk import KeySet
from oauth2kit import (
    CB,
    authorize,
    authorize_url,
    code_tokens,
    key_pair,
    login,
    make_provider,
    token,
)

INVALIDATION = "/api/v3/flows/executor/default-invalidation-flow/"


async def _csrf(client: Any) -> dict[str, str]:
    value = next((c.value for c in client.session.cookie_jar if c.key == "authentik_csrf"), "")
    return {"X-authentik-CSRF": value}


async def test_backchannel_logout_reaches_the_relying_party(api: Any, client: Any) -> None:
    received: list[str] = []
    arrived = asyncio.Event()

    async def logout_endpoint(request: web.Request) -> web.Response:
        received.append(str((await request.post())["logout_token"]))
        arrived.set()
        return web.Response()

    rp = web.Application()
    rp.router.add_post("/backchannel", logout_endpoint)
    async with test_utils.TestServer(rp) as rp_server:
        uri = str(rp_server.make_url("/backchannel"))
        provider = await make_provider(
            api,
            "bcl",
            logout_uri=uri,
            logout_method="backchannel",
            signing_key=await key_pair(api, "bcl"),
        )
        await login(client)
        issued = await code_tokens(client, provider)
        await client.get(INVALIDATION, headers=await _csrf(client))
        await asyncio.wait_for(arrived.wait(), timeout=10)
    assert len(received) == 1
    keys = await (await client.get("/application/o/bcl/jwks/")).json()
    decoded = jose_jwt.decode(received[0], KeySet.import_key_set(keys))
    claims = decoded.claims
    assert decoded.header["typ"] == "logout+jwt"
    assert claims["aud"] == provider["client_id"]
    assert "http://schemas.openid.net/event/backchannel-logout" in claims["events"]
    id_claims = jose_jwt.decode(issued["id_token"], KeySet.import_key_set(keys)).claims
    assert claims["sid"] == id_claims["sid"] and claims["sub"] == id_claims["sub"]
    # The session's grants died with it.
    refresh = await token(
        client, provider, grant_type="refresh_token", refresh_token=issued["refresh_token"]
    )
    assert (await refresh.json())["error"] == "invalid_grant"
    info = await client.get(
        "/application/o/userinfo/", headers={"Authorization": "Bearer " + issued["access_token"]}
    )
    assert info.status == 401


async def test_end_session_returns_only_to_registered_uris(api: Any, client: Any) -> None:
    bye = "https://app.example.com/bye"
    provider = await make_provider(
        api,
        "rpi",
        redirect_uris=[
            {"matching_mode": "strict", "url": CB},
            {"matching_mode": "strict", "url": bye, "redirect_uri_type": "logout"},
        ],
    )
    await login(client)
    issued = await code_tokens(client, provider)
    end = "/application/o/rpi/end-session/?"
    # Not registered as a logout URI (the login callback is an authorization URI): no redirect.
    wrong = await client.get(
        end
        + urllib.parse.urlencode(
            {"id_token_hint": issued["id_token"], "post_logout_redirect_uri": CB}
        ),
        allow_redirects=False,
    )
    assert wrong.status == 302 and wrong.headers["Location"].startswith("/if/flow/")
    follow = await client.get(INVALIDATION, headers=await _csrf(client))
    body = await follow.json()
    assert body["component"] == "xak-flow-redirect"
    done = await client.get(body["to"], allow_redirects=False)
    assert done.status == 200 and "logged out" in (await done.text())
    # Logged out now; a registered URI with a valid hint is followed, with the state.
    good = await client.get(
        end
        + urllib.parse.urlencode(
            {"id_token_hint": issued["id_token"], "post_logout_redirect_uri": bye, "state": "s1"}
        ),
        allow_redirects=False,
    )
    assert good.status == 302 and good.headers["Location"] == bye + "?state=s1"
    forged = await client.get(
        end + urllib.parse.urlencode({"id_token_hint": "a.b.c", "post_logout_redirect_uri": bye}),
        allow_redirects=False,
    )
    assert forged.status == 200


async def test_application_policies_deny(api: Any, client: Any, make_group: Any) -> None:
    provider = await make_provider(api, "locked")
    group = await make_group("nobody-is-here")
    status, app = await api("GET", "core/applications/locked/")
    status, binding = await api(
        "POST",
        "policies/bindings/",
        json={"target": app["pk"], "group": group["pk"], "order": 0},
    )
    assert status == 201, binding
    await login(client)
    page = await client.get(authorize_url(provider), allow_redirects=False)
    assert page.status == 403 and "Location" not in page.headers
    silent = await authorize(client, provider, prompt="none")
    assert silent["error"] == "access_denied"
    own = await token(client, provider, grant_type="client_credentials")
    assert own.status == 400 and (await own.json())["error"] == "invalid_grant"


async def test_userinfo_by_post_and_introspection_of_another_client(api: Any, client: Any) -> None:
    provider = await make_provider(api, "ui")
    other = await make_provider(api, "ui-other")
    await login(client)
    issued = await code_tokens(client, provider)
    posted = await client.post(
        "/application/o/userinfo/", data={"access_token": issued["access_token"]}
    )
    assert posted.status == 200 and (await posted.json())["preferred_username"] == "akadmin"
    # Another client learns nothing about this client's tokens.
    answer = await client.post(
        "/application/o/introspect/",
        data={
            "token": issued["access_token"],
            "client_id": other["client_id"],
            "client_secret": other["client_secret"],
        },
    )
    assert await answer.json() == {"active": False}
    anonymous = await client.post("/application/o/introspect/", data={"token": "x"})
    assert anonymous.status == 401


async def test_device_codes_cannot_be_guessed_forever(api: Any, client: Any) -> None:
    provider = await make_provider(api, "tv")
    start = await client.post(
        "/application/o/device/", data={"client_id": provider["client_id"], "scope": "openid"}
    )
    grant = await start.json()
    assert grant["interval"] == 5 and len(grant["user_code"]) == 9
    await login(client)
    page = await client.get("/device")
    text = await page.text()
    form_token = text.split('name="csrf_token" value="')[1].split('"')[0]
    statuses = []
    for _ in range(12):
        wrong = await client.post("/device", data={"csrf_token": form_token, "code": "BBBB-BBBB"})
        statuses.append(wrong.status)
    assert statuses[:10] == [400] * 10 and statuses[10:] == [429, 429]
    no_token = await client.post("/device", data={"code": grant["user_code"]})
    assert no_token.status == 403


async def _authorize_consenting(client: Any, url: str) -> tuple[dict[str, str], bool]:
    """Follow an authorization, consenting through the JSON executor when asked; the client's
    parameters and whether consent was asked."""
    asked = False
    for _ in range(6):
        response = await client.get(url, allow_redirects=False)
        assert response.status == 302, await response.text()
        url = response.headers["Location"]
        if url.startswith(CB):
            return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query)), asked
        if url.startswith("/if/flow/"):
            slug = url.split("/")[3]
            executor = f"/api/v3/flows/executor/{slug}/"
            body = await (await client.get(executor, headers=await _csrf(client))).json()
            assert body["component"] == "ak-stage-consent", body
            asked = True
            body = await (
                await client.post(
                    executor, json={"token": body["token"]}, headers=await _csrf(client)
                )
            ).json()
            url = body["to"]
    raise AssertionError(url)


async def test_remembered_consent_covers_its_scopes_only(api: Any, client: Any) -> None:
    status, flow = await api(
        "GET", "flows/instances/default-provider-authorization-explicit-consent/"
    )
    provider = await make_provider(api, "consenting", authorization_flow=flow["pk"])
    await login(client)
    params, asked = await _authorize_consenting(client, authorize_url(provider, scope="openid"))
    assert "code" in params and asked
    params, asked = await _authorize_consenting(client, authorize_url(provider, scope="openid"))
    assert "code" in params and not asked  # remembered
    wider = authorize_url(provider, scope="openid email")
    params, asked = await _authorize_consenting(client, wider)
    assert "code" in params and asked  # a new scope needs a new consent
    params, asked = await _authorize_consenting(client, authorize_url(provider, scope="openid"))
    assert not asked  # the union is remembered
    forced = authorize_url(provider, scope="openid", prompt="consent")
    params, asked = await _authorize_consenting(client, forced)
    assert "code" in params and asked
    silent = await authorize(client, provider, scope="openid profile", prompt="none")
    assert silent["error"] == "consent_required"
