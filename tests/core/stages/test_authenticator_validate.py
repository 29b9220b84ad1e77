"""The validate stage's decisions: skip or deny without a device, threshold, first factor first."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pyotp
from flowkit import make_flow
from helpers import SECRET_KEY
from mfakit import PASSWORD, mfa_flow, up_to_second_factor, user_with_password

from tessera.core import crypto
from tessera.core.identity import devices, util
from tessera.core.stages.authenticator_validate import MFA_COOKIE
from tessera.core.store import crud


async def _call(client: Any, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = await (client.get(path) if body is None else client.post(path, json=body))
    assert response.status == 200
    return dict(await response.json())


_flow, _user, _password = mfa_flow, user_with_password, up_to_second_factor


async def _totp(db: Any, user_pk: int, *, used: bool = False) -> pyotp.TOTP:
    keyring = crypto.Keyring(SECRET_KEY)
    async with db.transaction() as tx:
        device = await devices.create_totp(tx, keyring, user_pk, 6)
        await devices.confirm(tx, device["pk"])
        if used:
            await crud.update(
                tx, "authenticator_devices", {"pk": device["pk"]}, {"last_used": util.now()}
            )
    return pyotp.TOTP(devices.secret(keyring, device))


async def test_no_device_skips_by_default(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    await _user(api, make_user, "plain")
    path = await _flow(bootstrapped, "mfa-skip")
    assert (await _password(client, path, "plain"))["component"] == "xak-flow-redirect"


async def test_no_device_denies_when_required(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    await _user(api, make_user, "required")
    for action in ("deny", "configure"):
        path = await _flow(bootstrapped, f"mfa-{action}", not_configured_action=action)
        body = await _password(client, path, "required")
        assert body["component"] == "ak-stage-access-denied"
        assert "Two-factor authentication is required" in body["error_message"]
    assert (await client.get("/api/v3/core/users/me/")).status == 401


async def test_unconfirmed_or_unlisted_devices_do_not_count(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    user = await _user(api, make_user, "half")
    async with bootstrapped.transaction() as tx:
        await devices.create_totp(tx, crypto.Keyring(SECRET_KEY), user["pk"], 6)  # unconfirmed
    path = await _flow(bootstrapped, "mfa-half", not_configured_action="deny")
    assert (await _password(client, path, "half"))["component"] == "ak-stage-access-denied"
    await _totp(bootstrapped, user["pk"])
    path = await _flow(bootstrapped, "mfa-static-only", device_classes=["static"])
    assert (await _password(client, path, "half"))["component"] == "xak-flow-redirect"


async def test_challenge_shape_and_login(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    user = await _user(api, make_user, "shape")
    totp = await _totp(bootstrapped, user["pk"])
    path = await _flow(bootstrapped, "mfa-shape")
    body = await _password(client, path, "shape")
    assert body["component"] == "ak-stage-authenticator-validate"
    assert body["configuration_stages"] == [] and body["pending_user"] == "shape"
    (entry,) = body["device_challenges"]
    assert entry["device_class"] == "totp" and entry["challenge"] == {}
    assert entry["last_used"] is None
    selected = {"selected_challenge": entry}
    assert (await _call(client, path, selected))["response_errors"] == {}
    body = await _call(client, path, {"code": totp.now(), **selected})
    assert body["component"] == "xak-flow-redirect"


def _mfa_cookie(client: Any) -> str:
    found = [c.value for c in client.session.cookie_jar if c.key == MFA_COOKIE]
    return found[0] if found else ""


async def _again(client: Any, path: str, username: str, mfa_cookie: str) -> dict[str, Any]:
    """A new login in a browser that kept only its `authentik_mfa` cookie."""
    client.session.cookie_jar.clear()
    if mfa_cookie:
        client.session.cookie_jar.update_cookies({MFA_COOKIE: mfa_cookie})
    await _call(client, path)
    await _call(client, path, {"uid_field": username})
    return await _call(client, path, {"password": PASSWORD})


async def test_this_browser_skips_the_stage_within_the_threshold(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    user = await _user(api, make_user, "recent")
    totp = await _totp(bootstrapped, user["pk"])
    path = await _flow(bootstrapped, "mfa-recent", last_auth_threshold=300)
    assert (await _password(client, path, "recent"))["component"] == (
        "ak-stage-authenticator-validate"
    )
    assert (await _call(client, path, {"code": totp.now()}))["component"] == "xak-flow-redirect"
    cookie = _mfa_cookie(client)
    assert cookie
    morsel = next(c for c in client.session.cookie_jar if c.key == MFA_COOKIE)
    assert morsel["httponly"] and int(morsel["max-age"]) == 300
    assert (await _again(client, path, "recent", cookie))["component"] == "xak-flow-redirect"
    # Another flow's validate stage does not accept this stage's cookie.
    other = await _flow(bootstrapped, "mfa-other", last_auth_threshold=300)
    assert (await _again(client, other, "recent", cookie))["component"] == (
        "ak-stage-authenticator-validate"
    )


async def test_a_recent_login_elsewhere_does_not_skip_the_stage(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    """Knowing the password is not enough because the victim passed MFA in their own browser."""
    user = await _user(api, make_user, "victim")
    await _totp(bootstrapped, user["pk"], used=True)  # used a moment ago, somewhere
    path = await _flow(bootstrapped, "mfa-elsewhere", last_auth_threshold=3600)
    body = await _password(client, path, "victim")  # a fresh browser
    assert body["component"] == "ak-stage-authenticator-validate"
    assert (await client.get("/api/v3/core/users/me/")).status == 401


async def test_a_cookie_of_another_user_or_tampered_does_not_skip(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    alice = await _user(api, make_user, "alice")
    bob = await _user(api, make_user, "bob")
    alice_totp = await _totp(bootstrapped, alice["pk"])
    await _totp(bootstrapped, bob["pk"])
    path = await _flow(bootstrapped, "mfa-users", last_auth_threshold=300)
    await _password(client, path, "alice")
    assert (await _call(client, path, {"code": alice_totp.now()}))["component"] == (
        "xak-flow-redirect"
    )
    cookie = _mfa_cookie(client)
    for username, value in (
        ("bob", cookie),  # alice's cookie, bob's password
        ("alice", cookie[:-4] + ("AAAA" if not cookie.endswith("AAAA") else "BBBB")),
        ("alice", "v1:" + "A" * 80),
        ("alice", "x" * 5000),
    ):
        body = await _again(client, path, username, value)
        assert body["component"] == "ak-stage-authenticator-validate", (username, value[:20])


async def test_without_a_threshold_no_cookie_is_set(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    user = await _user(api, make_user, "always")
    totp = await _totp(bootstrapped, user["pk"])
    path = await _flow(bootstrapped, "mfa-always")
    await _password(client, path, "always")
    assert (await _call(client, path, {"code": totp.now()}))["component"] == "xak-flow-redirect"
    assert _mfa_cookie(client) == ""


async def test_without_a_first_factor_the_stage_denies(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    user = await _user(api, make_user, "nofirst")
    totp = await _totp(bootstrapped, user["pk"])
    await make_flow(
        bootstrapped,
        "mfa-only",
        [("identification", {}), ("authenticator_validate", {}), ("user_login", {})],
    )
    path = "/api/v3/flows/executor/mfa-only/"
    await _call(client, path)
    body = await _call(client, path, {"uid_field": "nofirst"})
    assert body["component"] == "ak-stage-access-denied"
    await _call(client, path, {"code": totp.at(time.time())})
    assert (await client.get("/api/v3/core/users/me/")).status == 401


async def test_code_guessing_is_throttled_per_user_across_flows(
    aiohttp_client: Any, make_settings: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    from tessera.core import app

    settings = make_settings(
        login_throttle={"per_username": 3, "per_ip": 100, "window_seconds": 60}
    )
    client = await aiohttp_client(app.create_app(settings, bootstrapped, run_tasks=False))
    user = await _user(api, make_user, "guessed")
    totp = await _totp(bootstrapped, user["pk"])
    path = await _flow(bootstrapped, "mfa-throttle")
    for _ in range(3):  # a fresh flow each time: the per-flow limit never trips
        await _password(client, path, "guessed")
        body = await _call(client, path, {"code": "12345x"})
        assert body["response_errors"]["code"][0]["string"] == "Invalid Token"
    await _password(client, path, "guessed")
    body = await _call(client, path, {"code": totp.now()})  # even the right code now
    assert body["component"] == "ak-stage-access-denied"
    assert "Too many" in body["error_message"]


async def test_parallel_guesses_are_all_counted_by_the_throttle(
    aiohttp_client: Any, make_settings: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    from tessera.core import app

    settings = make_settings(
        login_throttle={"per_username": 3, "per_ip": 100, "window_seconds": 60}
    )
    client = await aiohttp_client(app.create_app(settings, bootstrapped, run_tasks=False))
    user = await _user(api, make_user, "burst")
    await _totp(bootstrapped, user["pk"])
    path = await _flow(bootstrapped, "mfa-burst")
    await _password(client, path, "burst")
    guesses = [str(n).zfill(6) for n in range(8)]
    replies = await asyncio.gather(*(client.post(path, json={"code": g}) for g in guesses))
    bodies = [await r.json() for r in replies]
    tried = [b for b in bodies if b.get("response_errors", {}).get("code")]
    assert len(tried) == 3
    _, events = await api("GET", "events/events/?action=login_failed")
    assert events["pagination"]["count"] == 3


async def test_long_static_codes_are_accepted(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    user = await _user(api, make_user, "longcode")
    keyring = crypto.Keyring(SECRET_KEY)
    code = "x" * devices.MAX_CODE_LENGTH
    async with bootstrapped.transaction() as tx:
        device = await devices.create_static(tx, keyring, user["pk"])
        await devices.set_static_codes(tx, keyring, device, [code])
        await devices.confirm(tx, device["pk"])
    path = await _flow(bootstrapped, "mfa-long")
    await _password(client, path, "longcode")
    assert (await _call(client, path, {"code": code}))["component"] == "xak-flow-redirect"
