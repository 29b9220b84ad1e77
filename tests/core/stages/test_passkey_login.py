"""Username-less passkey login: a passwordless flow (authenticator_validate without a pending
user) and the identification stage's passkey autofill (`webauthn_stage`), with a software
authenticator; and the attacks: a wrong or replayed challenge, another origin or RP id, a
credential of a deactivated user, an unknown credential, another user's handle, a cloned key,
and failed passkeys counting towards the login throttle."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

import pytest
from flowkit import call, csrf_headers, make_flow
from helpers import SECRET_KEY
from webauthnkit import SoftAuthenticator, b64url

from tessera.core import app, config, crypto, store
from tessera.core.crypto import webauthn
from tessera.core.identity import devices, users

ORIGIN = "https://sso.example.com"
PASSWORDLESS = "/api/v3/flows/executor/passwordless/"
LOGIN = "/api/v3/flows/executor/default-authentication-flow/"
VALIDATE = "ak-stage-authenticator-validate"
DONE = "xak-flow-redirect"
DENIED = "ak-stage-access-denied"
UNIFORM = [{"string": "Failed to authenticate.", "code": "invalid"}]


@pytest.fixture
def settings(make_settings: Callable[..., config.Settings]) -> config.Settings:
    return make_settings(
        web={"public_url": ORIGIN}, login_throttle={"per_ip": 4, "per_username": 10}
    )


@pytest.fixture
async def passwordless(bootstrapped: store.Store) -> str:
    validate = {"device_classes": ["webauthn"], "webauthn_user_verification": "required"}
    return await make_flow(
        bootstrapped,
        "passwordless",
        [("authenticator_validate", validate), ("user_login", {})],
    )


async def passkey_user(
    make_user: Any, db: store.Store, username: str, **authenticator: Any
) -> tuple[dict[str, Any], SoftAuthenticator]:
    """A user (no password) with a discoverable credential on a software authenticator."""
    user = await make_user(username)
    key = SoftAuthenticator(ORIGIN, **authenticator)
    keyring = crypto.Keyring(SECRET_KEY)
    key.user_handle = b64url(users.uid(keyring, user["pk"]).encode())
    registered = webauthn.Registered(
        credential_id=key.id,
        public_key=b64url(key.cose_key()),
        sign_count=0,
        aaguid="00000000-0000-0000-0000-000000000000",
        user_verified=True,
        device_type="multi_device",
        backed_up=False,
    )
    async with db.transaction() as tx:
        assert await devices.create_webauthn(tx, keyring, user["pk"], registered, "passkey")
    return dict(user), key


async def start(client: Any) -> dict[str, Any]:
    """A fresh browser's passwordless challenge options."""
    client.session.cookie_jar.clear()
    challenge = await call(client, PASSWORDLESS)
    assert challenge["component"] == VALIDATE, challenge
    (entry,) = challenge["device_challenges"]
    assert entry["device_class"] == "webauthn" and entry["device_uid"] == "-1"
    return dict(entry["challenge"])


async def whoami(client: Any) -> str | None:
    response = await client.get("/api/v3/core/users/me/")
    return str((await response.json())["user"]["username"]) if response.status == 200 else None


async def events_of(api: Any, action: str) -> list[dict[str, Any]]:
    _, page = await api("GET", f"events/events/?action={action}")
    return list(page["results"])


async def test_passwordless_flow_logs_in_with_only_a_passkey(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store, passwordless: str
) -> None:
    user, key = await passkey_user(make_user, bootstrapped, "pia")
    options = await start(client)
    assert options["allowCredentials"] == [] and options["rpId"] == "sso.example.com"
    assert options["userVerification"] == "required"
    assert (await call(client, PASSWORDLESS, {"webauthn": key.get(options)}))["component"] == DONE
    assert await whoami(client) == "pia"
    (login,) = await events_of(api, "login")
    assert login["context"]["auth_method"] == "auth_webauthn_pwl"
    async with bootstrapped.read() as tx:
        (device,) = await devices.confirmed(tx, user["pk"], ["webauthn"])
    assert device["data"]["sign_count"] == 1 and device["last_used"] is not None


async def test_identification_passkey_autofill_skips_the_password(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store, passwordless: str
) -> None:
    await passkey_user(make_user, bootstrapped, "quinn")
    _, key = await passkey_user(make_user, bootstrapped, "rosa")
    _, stages = await api("GET", "stages/all/?search=default-authentication")
    pks = {s["name"]: s["pk"] for s in stages["results"]}
    validate = pks["default-authentication-mfa-validation"]
    status, _ = await api(
        "PATCH",
        f"stages/identification/{pks['default-authentication-identification']}/",
        json={"webauthn_stage": validate, "passwordless_flow": passwordless},
    )
    assert status == 200
    challenge = await call(client, LOGIN)
    assert challenge["passwordless_url"] == "/if/flow/passwordless/"
    options = challenge["passkey_challenge"]
    assert options["allowCredentials"] == [] and options["userVerification"] == "preferred"
    body = await call(
        client, LOGIN, {"component": challenge["component"], "passkey": key.get(options)}
    )
    assert body["component"] == DONE, body
    assert await whoami(client) == "rosa"
    # Without a webauthn_stage a passkey answer is refused like any other bad one.
    await api(
        "PATCH",
        f"stages/identification/{pks['default-authentication-identification']}/",
        json={"webauthn_stage": None},
    )
    client.session.cookie_jar.clear()
    assert "passkey_challenge" not in await call(client, LOGIN)
    body = await call(client, LOGIN, {"passkey": key.get(options)})
    assert body["response_errors"] == {"passkey": UNIFORM}
    assert await whoami(client) is None


async def test_replayed_assertion_is_refused(
    client: Any, make_user: Any, bootstrapped: store.Store, passwordless: str
) -> None:
    # No signature counter (many passkeys): only the single-use challenge stops the replay.
    _, key = await passkey_user(make_user, bootstrapped, "sam", counter_step=0)
    assertion = key.get(await start(client))
    assert (await call(client, PASSWORDLESS, {"webauthn": assertion}))["component"] == DONE
    await start(client)
    body = await call(client, PASSWORDLESS, {"webauthn": assertion})
    assert body["response_errors"] == {"webauthn": UNIFORM}
    assert await whoami(client) is None


async def test_assertion_for_a_challenge_never_issued_is_refused(
    client: Any, make_user: Any, bootstrapped: store.Store, passwordless: str
) -> None:
    _, key = await passkey_user(make_user, bootstrapped, "tara")
    await start(client)
    forged = {"challenge": b64url(os.urandom(32))}
    body = await call(client, PASSWORDLESS, {"webauthn": key.get(forged)})
    assert body["response_errors"] == {"webauthn": UNIFORM}
    assert await whoami(client) is None


@pytest.mark.parametrize(
    "answer",
    [{"origin": "https://evil.example.com"}, {"rp_id": "evil.example.com"}, {"uv": False}],
    ids=["wrong_origin", "wrong_rp_id", "no_user_verification"],
)
async def test_assertion_for_another_relying_party_is_refused(
    client: Any,
    make_user: Any,
    bootstrapped: store.Store,
    passwordless: str,
    answer: dict[str, Any],
) -> None:
    _, key = await passkey_user(make_user, bootstrapped, "uma")
    body = await call(client, PASSWORDLESS, {"webauthn": key.get(await start(client), **answer)})
    assert body["response_errors"] == {"webauthn": UNIFORM}
    assert await whoami(client) is None


async def test_deactivated_user_unknown_credential_and_foreign_handle_fail_alike(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store, passwordless: str
) -> None:
    victim, victim_key = await passkey_user(make_user, bootstrapped, "vera")
    gone, gone_key = await passkey_user(make_user, bootstrapped, "walt")
    assert (await api("PATCH", f"core/users/{gone['pk']}/", json={"is_active": False}))[0] == 200
    stranger = SoftAuthenticator(ORIGIN)  # never registered
    stranger.user_handle = victim_key.user_handle
    _, mallory_key = await passkey_user(make_user, bootstrapped, "mallory")
    attempts = [
        (gone_key, {}),
        (stranger, {}),
        # Mallory's own credential claiming to be Vera's: the handle must be the credential's.
        (mallory_key, {"user_handle": victim_key.user_handle}),
    ]
    bodies = []
    for key, extra in attempts:
        answer = key.get(await start(client), **extra)
        body = await call(client, PASSWORDLESS, {"webauthn": answer})
        bodies.append({k: body[k] for k in ("component", "response_errors")})
    assert bodies == [{"component": VALIDATE, "response_errors": {"webauthn": UNIFORM}}] * 3
    assert await whoami(client) is None
    assert len(await events_of(api, "login_failed")) == 3
    assert victim["pk"]  # Vera's account was never logged in to
    assert await events_of(api, "login") == []


async def test_cloned_passkey_is_denied_and_reported(
    client: Any, api: Any, make_user: Any, bootstrapped: store.Store, passwordless: str
) -> None:
    _, key = await passkey_user(make_user, bootstrapped, "xena")
    assert (await call(client, PASSWORDLESS, {"webauthn": key.get(await start(client))}))[
        "component"
    ] == DONE
    body = await call(client, PASSWORDLESS, {"webauthn": key.get(await start(client), counter=1)})
    assert body["component"] == DENIED
    (event,) = await events_of(api, "suspicious_request")
    assert event["context"]["received_sign_count"] == 1


async def test_failed_passkeys_count_towards_the_login_throttle(
    client: Any, make_user: Any, bootstrapped: store.Store, passwordless: str
) -> None:
    _, key = await passkey_user(make_user, bootstrapped, "yuri")
    attacker = SoftAuthenticator(ORIGIN)
    for _ in range(4):  # per_ip is 4
        body = await call(client, PASSWORDLESS, {"webauthn": attacker.get(await start(client))})
        assert body["response_errors"] == {"webauthn": UNIFORM}
    # The address has used up its attempts: even a good passkey, and a password, are refused.
    body = await call(client, PASSWORDLESS, {"webauthn": key.get(await start(client))})
    assert body["component"] == DENIED and "Too many" in body["error_message"]
    client.session.cookie_jar.clear()
    await call(client, LOGIN)
    await call(client, LOGIN, {"uid_field": "akadmin"})
    body = await call(client, LOGIN, {"password": "whatever"})
    assert body["component"] == DENIED and "Too many" in body["error_message"]
    assert await whoami(client) is None


async def test_a_username_locked_by_password_guesses_refuses_its_passkey_unchecked(
    aiohttp_client: Any,
    make_settings: Callable[..., config.Settings],
    api: Any,
    make_user: Any,
    bootstrapped: store.Store,
    passwordless: str,
) -> None:
    """One wrong password uses up Una's attempts: her passkey is refused without being checked,
    and the address's attempt is taken back (else Vic's passkey would pass the limit of 2)."""
    throttle = {"per_ip": 2, "per_username": 1}
    settings = make_settings(web={"public_url": ORIGIN}, login_throttle=throttle)
    client = await aiohttp_client(app.create_app(settings, bootstrapped, run_tasks=False))
    _, una = await passkey_user(make_user, bootstrapped, "una")
    _, vic = await passkey_user(make_user, bootstrapped, "vic")
    await call(client, LOGIN)
    await call(client, LOGIN, {"uid_field": "una"})
    assert (await call(client, LOGIN, {"password": "guess"}))["component"] == "ak-stage-password"
    body = await call(client, PASSWORDLESS, {"webauthn": una.get(await start(client))})
    assert body["component"] == DENIED and "Too many" in body["error_message"]
    assert (await call(client, PASSWORDLESS, {"webauthn": vic.get(await start(client))}))[
        "component"
    ] == DONE
    (event,) = await events_of(api, "suspicious_request")
    assert event["context"]["reason"] == "too many failed logins"
    assert event["context"]["stage"] and "username" not in event["context"]
    assert [e["context"]["username"] for e in await events_of(api, "login_failed")] == ["una"]


async def test_concurrent_submissions_of_one_assertion_pass_once(
    client: Any, make_user: Any, bootstrapped: store.Store, passwordless: str
) -> None:
    _, key = await passkey_user(make_user, bootstrapped, "zoe", counter_step=0)
    assertion = key.get(await start(client))
    responses = await asyncio.gather(
        *(
            client.post(PASSWORDLESS, json={"webauthn": assertion}, headers=csrf_headers(client))
            for _ in range(4)
        )
    )
    bodies = [await r.json() for r in responses if r.status == 200]
    assert sum(b["component"] == DONE for b in bodies) == 1
