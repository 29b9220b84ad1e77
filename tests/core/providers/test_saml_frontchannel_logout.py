"""IdP-initiated front-channel Single Logout from the logout flow (authentik's `logout_method`
`frontchannel_iframe` and `frontchannel_native`), driven through authentik's generated client:
the user_logout stage ends the core session and the flow then shows
`ak-provider-iframe-logout` (every iframe SP's signed LogoutRequest at once) and
`ak-provider-saml-native-logout` (one native SP after another, each sending the browser back
through `slo/`). The requests are checked by python3-saml as the SP (HTTP-Redirect) and by
`xmlsec1 --verify` (HTTP-POST)."""

from __future__ import annotations

import base64
import html
import re
import shutil
import subprocess
import urllib.parse
import zlib
from pathlib import Path
from typing import Any

import akclientkit
import pytest
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
    import_pair,
    make_saml_provider,
    onelogin_settings,
    post_body,
    rsa_pair,
)

from tessera.core import web as pages
from tessera.core.identity import sessions
from tessera.core.providers.saml import records
from tessera.core.store import crud

EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
XMLSEC1 = shutil.which("xmlsec1")
LOGOUT = "default-invalidation-flow"


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def _sso(client: Any, slug: str) -> tuple[str, str]:
    response = await client.post(
        f"/application/saml/{slug}/sso/binding/post/",
        data=post_body(authn_request(name_id_format=EMAIL), "rs"),
        allow_redirects=False,
    )
    page = await follow(client, response)
    _, fields = form_of(await page.text())
    root = etree.fromstring(base64.b64decode(fields["SAMLResponse"]))
    statement = root.find(f".//{{{SAML}}}AuthnStatement")
    return root.find(f".//{{{SAML}}}NameID").text, statement.get("SessionIndex")


def _driver(client: Any) -> akclientkit.FlowDriver:
    """authentik's client, in the browser session the aiohttp client logged in."""
    driver = akclientkit.FlowDriver(str(client.make_url("/")).rstrip("/"))
    driver.cookies = {c.key: c.value for c in client.session.cookie_jar}
    driver.client.cookie = "; ".join(f"{k}={v}" for k, v in driver.cookies.items())
    return driver


def _redirect_request(url: str) -> Any:
    encoded = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["SAMLRequest"][0]
    return etree.fromstring(zlib.decompress(base64.b64decode(encoded), -15))


def _xmlsec_verify(tmp_path: Path, document: bytes, cert: str) -> None:
    assert XMLSEC1 is not None, "xmlsec1 is not installed"
    (tmp_path / "logout.xml").write_bytes(document)
    (tmp_path / "idp.pem").write_text(cert)
    result = subprocess.run(
        [
            XMLSEC1,
            "--verify",
            "--pubkey-cert-pem",
            str(tmp_path / "idp.pem"),
            "--id-attr:ID",
            f"{SAMLP}:LogoutRequest",
            str(tmp_path / "logout.xml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _answer(request: Any) -> dict[str, str]:
    answer = (
        f'<samlp:LogoutResponse xmlns:samlp="{SAMLP}" ID="_r{request.get("ID")[1:9]}" '
        f'Version="2.0" IssueInstant="2030-01-01T00:00:00Z" InResponseTo="{request.get("ID")}">'
        '<samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/>'
        "</samlp:Status></samlp:LogoutResponse>"
    )
    return {"SAMLResponse": base64.b64encode(answer.encode()).decode()}


async def test_logout_flow_front_channel_steps(
    client: Any, api: Any, tmp_path: Path, bootstrapped: Any
) -> None:
    """Four SPs, one per front-channel method and SLS binding, and one back-channel SP: the
    logout flow ends the session, shows the iframe SPs' LogoutRequests together, then sends the
    browser to each native SP in turn; every request is signed and names that SP's session."""
    sp_key, sp_cert = rsa_pair("onelogin-sp")
    idp_key, idp_cert = rsa_pair("idp-logout")
    signing = await import_pair(api, "idp-logout", idp_cert, idp_key)
    common = {"signing_kp": signing, "sign_logout_request": True}
    await make_saml_provider(api, "wiki", **common)  # frontchannel_iframe is the default
    await make_saml_provider(
        api, "chat", sls_url="https://chat.example.com/sls", sls_binding="post", **common
    )
    await make_saml_provider(
        api,
        "mail",
        sls_url="https://mail.example.com/sls",
        logout_method="frontchannel_native",
        **common,
    )
    await make_saml_provider(
        api,
        "docs",
        sls_url="https://docs.example.com/sls",
        sls_binding="post",
        logout_method="frontchannel_native",
        **common,
    )
    await make_saml_provider(
        api, "back", sls_url="http://127.0.0.1:9/sls", logout_method="backchannel", **common
    )
    await make_saml_provider(api, "nosls", sls_url="", **common)  # nothing to tell
    await login(client)
    given = {slug: await _sso(client, slug) for slug in ("wiki", "chat", "mail", "docs", "back")}
    await _sso(client, "nosls")
    old_key = next(c.value for c in client.session.cookie_jar if c.key == sessions.COOKIE)
    ended: list[set[str]] = []
    bootstrapped.on_commit(lambda tables, news: ended.append(set(news.get(sessions.ENDED, []))))

    driver = _driver(client)
    frames = await driver.get(LOGOUT)
    # The session ended at the user_logout stage, before any SP was told.
    assert {sessions.digest(old_key)} in ended
    assert driver.cookies[sessions.COOKIE].startswith(sessions.ANONYMOUS)
    async with bootstrapped.read() as tx:
        assert await crud.rows(tx, records.SESSIONS, []) == []
    assert frames.component == "ak-provider-iframe-logout"
    by_url = {u.provider_name: u for u in frames.logout_urls}
    assert set(by_url) == {"wiki", "chat"}

    # wiki: HTTP-Redirect, checked by python3-saml as the SP, which answers.
    wiki = by_url["wiki"]
    assert wiki.binding == "redirect" and wiki.url.startswith(SLS + "?")
    request = _redirect_request(wiki.url)
    assert request.find(f"{{{SAML}}}NameID").text == given["wiki"][0]
    assert request.find(f"{{{SAMLP}}}SessionIndex").text == given["wiki"][1]
    settings = onelogin_settings(await idp_metadata_of(client, "wiki"), sp_key, sp_cert)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(wiki.url).query)
    auth = OneLogin_Saml2_Auth(
        {
            "https": "on",
            "http_host": "sp.example.com",
            "script_name": "/sls",
            "get_data": {k: v[0] for k, v in query.items()},
            "post_data": {},
        },
        settings,
    )
    back_to_idp = auth.process_slo(keep_local_session=True)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    parts = urllib.parse.urlsplit(back_to_idp)
    answered = await get_raw(client, f"{parts.path}?{parts.query}")
    assert answered.status == 200, await answered.text()  # the frame's short page

    # chat: HTTP-POST, its enveloped signature checked by xmlsec1.
    chat = by_url["chat"]
    assert chat.binding == "post" and chat.url == "https://chat.example.com/sls"
    document = base64.b64decode(chat.saml_request)
    root = etree.fromstring(document)
    assert root.find(f"{{{SAML}}}NameID").text == given["chat"][0]
    assert root.find(f"{{{SAMLP}}}SessionIndex").text == given["chat"][1]
    _xmlsec_verify(tmp_path, document, idp_cert)

    # The page answers once the frames loaded: the native SPs follow, one at a time.
    mail = await driver.solve(LOGOUT, "ak-provider-iframe-logout")
    assert mail.component == "ak-provider-saml-native-logout"
    assert (mail.provider_name, mail.saml_binding) == ("mail", "redirect")
    assert mail.is_complete is False
    request = _redirect_request(mail.redirect_url)
    assert request.find(f"{{{SAMLP}}}SessionIndex").text == given["mail"][1]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(mail.redirect_url).query)
    assert query["RelayState"] == [f"{str(client.make_url('/')).rstrip('/')}/if/flow/{LOGOUT}/"]
    assert "Signature" in query and "SigAlg" in query
    # mail's LogoutResponse comes back to slo/ and sends the browser back to the flow.
    back = await client.post(
        "/application/saml/mail/slo/binding/post/", data=_answer(request), allow_redirects=False
    )
    assert back.status == 302 and back.headers["Location"] == f"/if/flow/{LOGOUT}/"

    docs = await driver.get(LOGOUT)
    assert (docs.component, docs.saml_binding) == ("ak-provider-saml-native-logout", "post")
    assert docs.post_url == "https://docs.example.com/sls"
    document = base64.b64decode(docs.saml_request)
    assert etree.fromstring(document).find(f"{{{SAMLP}}}SessionIndex").text == given["docs"][1]
    _xmlsec_verify(tmp_path, document, idp_cert)
    assert docs.saml_relay_state.endswith(f"/if/flow/{LOGOUT}/")
    request = etree.fromstring(document)
    back = await client.post(
        "/application/saml/docs/slo/binding/post/", data=_answer(request), allow_redirects=False
    )
    assert back.status == 302
    again = await client.post(
        "/application/saml/docs/slo/binding/post/", data=_answer(request), allow_redirects=False
    )
    assert again.status == 400  # answered once only

    done = await driver.get(LOGOUT)
    assert done.component == "xak-flow-redirect"


async def idp_metadata_of(client: Any, slug: str) -> str:
    response = await client.get(f"/application/saml/{slug}/metadata/")
    assert response.status == 200
    return str(await response.text())


async def test_logout_flow_without_front_channel_sps_is_unchanged(client: Any, api: Any) -> None:
    """No front-channel SP in the session: the logout flow ends as before, cookie removed."""
    await make_saml_provider(api, "wiki", logout_method="backchannel", sls_binding="post")
    await login(client)
    await _sso(client, "wiki")
    driver = _driver(client)
    done = await driver.get(LOGOUT)
    assert done.component == "xak-flow-redirect"
    assert sessions.COOKIE not in driver.cookies


async def test_native_steps_answered_by_the_client_and_foreign_responses(
    client: Any, api: Any
) -> None:
    """A LogoutResponse delivered at another SP's endpoint, or answering nothing sent from here,
    is an error page and leads nowhere; a client that answers the native challenge instead of
    following it gets the next SP, then the flow ends."""
    for slug in ("mail", "docs"):
        await make_saml_provider(
            api,
            slug,
            sls_url=f"https://{slug}.example.com/sls",
            logout_method="frontchannel_native",
        )
    await make_saml_provider(api, "wiki")
    await login(client)
    for slug in ("mail", "docs"):
        await _sso(client, slug)
    driver = _driver(client)
    first = await driver.get(LOGOUT)
    assert first.provider_name == "mail"
    request = _redirect_request(first.redirect_url)
    wrong = await client.post("/application/saml/wiki/slo/binding/post/", data=_answer(request))
    assert wrong.status == 400
    forged = etree.fromstring(etree.tostring(request))
    forged.set("ID", "_not-sent-from-here")
    refused = await client.post("/application/saml/mail/slo/binding/post/", data=_answer(forged))
    assert refused.status == 400
    second = await driver.solve(LOGOUT, "ak-provider-saml-native-logout")
    assert second.provider_name == "docs"
    done = await driver.solve(LOGOUT, "ak-provider-saml-native-logout")
    assert done.component == "xak-flow-redirect"


async def test_flow_page_runs_both_steps(client: Any, api: Any) -> None:
    """Tessera's own flow page: the iframe step may frame only the SPs' origins and carries the
    logout URLs for logout.js; the native step links to the SP (logout.js follows it); the SP's
    LogoutResponse leads back to the flow page, which ends the flow."""
    await make_saml_provider(api, "wiki")
    await make_saml_provider(
        api, "mail", sls_url="https://mail.example.com/sls", logout_method="frontchannel_native"
    )
    await login(client)
    for slug in ("wiki", "mail"):
        await _sso(client, slug)
    page = await client.get(f"/if/flow/{LOGOUT}/", allow_redirects=False)
    assert page.status == 200
    policy = page.headers["Content-Security-Policy"]
    assert policy.endswith("; frame-src 'self' https://sp.example.com"), policy
    text = await page.text()
    assert 'data-logout-urls>[{"binding": "redirect"' in text
    assert '<script src="/static/logout.js"></script>' in text
    assert client.session.cookie_jar.filter_cookies(client.make_url("/"))[
        sessions.COOKIE
    ].value.startswith(sessions.ANONYMOUS)
    token = re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)
    native = await client.post(
        f"/if/flow/{LOGOUT}/",
        data={"csrf_token": token, "component": "ak-provider-iframe-logout"},
        allow_redirects=False,
    )
    assert native.status == 200
    found = re.search(r'<a id="logout-redirect" href="([^"]+)">', await native.text())
    assert found is not None
    location = html.unescape(found.group(1))
    assert location.startswith("https://mail.example.com/sls?SAMLRequest=")
    back = await client.post(
        "/application/saml/mail/slo/binding/post/",
        data=_answer(_redirect_request(location)),
        allow_redirects=False,
    )
    assert back.headers["Location"] == f"/if/flow/{LOGOUT}/"
    end = await client.get(back.headers["Location"], allow_redirects=False)
    assert end.status == 302  # the flow's end: on to where the logout flow leads


@pytest.mark.parametrize(
    "url",
    ["https://sp.example.com/sls", "https://a b/x", "javascript:alert(1)", "https://x;y/"],
    ids=["plain", "space", "scheme", "semicolon"],
)
def test_frame_src_takes_plain_origins_only(url: str) -> None:
    challenge = {"component": "ak-provider-iframe-logout", "logout_urls": [{"url": url}]}
    expected = "https://sp.example.com" if url.startswith("https://sp.") else ""
    assert pages._frame_sources(challenge) == expected
