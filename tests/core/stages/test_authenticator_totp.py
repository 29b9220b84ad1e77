"""TOTP: set up through the default setup flow, then log in with password and a real code."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pyotp
from flowkit import call, make_flow
from helpers import SECRET_KEY

from tessera.core import crypto
from tessera.core.identity import devices
from tessera.core.store import crud

LOGIN = "/api/v3/flows/executor/default-authentication-flow/"
SETUP = "/api/v3/flows/executor/default-authenticator-totp-setup/"
PASSWORD = "pw-totp-user-123"


async def _password(client: Any, username: str) -> dict[str, Any]:
    """Start a fresh login and pass identification and password; the next challenge."""
    client.session.cookie_jar.clear()
    await call(client, LOGIN)
    await call(client, LOGIN, {"uid_field": username})
    return await call(client, LOGIN, {"password": PASSWORD})


async def _user(api: Any, make_user: Any, username: str) -> dict[str, Any]:
    user = await make_user(username)
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": PASSWORD})
    return dict(user)


async def _enrol(client: Any, username: str) -> pyotp.TOTP:
    """Log in (no device yet: the validate stage skips), set up TOTP; the app's generator."""
    assert (await _password(client, username))["component"] == "xak-flow-redirect"
    challenge = await call(client, SETUP)
    assert challenge["component"] == "ak-stage-authenticator-totp"
    assert "qr_code" not in challenge  # authentik's clients draw the QR code from config_url
    page = await (await client.get("/if/flow/default-authenticator-totp-setup/")).text()
    assert '<img class="qr" src="data:image/png;base64,' in page
    totp = pyotp.parse_uri(challenge["config_url"])
    assert isinstance(totp, pyotp.TOTP)
    assert totp.issuer == "authentik" and totp.name == username and totp.digits == 6
    done = await call(client, SETUP, {"code": totp.now()})
    assert done["component"] == "xak-flow-redirect"
    return totp


async def test_setup_then_password_and_totp_login(client: Any, api: Any, make_user: Any) -> None:
    await _user(api, make_user, "otto")
    totp = await _enrol(client, "otto")
    body = await _password(client, "otto")
    assert body["component"] == "ak-stage-authenticator-validate"
    assert [c["device_class"] for c in body["device_challenges"]] == ["totp"]
    # The setup used this step's code; the next step's is within the accepted drift.
    body = await call(client, LOGIN, {"code": totp.at(time.time() + 30)})
    assert body["component"] == "xak-flow-redirect"
    me = await (await client.get("/api/v3/core/users/me/")).json()
    assert me["user"]["username"] == "otto"
    _, events = await api("GET", "events/events/?action=login")
    methods = sorted(e["context"]["auth_method"] for e in events["results"])
    assert methods == ["auth_mfa", "password"]


async def test_replayed_code_is_refused(client: Any, api: Any, make_user: Any) -> None:
    await _user(api, make_user, "replay")
    totp = await _enrol(client, "replay")
    code = totp.at(time.time() + 30)
    await _password(client, "replay")
    assert (await call(client, LOGIN, {"code": code}))["component"] == "xak-flow-redirect"
    await _password(client, "replay")
    body = await call(client, LOGIN, {"code": code})
    assert body["response_errors"] == {"code": [{"string": "Invalid Token", "code": "invalid"}]}


async def test_concurrent_submissions_of_one_code_pass_once(
    client: Any, api: Any, make_user: Any
) -> None:
    await _user(api, make_user, "racer")
    totp = await _enrol(client, "racer")
    await _password(client, "racer")
    code = totp.at(time.time() + 30)
    responses = await asyncio.gather(*(client.post(LOGIN, json={"code": code}) for _ in range(4)))
    bodies = [await r.json() for r in responses if r.status == 200]
    assert sum(b["component"] == "xak-flow-redirect" for b in bodies) == 1


async def test_concurrent_verification_in_the_store_passes_once(
    bootstrapped: Any, make_user: Any
) -> None:
    user = await make_user("store-racer")
    keyring = crypto.Keyring(SECRET_KEY)
    async with bootstrapped.transaction() as tx:
        device = await devices.create_totp(tx, keyring, user["pk"], 6)
        await devices.confirm(tx, device["pk"])
    code = pyotp.TOTP(devices.secret(keyring, device)).now()

    async def attempt() -> bool:
        async with bootstrapped.transaction() as tx:
            return await devices.verify_totp(tx, keyring, device["pk"], code)

    assert sorted(await asyncio.gather(*(attempt() for _ in range(5)))) == [False] * 4 + [True]


async def test_code_from_two_steps_ago_is_refused(bootstrapped: Any, make_user: Any) -> None:
    user = await make_user("stale")
    keyring = crypto.Keyring(SECRET_KEY)
    async with bootstrapped.transaction() as tx:
        device = await devices.create_totp(tx, keyring, user["pk"], 8)
    totp = pyotp.TOTP(devices.secret(keyring, device), digits=8)
    now = 1_700_000_000.0  # a step boundary plus 20 s
    async with bootstrapped.transaction() as tx:
        assert not await devices.verify_totp(tx, keyring, device["pk"], totp.at(now - 60), now)
        assert not await devices.verify_totp(tx, keyring, device["pk"], totp.at(now + 60), now)
        assert await devices.verify_totp(tx, keyring, device["pk"], totp.at(now - 30), now)
        # An older step than the last one used, though within the drift, is a replay too.
        assert not await devices.verify_totp(tx, keyring, device["pk"], totp.at(now - 30), now)


async def test_wrong_code_is_an_error_and_a_login_failed_event(
    client: Any, api: Any, make_user: Any
) -> None:
    await _user(api, make_user, "wrong")
    totp = await _enrol(client, "wrong")
    await _password(client, "wrong")
    bad = str((int(totp.at(time.time() + 30)) + 1) % 1_000_000).zfill(6)
    body = await call(client, LOGIN, {"code": bad})
    assert body["component"] == "ak-stage-authenticator-validate"
    assert body["response_errors"] == {"code": [{"string": "Invalid Token", "code": "invalid"}]}
    _, events = await api("GET", "events/events/?action=login_failed")
    assert events["pagination"]["count"] == 1 and bad not in str(events)
    for _ in range(4):
        body = await call(client, LOGIN, {"code": "000000x"})
    assert body["component"] == "ak-stage-access-denied"


async def test_secret_is_not_stored_in_clear(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    user = await _user(api, make_user, "sealed")
    totp = await _enrol(client, "sealed")
    async with bootstrapped.read() as tx:
        row = await crud.get(tx, "authenticator_devices", user_pk=user["pk"])
    assert row["confirmed"] is True and row["kind"] == "totp"
    assert totp.secret not in str(row).upper()


async def test_setup_flow_requires_login(client: Any) -> None:
    body = await call(client, SETUP)
    assert body["component"] == "ak-stage-access-denied"


async def test_an_identified_but_unauthenticated_user_cannot_enrol(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    await _user(api, make_user, "victim")
    await make_flow(
        bootstrapped, "sneaky-setup", [("identification", {}), ("authenticator_totp", {})]
    )
    path = "/api/v3/flows/executor/sneaky-setup/"
    await call(client, path)
    body = await call(client, path, {"uid_field": "victim"})
    assert body["component"] == "ak-stage-access-denied"
    async with bootstrapped.read() as tx:
        assert not await crud.exists(tx, "authenticator_devices", kind="totp")
