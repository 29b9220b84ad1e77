"""The validate stage's WebAuthn class: log in with a software authenticator's assertion, and the
attacks (other origin or RP id, a replayed assertion, a signature counter going backwards, another
user's credential, user verification required but absent, malformed answers)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
from flowkit import call, csrf_headers, make_flow
from helpers import SECRET_KEY
from webauthnkit import SoftAuthenticator, b64url

from tessera.core import config, crypto, store
from tessera.core.crypto import webauthn
from tessera.core.identity import devices

ORIGIN = "https://sso.example.com"
LOGIN = "/api/v3/flows/executor/default-authentication-flow/"
SETUP = "/api/v3/flows/executor/default-authenticator-webauthn-setup/"
PASSWORD = "pw-passkey-user-123"
VALIDATE = "ak-stage-authenticator-validate"
DONE = "xak-flow-redirect"
DENIED = "ak-stage-access-denied"


@pytest.fixture
def settings(make_settings: Callable[..., config.Settings]) -> config.Settings:
    return make_settings(web={"public_url": ORIGIN})


async def password(client: Any, username: str, path: str = LOGIN) -> dict[str, Any]:
    """A fresh login through identification and password; the next challenge."""
    client.session.cookie_jar.clear()
    await call(client, path)
    await call(client, path, {"uid_field": username})
    return await call(client, path, {"password": PASSWORD})


async def make_passkey_user(
    api: Any, make_user: Any, db: store.Store, username: str, **authenticator: Any
) -> tuple[dict[str, Any], SoftAuthenticator]:
    """A user with a password and a registered software authenticator (stored directly)."""
    user = await make_user(username)
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": PASSWORD})
    key = SoftAuthenticator(ORIGIN, **authenticator)
    registered = webauthn.Registered(
        credential_id=key.id,
        public_key=b64url(key.cose_key()),
        sign_count=0,
        aaguid="00000000-0000-0000-0000-000000000000",
        user_verified=True,
        device_type="single_device",
        backed_up=False,
    )
    async with db.transaction() as tx:
        assert await devices.create_webauthn(
            tx, crypto.Keyring(SECRET_KEY), user["pk"], registered, f"{username}'s key"
        )
    return dict(user), key


def options(challenge: dict[str, Any]) -> dict[str, Any]:
    assert challenge["component"] == VALIDATE, challenge
    (entry,) = [c for c in challenge["device_challenges"] if c["device_class"] == "webauthn"]
    return dict(entry["challenge"])


async def events_of(api: Any, action: str) -> list[dict[str, Any]]:
    _, page = await api("GET", f"events/events/?action={action}")
    return list(page["results"])


async def stored(db: store.Store, user_pk: int) -> dict[str, Any]:
    async with db.read() as tx:
        (device,) = await devices.confirmed(tx, user_pk, ["webauthn"])
    return device


async def test_register_through_the_setup_flow_then_log_in(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store
) -> None:
    user = await make_user("paula")
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": PASSWORD})
    assert (await password(client, "paula"))["component"] == DONE  # no device yet: skipped
    key = SoftAuthenticator(ORIGIN)
    setup = await call(client, SETUP)
    assert (await call(client, SETUP, {"response": key.create(setup["registration"])}))[
        "component"
    ] == DONE
    challenge = await password(client, "paula")
    request = options(challenge)
    assert request["rpId"] == "sso.example.com"
    assert request["allowCredentials"] == [{"id": key.id, "type": "public-key"}]
    assert request["userVerification"] == "preferred"
    body = await call(client, LOGIN, {"webauthn": key.get(request)})
    assert body["component"] == DONE
    me = await (await client.get("/api/v3/core/users/me/")).json()
    assert me["user"]["username"] == "paula"
    logins = await events_of(api, "login")
    assert sorted(e["context"]["auth_method"] for e in logins) == ["auth_mfa", "password"]
    device = await stored(bootstrapped, user["pk"])
    assert device["data"]["sign_count"] == 1 and device["last_used"] is not None


async def test_the_html_form_posts_the_assertion_as_json_text(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store
) -> None:
    _, key = await make_passkey_user(api, make_user, bootstrapped, "texty")
    request = options(await password(client, "texty"))
    body = await call(client, LOGIN, {"webauthn": json.dumps(key.get(request))})
    assert body["component"] == DONE


@pytest.mark.parametrize(
    ("attack", "answer"),
    [
        ("wrong_origin", {"origin": "https://evil.example.com"}),
        ("wrong_rp_id", {"rp_id": "evil.example.com"}),
        ("subdomain_origin", {"origin": "https://login.sso.example.com"}),
    ],
)
async def test_assertion_for_another_relying_party_is_refused(
    client: Any,
    api: Any,
    make_user: Any,
    bootstrapped: store.Store,
    attack: str,
    answer: dict[str, str],
) -> None:
    username = attack.replace("_", "-")
    _, key = await make_passkey_user(api, make_user, bootstrapped, username)
    request = options(await password(client, username))
    body = await call(client, LOGIN, {"webauthn": key.get(request, **answer)})
    assert body["component"] == VALIDATE
    assert body["response_errors"] == {"webauthn": [{"string": "Invalid Token", "code": "invalid"}]}
    assert (await client.get("/api/v3/core/users/me/")).status in (401, 403)
    (failed,) = await events_of(api, "login_failed")
    assert failed["context"]["username"] == username


async def test_replayed_assertion_is_refused(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store
) -> None:
    # A passkey without a signature counter: only the single-use challenge stops a replay.
    _, key = await make_passkey_user(api, make_user, bootstrapped, "replay", counter_step=0)
    request = options(await password(client, "replay"))
    assertion = key.get(request)
    assert (await call(client, LOGIN, {"webauthn": assertion}))["component"] == DONE
    fresh = await password(client, "replay")
    assert options(fresh)["challenge"] != request["challenge"]
    body = await call(client, LOGIN, {"webauthn": assertion})
    assert body["response_errors"]["webauthn"][0]["code"] == "invalid"
    # The refused answer used up the new challenge too; the next one is fresh again.
    assert options(body)["challenge"] not in (request["challenge"], options(fresh)["challenge"])


async def test_concurrent_submissions_of_one_assertion_pass_once(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store
) -> None:
    _, key = await make_passkey_user(api, make_user, bootstrapped, "racer", counter_step=0)
    assertion = key.get(options(await password(client, "racer")))
    responses = await asyncio.gather(
        *(
            client.post(LOGIN, json={"webauthn": assertion}, headers=csrf_headers(client))
            for _ in range(4)
        )
    )
    bodies = [await r.json() for r in responses if r.status == 200]
    assert sum(b["component"] == DONE for b in bodies) == 1


@pytest.mark.parametrize("replayed_count", [1, 0])
async def test_sign_count_regression_denies_and_is_reported(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store, replayed_count: int
) -> None:
    user, key = await make_passkey_user(api, make_user, bootstrapped, f"clone-{replayed_count}")
    request = options(await password(client, user["username"]))
    assert (await call(client, LOGIN, {"webauthn": key.get(request)}))["component"] == DONE
    assert (await stored(bootstrapped, user["pk"]))["data"]["sign_count"] == 1
    # A clone of the key, whose counter is behind the original's, signs a fresh challenge.
    request = options(await password(client, user["username"]))
    body = await call(client, LOGIN, {"webauthn": key.get(request, counter=replayed_count)})
    assert body["component"] == DENIED
    assert (await client.get("/api/v3/core/users/me/")).status in (401, 403)
    (event,) = await events_of(api, "suspicious_request")
    assert event["user"]["username"] == user["username"]
    assert event["context"]["stored_sign_count"] == 1
    assert event["context"]["received_sign_count"] == replayed_count
    assert (await stored(bootstrapped, user["pk"]))["data"]["sign_count"] == 1


async def test_credential_of_another_user_is_refused(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store
) -> None:
    await make_passkey_user(api, make_user, bootstrapped, "alice")
    _, mallory_key = await make_passkey_user(api, make_user, bootstrapped, "mallory")
    # Mallory knows Alice's password and answers Alice's challenge with her own registered key.
    request = options(await password(client, "alice"))
    assert request["allowCredentials"] != [{"id": mallory_key.id, "type": "public-key"}]
    body = await call(client, LOGIN, {"webauthn": mallory_key.get(request)})
    assert body["response_errors"]["webauthn"][0]["code"] == "invalid"
    assert (await client.get("/api/v3/core/users/me/")).status in (401, 403)


async def test_user_verification_required_but_absent_is_refused(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store
) -> None:
    await make_flow(
        bootstrapped,
        "uv-login",
        [
            ("identification", {}),
            ("password", {}),
            (
                "authenticator_validate",
                {"device_classes": ["webauthn"], "webauthn_user_verification": "required"},
            ),
            ("user_login", {}),
        ],
    )
    path = "/api/v3/flows/executor/uv-login/"
    _, key = await make_passkey_user(api, make_user, bootstrapped, "presence-only")
    request = options(await password(client, "presence-only", path))
    assert request["userVerification"] == "required"
    body = await call(client, path, {"webauthn": key.get(request, uv=False)})
    assert body["response_errors"]["webauthn"][0]["code"] == "invalid"
    body = await call(client, path, {"webauthn": key.get(options(body), uv=True)})
    assert body["component"] == DONE


async def test_a_class_the_stage_does_not_accept_is_refused(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store
) -> None:
    await make_flow(
        bootstrapped,
        "codes-only",
        [
            ("identification", {}),
            ("password", {}),
            (
                "authenticator_validate",
                {"device_classes": ["totp"], "not_configured_action": "deny"},
            ),
            ("user_login", {}),
        ],
    )
    path = "/api/v3/flows/executor/codes-only/"
    await make_passkey_user(api, make_user, bootstrapped, "keyonly")
    assert (await password(client, "keyonly", path))["component"] == DENIED


async def test_without_public_url_a_passkey_user_is_denied_not_skipped(
    make_settings: Callable[..., config.Settings],
    aiohttp_client: Any,
    bootstrapped: store.Store,
    api: Any,
    make_user: Any,
) -> None:
    from tessera.core import app

    await make_passkey_user(api, make_user, bootstrapped, "stranded")
    bare = make_settings(web={"public_url": ""})
    other = await aiohttp_client(app.create_app(bare, bootstrapped, run_tasks=False))
    body = await password(other, "stranded")
    assert body["component"] == DENIED and "public URL" in body["error_message"]
    (event,) = await events_of(api, "configuration_error")
    assert "web.public_url" in event["context"]["message"]
    assert (await other.get("/api/v3/core/users/me/")).status in (401, 403)


@pytest.mark.parametrize(
    "answer",
    [
        "{",
        ["list"],
        {"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {}},
        {
            "id": "A",
            "rawId": "A",
            "type": "public-key",
            "response": {"clientDataJSON": "e30", "authenticatorData": "AA", "signature": "AA"},
        },
        {
            "id": "AAAA",
            "rawId": "AAAA",
            "type": "public-key",
            "response": {"clientDataJSON": "e30", "authenticatorData": "AA", "signature": "AA"},
        },
        {"id": "AAAA", "rawId": "AAAA", "type": "password", "response": {}},
    ],
)
async def test_malformed_assertions_are_field_errors(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store, answer: Any
) -> None:
    _, key = await make_passkey_user(api, make_user, bootstrapped, "fuzzed")
    await password(client, "fuzzed")
    body = await call(client, LOGIN, {"webauthn": answer})
    assert body["component"] == VALIDATE and body["response_errors"]


async def test_malformed_assertion_with_the_real_credential_id_is_refused(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store
) -> None:
    _, key = await make_passkey_user(api, make_user, bootstrapped, "garbled")
    request = options(await password(client, "garbled"))
    assertion = key.get(request)
    assertion["response"]["signature"] = b64url(b"\x30\x06\x02\x01\x01\x02\x01\x01")
    body = await call(client, LOGIN, {"webauthn": assertion})
    assert body["response_errors"]["webauthn"][0]["code"] == "invalid"
    assertion = key.get(options(body))
    assertion["response"]["authenticatorData"] = "AAAA"
    body = await call(client, LOGIN, {"webauthn": assertion})
    assert body["response_errors"]["webauthn"][0]["code"] == "invalid"
