"""WebAuthn setup: register a credential through the default setup flow with a software
authenticator, and the attacks on registration (other origin, other RP id, missing user
verification, a replayed or malformed answer, no public URL configured)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flowkit import call, make_flow
from helpers import SECRET_KEY
from webauthnkit import SoftAuthenticator, b64url

from tessera.core import config, crypto, store
from tessera.core.crypto import webauthn
from tessera.core.identity import devices
from tessera.core.store import crud

ORIGIN = "https://sso.example.com"
LOGIN = "/api/v3/flows/executor/default-authentication-flow/"
SETUP = "/api/v3/flows/executor/default-authenticator-webauthn-setup/"
PASSWORD = "pw-webauthn-user-123"
COMPONENT = "ak-stage-authenticator-webauthn"


@pytest.fixture
def settings(make_settings: Callable[..., config.Settings]) -> config.Settings:
    return make_settings(web={"public_url": ORIGIN + "/"})


async def login(client: Any, api: Any, make_user: Any, username: str) -> dict[str, Any]:
    """A user with a password, logged in (no second factor yet)."""
    user = await make_user(username, name=f"{username.title()} Example")
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": PASSWORD})
    client.session.cookie_jar.clear()
    await call(client, LOGIN)
    await call(client, LOGIN, {"uid_field": username})
    assert (await call(client, LOGIN, {"password": PASSWORD}))["component"] == "xak-flow-redirect"
    return dict(user)


async def enrol(client: Any, authenticator: SoftAuthenticator) -> dict[str, Any]:
    challenge = await call(client, SETUP)
    assert challenge["component"] == COMPONENT, challenge
    return await call(client, SETUP, {"response": authenticator.create(challenge["registration"])})


async def webauthn_devices(db: store.Store, user_pk: int) -> list[dict[str, Any]]:
    async with db.read() as tx:
        return await devices.confirmed(tx, user_pk, ["webauthn"])


async def test_register_a_credential(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store
) -> None:
    user = await login(client, api, make_user, "wanda")
    challenge = await call(client, SETUP)
    assert challenge["component"] == COMPONENT
    options = challenge["registration"]
    assert options["rp"] == {"id": "sso.example.com", "name": "authentik"}
    assert options["user"]["name"] == "wanda" and options["user"]["displayName"] == "Wanda Example"
    assert options["authenticatorSelection"] == {
        "residentKey": "preferred",
        "requireResidentKey": False,
        "userVerification": "preferred",
    }
    assert options["excludeCredentials"] == [] and len(options["challenge"]) >= 43
    authenticator = SoftAuthenticator(ORIGIN)
    done = await call(client, SETUP, {"response": authenticator.create(options)})
    assert done["component"] == "xak-flow-redirect"
    (device,) = await webauthn_devices(bootstrapped, user["pk"])
    assert device["data"]["credential_id"] == authenticator.id
    assert device["data"]["sign_count"] == 0
    assert device["data"]["aaguid"] == "00010203-0405-0607-0809-0a0b0c0d0e0f"
    # The public key is sealed under the row, not stored in clear.
    cose = b64url(authenticator.cose_key())
    assert cose not in str(device) and device["secret_sealed"]
    assert devices.secret(crypto.Keyring(SECRET_KEY), device) == cose
    # The portal lists it.
    page = await (await client.get("/if/user/")).text()
    assert "security key or passkey" in page


async def test_registered_credentials_are_excluded_and_not_stored_twice(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store
) -> None:
    user = await login(client, api, make_user, "xavier")
    authenticator = SoftAuthenticator(ORIGIN)
    assert (await enrol(client, authenticator))["component"] == "xak-flow-redirect"
    challenge = await call(client, SETUP)
    excluded = challenge["registration"]["excludeCredentials"]
    assert excluded == [{"id": authenticator.id, "type": "public-key"}]
    # A client that ignores the exclusion list: the same credential is refused.
    body = await call(client, SETUP, {"response": authenticator.create(challenge["registration"])})
    assert body["component"] == COMPONENT
    assert body["response_errors"]["response"][0]["code"] == "unique"
    assert len(await webauthn_devices(bootstrapped, user["pk"])) == 1


async def test_credential_registered_by_another_user_is_refused(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store
) -> None:
    authenticator = SoftAuthenticator(ORIGIN)
    await login(client, api, make_user, "first")
    await enrol(client, authenticator)
    second = await login(client, api, make_user, "second")
    body = await enrol(client, authenticator)
    assert body["response_errors"]["response"][0]["code"] == "unique"
    assert await webauthn_devices(bootstrapped, second["pk"]) == []


@pytest.mark.parametrize(
    ("attack", "answer"),
    [
        ("wrong_origin", {"origin": "https://evil.example.com"}),
        ("wrong_rp_id", {"rp_id": "evil.example.com"}),
        ("http_origin", {"origin": "http://sso.example.com"}),
    ],
)
async def test_registration_for_another_relying_party_is_refused(
    client: Any,
    api: Any,
    make_user: Any,
    bootstrapped: store.Store,
    attack: str,
    answer: dict[str, str],
) -> None:
    user = await login(client, api, make_user, f"victim-{attack}".replace("_", "-"))
    challenge = await call(client, SETUP)
    credential = SoftAuthenticator(ORIGIN).create(challenge["registration"], **answer)
    body = await call(client, SETUP, {"response": credential})
    assert body["component"] == COMPONENT
    assert body["response_errors"]["response"][0]["code"] == "invalid"
    assert await webauthn_devices(bootstrapped, user["pk"]) == []


async def test_user_verification_required_but_absent_is_refused(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store
) -> None:
    await make_flow(
        bootstrapped,
        "webauthn-uv",
        [("authenticator_webauthn", {"user_verification": "required"})],
        designation="stage_configuration",
    )
    user = await login(client, api, make_user, "uv-less")
    path = "/api/v3/flows/executor/webauthn-uv/"
    challenge = await call(client, path)
    assert challenge["registration"]["authenticatorSelection"]["userVerification"] == "required"
    authenticator = SoftAuthenticator(ORIGIN, user_verified=False)
    body = await call(client, path, {"response": authenticator.create(challenge["registration"])})
    assert body["response_errors"]["response"][0]["code"] == "invalid"
    assert await webauthn_devices(bootstrapped, user["pk"]) == []
    verified = SoftAuthenticator(ORIGIN)
    body = await call(client, path, {"response": verified.create(body["registration"])})
    assert body["component"] == "xak-flow-redirect"


async def test_replayed_registration_is_refused(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store
) -> None:
    user = await login(client, api, make_user, "replayer")
    challenge = await call(client, SETUP)
    authenticator = SoftAuthenticator(ORIGIN)
    credential = authenticator.create(challenge["registration"])
    await call(client, SETUP, {"response": {"id": "x"}})  # a failed answer uses the challenge
    body = await call(client, SETUP, {"response": credential})
    assert body["response_errors"]["response"][0]["code"] in ("invalid", "expired")
    assert await webauthn_devices(bootstrapped, user["pk"]) == []


@pytest.mark.parametrize(
    "response",
    [
        "not json",
        "[]",
        {"id": "x"},
        {"id": "a", "rawId": "a", "type": "public-key", "response": {}},
        {
            "id": "!!",
            "rawId": "!!",
            "type": "public-key",
            "response": {"clientDataJSON": "e30", "attestationObject": "oA"},
        },
        {
            "id": "AAAA",
            "rawId": "AAAA",
            "type": "public-key",
            "response": {"clientDataJSON": "e30", "attestationObject": "oA"},
        },
        {
            "id": "AAAA",
            "rawId": "AAAA",
            "type": "public-key",
            "response": {"clientDataJSON": b64url(b"\xff" * 40), "attestationObject": "_w"},
        },
        {
            "id": "AAAA",
            "rawId": "AAAA",
            "type": "public-key",
            "response": {"clientDataJSON": "A" * 40000, "attestationObject": "AA"},
        },
        "[" * 5000,
        {"id": "a\x00", "rawId": "a", "type": "public-key"},
    ],
)
async def test_malformed_answers_are_field_errors(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store, response: Any
) -> None:
    user = await login(client, api, make_user, "fuzz")
    await call(client, SETUP)
    body = await call(client, SETUP, {"response": response})  # asserts HTTP 200 JSON
    assert body["component"] == COMPONENT and body["response_errors"]
    assert await webauthn_devices(bootstrapped, user["pk"]) == []


async def test_anonymous_visitor_cannot_register(client: Any) -> None:
    body = await call(client, SETUP)
    assert body["component"] in ("ak-stage-access-denied", "xak-flow-redirect")
    assert "registration" not in body


async def test_without_public_url_the_stage_refuses_and_says_why(
    make_settings: Callable[..., config.Settings],
    aiohttp_client: Any,
    bootstrapped: store.Store,
    api: Any,
    make_user: Any,
) -> None:
    from tessera.core import app

    bare = make_settings(web={"public_url": ""})
    other = await aiohttp_client(app.create_app(bare, bootstrapped, run_tasks=False))
    await login(other, api, make_user, "nourl")
    body = await call(other, SETUP)
    assert body["component"] == "ak-stage-access-denied"
    assert "public URL" in body["error_message"]
    _, page = await api("GET", "events/events/?action=configuration_error")
    (event,) = page["results"]
    assert "web.public_url" in event["context"]["message"]
    assert event["context"]["stage"]["name"] == "default-authenticator-webauthn-setup"


@pytest.mark.parametrize(
    ("public_url", "rp_id", "origin"),
    [
        ("https://sso.example.com/", "sso.example.com", "https://sso.example.com"),
        ("https://SSO.example.com:443/auth", "sso.example.com", "https://sso.example.com"),
        ("http://localhost:9000", "localhost", "http://localhost:9000"),
    ],
)
def test_relying_party_comes_from_the_public_url(public_url: str, rp_id: str, origin: str) -> None:
    rp = webauthn.relying_party(public_url)
    assert (rp.id, rp.origin) == (rp_id, origin)


@pytest.mark.parametrize("public_url", ["", "ftp://sso.example.com", "http://127.0.0.1:9000"])
def test_unusable_public_urls_are_configuration_errors(public_url: str) -> None:
    with pytest.raises(webauthn.NotConfigured):
        webauthn.relying_party(public_url)


async def test_stage_settings_through_the_admin_api(api: Any, bootstrapped: store.Store) -> None:
    path = "stages/authenticator/webauthn/"
    status, stage = await api(
        "POST",
        path,
        json={
            "name": "passkeys",
            "user_verification": "required",
            "resident_key_requirement": "required",
            "authenticator_attachment": "platform",
            "friendly_name": "Laptop",
        },
    )
    assert status == 201, stage
    assert stage["user_verification"] == "required" and stage["configure_flow"] is None
    status, body = await api("POST", path, json={"name": "bad", "user_verification": "always"})
    assert status == 400 and "user_verification" in body
    status, body = await api("POST", path, json={"name": "bad2", "authenticator_attachment": "usb"})
    assert status == 400 and "authenticator_attachment" in body
    async with bootstrapped.read() as tx:
        row = await crud.get(tx, "stages", pk=stage["pk"])
    assert row["kind"] == "authenticator_webauthn"
