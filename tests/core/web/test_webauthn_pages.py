"""The WebAuthn flow pages without a browser: the options travel in a JSON block (no inline
script), the form posts the credential as JSON text, and hostile text cannot leave the block."""

from __future__ import annotations

import html as htmlmod
import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from helpers import BOOTSTRAP_PASSWORD
from webauthnkit import SoftAuthenticator

from tessera.core import config

ORIGIN = "https://sso.example.com"
LOGIN = "/if/flow/default-authentication-flow/"
SETUP = "/if/flow/default-authenticator-webauthn-setup/"


@pytest.fixture
def settings(make_settings: Callable[..., config.Settings]) -> config.Settings:
    return make_settings(web={"public_url": ORIGIN})


def _token(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match is not None, page
    return match[1]


def _options(page: str) -> dict[str, Any]:
    match = re.search(
        r'<script type="application/json" data-webauthn-options>(.*?)</script>', page, re.S
    )
    assert match is not None, page
    return dict(json.loads(match[1]))


def _scripts_are_external_or_data(page: str) -> None:
    for tag in re.findall(r"<script[^>]*>", page):
        assert 'src="/static/webauthn.js"' in tag or 'type="application/json"' in tag, tag


async def _post(client: Any, path: str, page: str, **fields: str) -> Any:
    data = {"csrf_token": _token(page), **fields}
    return await client.post(path, data=data, allow_redirects=False)


async def _login(client: Any, username: str, password: str) -> str:
    """Identification and password through the pages; the page (or redirect target) after."""
    client.session.cookie_jar.clear()
    page = await (await client.get(LOGIN)).text()
    page = await (await _post(client, LOGIN, page, uid_field=username)).text()
    response = await _post(client, LOGIN, page, password=password)
    if response.status == 302:
        return str(response.headers["Location"])
    return str(await response.text())


async def test_enrol_and_log_in_through_the_pages(client: Any, api: Any) -> None:
    assert await _login(client, "akadmin", BOOTSTRAP_PASSWORD) == "/if/user/"
    portal = await (await client.get("/if/user/")).text()
    _, found = await api("GET", "stages/authenticator/webauthn/")
    link = f"/flows/-/configure/{found['results'][0]['pk']}/"
    assert f'href="{link}"' in portal
    into = await client.get(link, allow_redirects=False)
    assert into.status == 302 and into.headers["Location"] == SETUP
    response = await client.get(SETUP)
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    page = await response.text()
    _scripts_are_external_or_data(page)
    options = _options(page)
    assert options["rp"]["id"] == "sso.example.com" and options["user"]["name"] == "akadmin"
    key = SoftAuthenticator(ORIGIN)
    done = await _post(client, SETUP, page, response=json.dumps(key.create(options)))
    assert done.status == 302 and done.headers["Location"] == "/if/user/"
    assert "security key or passkey" in await (await client.get("/if/user/")).text()
    # A new login: the validate page offers the passkey; a wrong answer is shown as an error.
    page = await _login(client, "akadmin", BOOTSTRAP_PASSWORD)
    _scripts_are_external_or_data(page)
    assert 'data-webauthn="get"' in page and 'name="webauthn"' in page
    wrong = key.get(_options(page), origin="https://evil.example.com")
    page = await (await _post(client, LOGIN, page, webauthn=json.dumps(wrong))).text()
    assert "Invalid Token" in page
    done = await _post(client, LOGIN, page, webauthn=json.dumps(key.get(_options(page))))
    assert done.status == 302 and done.headers["Location"] == "/if/user/"


async def test_the_script_is_served_as_javascript(client: Any) -> None:
    response = await client.get("/static/webauthn.js")
    assert response.status == 200
    assert response.content_type in ("application/javascript", "text/javascript")
    assert "navigator.credentials" in await response.text()


async def test_hostile_names_stay_inside_the_json_block(
    client: Any, api: Any, make_user: Any
) -> None:
    hostile = '</script><script>alert("x")</script><!--'
    user = await make_user("hostile", name=hostile)
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": "pw-h-12345"})
    assert await _login(client, "hostile", "pw-h-12345") == "/if/user/"
    page = await (await client.get(SETUP)).text()
    assert hostile not in page and htmlmod.escape(hostile) not in page
    _scripts_are_external_or_data(page)
    assert _options(page)["user"]["displayName"] == hostile


async def test_log_in_with_a_passkey_on_the_identification_page(client: Any, api: Any) -> None:
    """With a webauthn_stage the identification page offers the passkey (its own form, next to
    the username form); its answer, posted as JSON text, logs in without a password."""
    assert await _login(client, "akadmin", BOOTSTRAP_PASSWORD) == "/if/user/"
    page = await (await client.get(SETUP)).text()
    key = SoftAuthenticator(ORIGIN)
    await _post(client, SETUP, page, response=json.dumps(key.create(_options(page))))
    _, stages = await api("GET", "stages/all/?search=default-authentication")
    pks = {s["name"]: s["pk"] for s in stages["results"]}
    path = f"stages/identification/{pks['default-authentication-identification']}/"
    body = {"webauthn_stage": pks["default-authentication-mfa-validation"]}
    client.session.cookie_jar.clear()
    page = await (await client.get(LOGIN)).text()
    assert 'autocomplete="username"' in page and "data-webauthn-autofill" not in page
    assert (await api("PATCH", path, json=body))[0] == 200
    client.session.cookie_jar.clear()
    page = await (await client.get(LOGIN)).text()
    _scripts_are_external_or_data(page)
    assert 'name="uid_field"' in page and 'name="passkey"' in page
    # The username field offers the passkeys in its autofill (webauthn.js, conditional request).
    assert 'autocomplete="username webauthn"' in page
    assert 'data-webauthn-autofill="uid_field"' in page
    options = _options(page)
    assert options["allowCredentials"] == []
    wrong = key.get(options, rp_id="evil.example.com")
    page = await (await _post(client, LOGIN, page, passkey=json.dumps(wrong))).text()
    assert "Failed to authenticate." in page
    done = await _post(client, LOGIN, page, passkey=json.dumps(key.get(_options(page))))
    assert done.status == 302 and done.headers["Location"] == "/if/user/"
