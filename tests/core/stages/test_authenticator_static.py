"""Static recovery codes: shown once at setup, stored as digests, each usable once at login."""

from __future__ import annotations

from typing import Any

from flowkit import call

from tessera.core.store import crud

LOGIN = "/api/v3/flows/executor/default-authentication-flow/"
SETUP = "/api/v3/flows/executor/default-authenticator-static-setup/"
PASSWORD = "pw-static-user-123"


async def _password(client: Any, username: str) -> dict[str, Any]:
    client.session.cookie_jar.clear()
    await call(client, LOGIN)
    await call(client, LOGIN, {"uid_field": username})
    return await call(client, LOGIN, {"password": PASSWORD})


async def _enrol(client: Any, api: Any, make_user: Any, username: str) -> list[str]:
    user = await make_user(username)
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": PASSWORD})
    assert (await _password(client, username))["component"] == "xak-flow-redirect"
    challenge = await call(client, SETUP)
    assert challenge["component"] == "ak-stage-authenticator-static"
    codes = list(challenge["codes"])
    assert len(codes) == 6 and all(len(c) == 12 for c in codes) and len(set(codes)) == 6
    assert (await call(client, SETUP, {}))["component"] == "xak-flow-redirect"
    return codes


async def test_each_code_logs_in_once(client: Any, api: Any, make_user: Any) -> None:
    codes = await _enrol(client, api, make_user, "rescue")
    body = await _password(client, "rescue")
    assert body["component"] == "ak-stage-authenticator-validate"
    assert [c["device_class"] for c in body["device_challenges"]] == ["static"]
    body = await call(client, LOGIN, {"code": codes[0]})
    assert body["component"] == "xak-flow-redirect"
    await _password(client, "rescue")
    body = await call(client, LOGIN, {"code": codes[0]})
    assert body["response_errors"] == {"code": [{"string": "Invalid Token", "code": "invalid"}]}
    body = await call(client, LOGIN, {"code": codes[1]})
    assert body["component"] == "xak-flow-redirect"


async def test_codes_are_stored_only_as_sealed_digests(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    codes = await _enrol(client, api, make_user, "digests")
    async with bootstrapped.read() as tx:
        rows = await crud.find_many(tx, "authenticator_devices", "kind", ["static"])
    assert len(rows) == 1 and rows[0]["confirmed"] is True
    assert not any(code in str(rows[0]) for code in codes)


async def test_rendering_again_replaces_the_codes(client: Any, api: Any, make_user: Any) -> None:
    user = await make_user("twice")
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": PASSWORD})
    await _password(client, "twice")
    first = (await call(client, SETUP))["codes"]
    second = (await call(client, SETUP))["codes"]
    assert set(first).isdisjoint(second)
    assert (await call(client, SETUP, {}))["component"] == "xak-flow-redirect"
    await _password(client, "twice")
    body = await call(client, LOGIN, {"code": first[0]})
    assert body["response_errors"]["code"][0]["string"] == "Invalid Token"
    assert (await call(client, LOGIN, {"code": second[0]}))["component"] == "xak-flow-redirect"


async def test_setup_flow_requires_login(client: Any) -> None:
    assert (await call(client, SETUP))["component"] == "ak-stage-access-denied"
