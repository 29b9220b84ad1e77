"""`/api/v3/authenticators/`: a user's own devices (list, show, rename, delete) and the admin's
view of everyone's; another user's device is 404, secrets are never returned, unsafe session
calls need the CSRF header, deletions are audited as the portal's are."""

from __future__ import annotations

import json
from typing import Any

from flowkit import log_in_as
from helpers import SECRET_KEY

from tessera.core import identity
from tessera.core.crypto import Keyring, webauthn
from tessera.core.identity import devices
from tessera.core.store import crud

API = Any
KEYRING = Keyring(SECRET_KEY)
CODES = ["aaaa1111", "bbbb2222"]
PUBLIC_KEY = "pQECAyYgASFYIPublicKeyMaterialForTheTest"


async def _devices(db: Any, username: str) -> dict[str, dict[str, Any]]:
    """A confirmed TOTP, static and WebAuthn device for `username`, by kind."""
    async with db.transaction() as tx:
        user = await identity.users.find_by_username(tx, username)
        assert user is not None
        totp = await devices.create_totp(tx, KEYRING, user["pk"], 6)
        totp = await devices.confirm(tx, totp["pk"], f"{username}'s phone")
        static = await devices.create_static(tx, KEYRING, user["pk"])
        await devices.set_static_codes(tx, KEYRING, static, CODES)
        static = await devices.confirm(tx, static["pk"], f"{username}'s codes")
        credential = webauthn.Registered(
            credential_id=f"cred-{username}",
            public_key=PUBLIC_KEY,
            sign_count=0,
            aaguid="00000000-0000-0000-0000-000000000000",
            user_verified=True,
            device_type="single_device",
            backed_up=False,
        )
        key = await devices.create_webauthn(tx, KEYRING, user["pk"], credential, f"{username} key")
        assert key is not None
    return {"totp": totp, "static": static, "webauthn": key}


async def _as(client: Any, key: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    response = await client.request(
        method, f"/api/v3/{path}", headers={"Authorization": f"Bearer {key}"}, **kwargs
    )
    text = await response.text()
    return response.status, json.loads(text) if text else None


async def _stamps(client: Any, key: str, device: dict[str, Any]) -> dict[str, Any]:
    """`device` as `all/` shows it (the one listing with created, last_updated, last_used)."""
    _, body = await _as(client, key, "GET", "authenticators/all/")
    return next(d for d in body if d["pk"] == str(device["num_pk"]))


def _static_devices(seen: list[tuple[int, Any]]) -> list[dict[str, Any]]:
    found = []
    for _, body in seen:
        for item in body["results"] if isinstance(body, dict) and "results" in body else [body]:
            if isinstance(item, dict) and "token_set" in item:
                found.append(item)
    return found


async def _user_and_devices(
    make_user: Any, make_token: Any, db: Any, name: str
) -> tuple[dict[str, Any], str, dict[str, dict[str, Any]]]:
    user = await make_user(name)
    key = await make_token(name, expiring=False)
    return user, key, await _devices(db, name)


async def test_all_lists_only_my_devices_in_authentiks_shape(
    client: Any, make_user: Any, make_token: Any, bootstrapped: Any
) -> None:
    _, key, mine = await _user_and_devices(make_user, make_token, bootstrapped, "alice")
    await _user_and_devices(make_user, make_token, bootstrapped, "bob")
    status, body = await _as(client, key, "GET", "authenticators/all/")
    assert status == 200 and isinstance(body, list)
    assert sorted(d["pk"] for d in body) == sorted(str(d["num_pk"]) for d in mine.values())
    totp = next(d for d in body if d["pk"] == str(mine["totp"]["num_pk"]))
    assert totp == {
        "name": "alice's phone",
        "pk": str(mine["totp"]["num_pk"]),
        "type": "authentik_stages_authenticator_totp.TOTPDevice",
        "confirmed": True,
        "created": totp["created"],
        "last_updated": totp["last_updated"],
        "last_used": None,
        "meta_model_name": "authentik_stages_authenticator_totp.totpdevice",
        "verbose_name": "TOTP Device",
        "verbose_name_plural": "TOTP Devices",
        "extra_description": None,
        "external_id": None,
    }
    assert {d["verbose_name"] for d in body} == {"TOTP Device", "Static Device", "WebAuthn Device"}


async def test_no_secret_is_ever_returned(
    client: Any, make_user: Any, make_token: Any, bootstrapped: Any, api: API
) -> None:
    _, key, mine = await _user_and_devices(make_user, make_token, bootstrapped, "carol")
    seed = devices.secret(KEYRING, mine["totp"])
    seen = [await _as(client, key, "GET", "authenticators/all/")]
    for kind, device in mine.items():
        seen.append(await _as(client, key, "GET", f"authenticators/{kind}/"))
        seen.append(await _as(client, key, "GET", f"authenticators/{kind}/{device['num_pk']}/"))
        seen.append(await api("GET", f"authenticators/admin/{kind}/"))
    text = json.dumps(seen)
    assert all(status == 200 for status, _ in seen)
    for secret in (seed, PUBLIC_KEY, *CODES, *(KEYRING.digest(code) for code in CODES)):
        assert secret not in text
    assert "secret" not in text
    # authentik lists static codes in `token_set`; Tessera has only their digests.
    assert _static_devices(seen) and all(d["token_set"] == [] for d in _static_devices(seen))


async def test_list_retrieve_rename_delete_my_own(
    client: Any, make_user: Any, make_token: Any, bootstrapped: Any, api: API
) -> None:
    _, key, mine = await _user_and_devices(make_user, make_token, bootstrapped, "dave")
    for kind, device in mine.items():
        status, page = await _as(client, key, "GET", f"authenticators/{kind}/")
        assert status == 200 and [d["pk"] for d in page["results"]] == [device["num_pk"]]
        assert page["results"][0]["user"]["username"] == "dave"
        path = f"authenticators/{kind}/{device['num_pk']}/"
        listed = await _stamps(client, key, device)
        assert listed["last_updated"] >= listed["created"] and listed["last_used"] is None
        status, renamed = await _as(client, key, "PATCH", path, json={"name": f"new {kind}"})
        assert status == 200 and renamed["name"] == f"new {kind}"
        # A rename is a change: last_updated moves, created and last_used do not.
        stamps = await _stamps(client, key, device)
        assert stamps["created"] == listed["created"] and stamps["last_used"] is None
        assert stamps["last_updated"] > listed["last_updated"]
        status, _ = await _as(client, key, "DELETE", path)
        assert status == 204
        status, _ = await _as(client, key, "GET", path)
        assert status == 404
    status, body = await _as(client, key, "GET", "authenticators/all/")
    assert body == []
    _, events = await api("GET", "events/events/?action=model_deleted")
    models = [e["context"]["model"] for e in events["results"]]
    assert {(m["app"], m["model_name"], m["pk"]) for m in models} == {
        (devices.MODELS[k].app, devices.MODELS[k].model_name, d["pk"]) for k, d in mine.items()
    }
    assert all(e["user"]["username"] == "dave" for e in events["results"])


async def test_idor_another_users_device_is_404_and_untouched(
    client: Any, make_user: Any, make_token: Any, bootstrapped: Any
) -> None:
    _, mallory, _ = await _user_and_devices(make_user, make_token, bootstrapped, "mallory")
    _, _, victim = await _user_and_devices(make_user, make_token, bootstrapped, "victim")
    for kind, device in victim.items():
        path = f"authenticators/{kind}/{device['num_pk']}/"
        assert (await _as(client, mallory, "GET", path))[0] == 404
        assert (await _as(client, mallory, "PATCH", path, json={"name": "pwned"}))[0] == 404
        assert (await _as(client, mallory, "DELETE", path))[0] == 404
        _, page = await _as(client, mallory, "GET", f"authenticators/{kind}/?name={device['name']}")
        assert page["results"] == []
    async with bootstrapped.read() as tx:
        for device in victim.values():
            row = await crud.find(tx, devices.TABLE, pk=device["pk"])
            assert row is not None and row["name"] == device["name"]


async def test_idor_a_device_of_another_kind_is_404(
    client: Any, make_user: Any, make_token: Any, bootstrapped: Any
) -> None:
    _, key, mine = await _user_and_devices(make_user, make_token, bootstrapped, "erin")
    path = f"authenticators/static/{mine['totp']['num_pk']}/"
    assert (await _as(client, key, "DELETE", path))[0] == 404


async def test_only_the_name_can_change(
    client: Any, make_user: Any, make_token: Any, bootstrapped: Any
) -> None:
    user, key, mine = await _user_and_devices(make_user, make_token, bootstrapped, "frank")
    other = await make_user("grace")
    path = f"authenticators/totp/{mine['totp']['num_pk']}/"
    # `user` is read-only: sent back (as a GET returned it, or with another user) it is ignored.
    status, device = await _as(client, key, "PATCH", path, json={"user": other["pk"]})
    assert status == 200 and device["user"]["pk"] == user["pk"]
    for body in (
        {"confirmed": False},
        {"name": ""},
        {"name": "x" * 65},
        {"name": "a\x00b"},
        [1],
    ):
        status, errors = await _as(client, key, "PATCH", path, json=body)
        assert status == 400, (body, errors)
    assert (await _as(client, key, "PUT", path, json={"name": "x"}))[0] == 405
    assert (await _as(client, key, "POST", "authenticators/totp/", json={"name": "x"}))[0] == 405
    async with bootstrapped.read() as tx:
        row = await crud.find(tx, devices.TABLE, pk=mine["totp"]["pk"])
    assert row is not None and row["user_pk"] == user["pk"] and row["confirmed"]


async def test_unauthenticated_is_401_and_non_superuser_admin_is_403(
    client: Any, make_user: Any, make_token: Any, bootstrapped: Any
) -> None:
    _, key, mine = await _user_and_devices(make_user, make_token, bootstrapped, "heidi")
    for path in ("authenticators/all/", "authenticators/totp/", "authenticators/webauthn/"):
        assert (await client.get(f"/api/v3/{path}")).status == 401
    pk = mine["totp"]["num_pk"]
    assert (await client.delete(f"/api/v3/authenticators/totp/{pk}/")).status == 401
    for path in ("admin/totp/", "admin/static/", f"admin/totp/{pk}/"):
        assert (await _as(client, key, "GET", f"authenticators/{path}"))[0] == 403
    assert (await _as(client, key, "DELETE", f"authenticators/admin/totp/{pk}/"))[0] == 403


async def test_session_delete_needs_the_csrf_header(
    client: Any, bootstrapped: Any, make_user: Any
) -> None:
    await make_user("ivan")
    mine = await _devices(bootstrapped, "ivan")
    await log_in_as(client, bootstrapped, "ivan")
    path = f"/api/v3/authenticators/totp/{mine['totp']['num_pk']}/"
    assert (await client.get("/api/v3/authenticators/all/")).status == 200
    assert (await client.delete(path)).status == 403
    assert (await client.delete(path, headers={"X-authentik-CSRF": "forged"})).status == 403
    assert (await client.patch(path, json={"name": "n"})).status == 403
    csrf = next(c.value for c in client.session.cookie_jar if c.key == "authentik_csrf")
    assert (await client.delete(path, headers={"X-authentik-CSRF": csrf})).status == 204


async def test_admin_lists_by_user_retrieves_and_deletes(
    api: API, make_user: Any, make_token: Any, bootstrapped: Any
) -> None:
    judy, _, judys = await _user_and_devices(make_user, make_token, bootstrapped, "judy")
    await _user_and_devices(make_user, make_token, bootstrapped, "karl")
    status, page = await api("GET", "authenticators/admin/totp/")
    assert status == 200 and page["pagination"]["count"] == 2
    status, page = await api("GET", f"authenticators/admin/webauthn/?user={judy['pk']}")
    assert [d["pk"] for d in page["results"]] == [judys["webauthn"]["num_pk"]]
    assert page["results"][0]["aaguid"] == "00000000-0000-0000-0000-000000000000"
    status, _ = await api("GET", "authenticators/admin/totp/?user=notanumber")
    assert status == 400
    pk = judys["static"]["num_pk"]
    status, one = await api("GET", f"authenticators/admin/static/{pk}/")
    assert status == 200 and one["user"]["username"] == "judy"
    assert (await api("GET", f"authenticators/admin/totp/{pk}/"))[0] == 404
    assert (await api("DELETE", f"authenticators/admin/static/{pk}/"))[0] == 204
    assert (await api("GET", f"authenticators/admin/static/{pk}/"))[0] == 404
    _, events = await api("GET", "events/events/?action=model_deleted")
    [event] = events["results"]
    assert event["context"]["model"] == devices.model_ref(judys["static"])
    assert event["user"]["username"] == "akadmin"


async def test_a_device_id_beyond_the_column_is_404_not_a_server_error(
    client: Any, api: Any, make_user: Any, make_token: Any, bootstrapped: Any
) -> None:
    _, key, _ = await _user_and_devices(make_user, make_token, bootstrapped, "ivan")
    for kind in ("static", "totp", "webauthn"):
        for number in ("2147483648", "247815171137", "-2147483649"):
            path = f"authenticators/{kind}/{number}/"
            for method in ("GET", "PATCH", "DELETE"):
                body = {"json": {"name": "x"}} if method == "PATCH" else {}
                assert (await _as(client, key, method, path, **body))[0] == 404, (method, path)
            status, _ = await api("GET", f"authenticators/admin/{kind}/{number}/")
            assert status == 404, path
