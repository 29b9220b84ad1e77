"""SAML Single Logout: SP-initiated over both bindings (python3-saml as the SP for the
HTTP-Redirect one, its signed LogoutRequest checked and our signed LogoutResponse validated by
it), IdP-initiated front-channel, and back-channel when the core session ends. Each ends the core
session (`sessions.end_digest`, which outposts hear as SESSION_END)."""

from __future__ import annotations

import asyncio
import base64
import urllib.parse
import zlib
from typing import Any

import pytest
from aiohttp import test_utils, web
from lxml import etree
from oauth2kit import login
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from samlkit import (
    SAML,
    SAMLP,
    SLS,
    authn_request,
    follow,
    form_of,
    get_raw,
    idp_metadata,
    import_pair,
    make_saml_provider,
    onelogin_request,
    onelogin_settings,
    post_body,
    rsa_pair,
)

from tessera.core.identity import sessions

EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Both stores: SSO, the SAML session rows and logout on each."""
    return str(request.param)


async def _signed_in(client: Any) -> bool:
    response = await client.get("/api/v3/core/users/me/")
    return bool(response.status == 200)


async def _sso(client: Any, location: str | None = None) -> Any:
    """Sign in to `wiki` (by the AuthnRequest at `location`, else an unsigned one); the NameID
    and SessionIndex the SP was given."""
    if location is not None:
        parts = urllib.parse.urlsplit(location)
        response = await get_raw(client, f"{parts.path}?{parts.query}")
    else:
        response = await client.post(
            "/application/saml/wiki/sso/binding/post/",
            data=post_body(authn_request(name_id_format=EMAIL), "rs"),
            allow_redirects=False,
        )
    page = await follow(client, response)
    _, fields = form_of(await page.text())
    root = etree.fromstring(base64.b64decode(fields["SAMLResponse"]))
    statement = root.find(f".//{{{SAML}}}AuthnStatement")
    return root.find(f".//{{{SAML}}}NameID").text, statement.get("SessionIndex")


async def test_sp_initiated_redirect_with_python3_saml(client: Any, api: Any) -> None:
    key, cert = rsa_pair("onelogin-sp")
    verification = await import_pair(api, "sp", cert)
    await make_saml_provider(api, "wiki", verification_kp=verification, sign_logout_response=True)
    await login(client)
    settings = onelogin_settings(await idp_metadata(client), key, cert)
    auth = OneLogin_Saml2_Auth(onelogin_request(), settings)
    name_id, session_index = await _sso(client, auth.login())
    location = auth.logout(return_to="/bye", name_id=name_id, session_index=session_index)
    request_id = auth.get_last_request_id()
    parts = urllib.parse.urlsplit(location)
    response = await get_raw(client, f"{parts.path}?{parts.query}")
    assert response.status == 302, await response.text()
    back = urllib.parse.urlsplit(response.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == SLS
    assert not await _signed_in(client)
    query = urllib.parse.parse_qs(back.query)
    assert query["RelayState"] == ["/bye"]
    auth = OneLogin_Saml2_Auth(
        {
            **onelogin_request(),
            "script_name": "/sls",
            "get_data": {k: v[0] for k, v in query.items()},
        },
        settings,
    )
    auth.process_slo(request_id=request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    again = await get_raw(client, f"{parts.path}?{parts.query}")
    assert again.status == 400  # the same LogoutRequest twice


async def test_sp_initiated_post(client: Any, api: Any, bootstrapped: Any) -> None:
    await make_saml_provider(api, "wiki", sls_binding="post")
    await login(client)
    name_id, session_index = await _sso(client)
    cookie = next(c.value for c in client.session.cookie_jar if c.key == sessions.COOKIE)
    announced: list[set[str]] = []
    bootstrapped.on_commit(
        lambda tables, news: announced.append(set(news.get(sessions.ENDED, set())))
    )
    request = (
        f'<samlp:LogoutRequest xmlns:samlp="{SAMLP}" xmlns:saml="{SAML}" ID="_lo1" '
        f'Version="2.0" IssueInstant="{_now()}"><saml:Issuer>sp</saml:Issuer>'
        f"<saml:NameID>{name_id}</saml:NameID>"
        f"<samlp:SessionIndex>{session_index}</samlp:SessionIndex></samlp:LogoutRequest>"
    )
    response = await client.post(
        "/application/saml/wiki/slo/binding/post/", data=post_body(request, "rs")
    )
    action, fields = form_of(await response.text())
    assert action == SLS and fields["RelayState"] == "rs"
    answer = etree.fromstring(base64.b64decode(fields["SAMLResponse"]))
    assert answer.tag == f"{{{SAMLP}}}LogoutResponse"
    assert answer.get("InResponseTo") == "_lo1"
    assert not await _signed_in(client)
    # Announced as ended sessions are: outposts hear SESSION_END for it.
    assert {sessions.digest(cookie)} in announced


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_idp_initiated_front_channel(client: Any, api: Any) -> None:
    await make_saml_provider(api, "wiki")
    await login(client)
    name_id, session_index = await _sso(client)
    response = await client.get("/application/saml/wiki/slo/binding/init/", allow_redirects=False)
    assert response.status == 302
    target = urllib.parse.urlsplit(response.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == SLS
    encoded = urllib.parse.parse_qs(target.query)["SAMLRequest"][0]
    request = etree.fromstring(zlib.decompress(base64.b64decode(encoded), -15))
    assert request.find(f"{{{SAML}}}NameID").text == name_id
    assert request.find(f"{{{SAMLP}}}SessionIndex").text == session_index
    assert not await _signed_in(client)
    answer = (
        f'<samlp:LogoutResponse xmlns:samlp="{SAMLP}" ID="_a" Version="2.0" '
        f'IssueInstant="{_now()}" InResponseTo="{request.get("ID")}"><samlp:Status>'
        '<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>'
        "</samlp:Status></samlp:LogoutResponse>"
    )
    done = await client.post(
        "/application/saml/wiki/slo/binding/post/",
        data={"SAMLResponse": base64.b64encode(answer.encode()).decode()},
    )
    assert done.status == 200
    replay = await client.post(
        "/application/saml/wiki/slo/binding/post/",
        data={"SAMLResponse": base64.b64encode(answer.encode()).decode()},
    )
    assert replay.status == 400


async def test_back_channel_when_the_session_ends(client: Any, api: Any, bootstrapped: Any) -> None:
    received: list[str] = []
    arrived = asyncio.Event()

    async def sls(request: web.Request) -> web.Response:
        received.append(str((await request.post())["SAMLRequest"]))
        arrived.set()
        return web.Response()

    sp = web.Application()
    sp.router.add_post("/sls", sls)
    async with test_utils.TestServer(sp) as sp_server:
        await make_saml_provider(
            api,
            "wiki",
            sls_url=str(sp_server.make_url("/sls")),
            sls_binding="post",
            logout_method="backchannel",
            sign_logout_request=True,
        )
        await login(client)
        name_id, session_index = await _sso(client)
        cookie = next(c.value for c in client.session.cookie_jar if c.key == sessions.COOKIE)
        csrf = next(c.value for c in client.session.cookie_jar if c.key == "authentik_csrf")
        await client.get(
            "/api/v3/flows/executor/default-invalidation-flow/",
            headers={"X-authentik-CSRF": csrf},
        )
        await asyncio.wait_for(arrived.wait(), timeout=10)
    request = etree.fromstring(base64.b64decode(received[0]))
    assert request.tag == f"{{{SAMLP}}}LogoutRequest"
    assert request.find(f"{{{SAML}}}NameID").text == name_id
    assert request.find(f"{{{SAMLP}}}SessionIndex").text == session_index
    assert request.find("{http://www.w3.org/2000/09/xmldsig#}Signature") is not None
    async with bootstrapped.read() as tx:
        from tessera.core.store import crud

        assert await crud.find(tx, "saml_sessions", session_index=session_index) is None
        assert await crud.find(tx, sessions.TABLE, key_digest=sessions.digest(cookie)) is None


async def test_expired_saml_sessions_are_swept(client: Any, api: Any, bootstrapped: Any) -> None:
    import datetime as dt

    from tessera.core import tasks
    from tessera.core.store import crud

    await make_saml_provider(api, "wiki", session_valid_not_on_or_after="hours=1")
    await login(client)
    _, kept = await _sso(client)
    _, gone = await _sso(client)
    async with bootstrapped.read() as tx:
        row = await crud.get(tx, "saml_sessions", session_index=kept)
    assert row["expires"] > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=50)
    async with bootstrapped.transaction() as tx:
        past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        await crud.update(tx, "saml_sessions", {"session_index": gone}, {"expires": past})
    removed = await tasks.run_maintenance(bootstrapped)
    assert removed["saml"] == 1
    async with bootstrapped.read() as tx:
        assert await crud.find(tx, "saml_sessions", session_index=gone) is None
        assert await crud.find(tx, "saml_sessions", session_index=kept) is not None


async def test_sp_initiated_logout_tells_the_other_sps_only(client: Any, api: Any) -> None:
    """Logging out at one SP sends the back-channel LogoutRequest to the others, not to it."""
    received: list[str] = []
    arrived = asyncio.Event()

    async def sls(request: web.Request) -> web.Response:
        received.append(request.path)
        arrived.set()
        return web.Response()

    sp = web.Application()
    sp.router.add_post("/sls/{name}", sls)
    async with test_utils.TestServer(sp) as sp_server:
        for slug in ("wiki", "chat"):
            await make_saml_provider(
                api,
                slug,
                sls_url=str(sp_server.make_url(f"/sls/{slug}")),
                sls_binding="post",
                logout_method="backchannel",
            )
        await login(client)
        await _sso(client)
        response = await client.post(
            "/application/saml/chat/sso/binding/post/",
            data=post_body(authn_request(name_id_format=EMAIL), "rs"),
            allow_redirects=False,
        )
        assert (await follow(client, response)).status == 200
        request = authn_request(request_id="_out").replace("AuthnRequest", "LogoutRequest")
        page = await client.post(
            "/application/saml/wiki/slo/binding/post/", data=post_body(request, "rs")
        )
        assert page.status == 200
        await asyncio.wait_for(arrived.wait(), timeout=10)
        await asyncio.sleep(0.2)
    assert received == ["/sls/chat"]


def _logout_request_of(location: str) -> Any:
    target = urllib.parse.urlsplit(location)
    encoded = urllib.parse.parse_qs(target.query)["SAMLRequest"][0]
    return etree.fromstring(zlib.decompress(base64.b64decode(encoded), -15))


def _logout_response_to(request: Any) -> dict[str, str]:
    answer = (
        f'<samlp:LogoutResponse xmlns:samlp="{SAMLP}" ID="_a{request.get("ID")}" Version="2.0" '
        f'IssueInstant="{_now()}" InResponseTo="{request.get("ID")}"><samlp:Status>'
        '<samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>'
        "</samlp:Status></samlp:LogoutResponse>"
    )
    return {"SAMLResponse": base64.b64encode(answer.encode()).decode()}


async def test_idp_initiated_front_channel_visits_every_sp(client: Any, api: Any) -> None:
    """Each front-channel SP of the session gets its LogoutRequest in turn, this one first;
    a back-channel SP is not visited."""
    await make_saml_provider(api, "wiki")
    await make_saml_provider(api, "chat", sls_url="https://chat.example.com/sls")
    await make_saml_provider(
        api, "mail", sls_url="https://mail.example.com/sls", logout_method="backchannel"
    )
    await login(client)
    given = {}
    for slug in ("chat", "wiki", "mail"):
        response = await client.post(
            f"/application/saml/{slug}/sso/binding/post/",
            data=post_body(authn_request(name_id_format=EMAIL), "rs"),
            allow_redirects=False,
        )
        page = await follow(client, response)
        _, fields = form_of(await page.text())
        root = etree.fromstring(base64.b64decode(fields["SAMLResponse"]))
        given[slug] = root.find(f".//{{{SAML}}}AuthnStatement").get("SessionIndex")
    response = await client.get("/application/saml/wiki/slo/binding/init/", allow_redirects=False)
    assert response.status == 302 and response.headers["Location"].startswith(SLS)
    first = _logout_request_of(response.headers["Location"])
    assert first.find(f"{{{SAMLP}}}SessionIndex").text == given["wiki"]
    assert not await _signed_in(client)
    response = await client.post(
        "/application/saml/wiki/slo/binding/post/",
        data=_logout_response_to(first),
        allow_redirects=False,
    )
    assert response.status == 302
    assert response.headers["Location"].startswith("https://chat.example.com/sls?")
    second = _logout_request_of(response.headers["Location"])
    assert second.find(f"{{{SAMLP}}}SessionIndex").text == given["chat"]
    # The answer must come to the SP's own endpoint: chat's LogoutResponse at wiki's is refused.
    wrong = await client.post(
        "/application/saml/wiki/slo/binding/post/", data=_logout_response_to(second)
    )
    assert wrong.status == 400
    done = await client.post(
        "/application/saml/chat/slo/binding/post/", data=_logout_response_to(second)
    )
    assert done.status == 200 and "signed out" in await done.text()
    again = await client.post(
        "/application/saml/chat/slo/binding/post/", data=_logout_response_to(second)
    )
    assert again.status == 400  # once only
