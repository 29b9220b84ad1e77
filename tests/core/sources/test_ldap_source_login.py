"""Password login of synced users through a real flow, the password stage's LDAPBackend binding
to the directory: the directory's password logs in, one changed there works at once (and the old
one stops), the login throttle applies as for local users, a disabled source logs nobody in,
`password_login_update_internal_password` stores the password locally, and with
`sync_users_password` a password set in Tessera is written back to the directory."""

from __future__ import annotations

from typing import Any

import ldap3
import pytest
import slapdkit
from flowkit import call, make_flow
from ldapsourcekit import add_person, root_connection, run_sync

from tessera.core import app, store
from tessera.core.store import crud

FLOW = "/api/v3/flows/executor/ldap-login/"
LDAP = "authentik.sources.ldap.auth.LDAPBackend"
INBUILT = "authentik.core.auth.InbuiltBackend"
REDIRECT = "xak-flow-redirect"


async def _flow(db: store.Store, backends: list[str], slug: str = "ldap-login") -> None:
    await make_flow(
        db,
        slug,
        [
            ("identification", {"user_fields": ["username"]}),
            ("password", {"backends": backends}),
            ("user_login", {}),
        ],
    )


async def _login(client: Any, username: str, password: str, path: str = FLOW) -> dict[str, Any]:
    client.session.cookie_jar.clear()
    await call(client, path)
    await call(client, path, {"uid_field": username})
    return await call(client, path, {"password": password})


def _binds(slapd: slapdkit.Slapd, dn: str, password: str) -> bool:
    server = ldap3.Server("127.0.0.1", port=slapd.port, get_info=ldap3.NONE)
    connection = ldap3.Connection(server, dn, password)
    ok = bool(connection.bind())
    connection.unbind()
    return ok


@pytest.fixture
async def synced(
    api: Any, make_source: Any, bootstrapped: store.Store, slapd: Any, scratch_ou: str
) -> dict[str, Any]:
    """A source over this test's own OU holding `lena`, synced, and the login flow."""
    dn = add_person(slapd, scratch_ou, "lena", "lena-pw-1")
    await make_source(additional_user_dn=f"ou={scratch_ou}", sync_groups=False)
    await run_sync(api, "corp")
    await _flow(bootstrapped, [INBUILT, LDAP])
    return {"dn": dn}


async def test_the_directory_password_logs_in(client: Any, synced: dict[str, Any]) -> None:
    assert (await _login(client, "lena", "lena-pw-1"))["component"] == REDIRECT
    assert (await _login(client, "lena", "wrong-pw"))["component"] == "ak-stage-password"
    assert (await _login(client, "lena", ""))["component"] == "ak-stage-password"


async def test_the_default_authentication_flow_asks_the_directory(
    client: Any, synced: dict[str, Any]
) -> None:
    """A synced user logs in through the brand's default flow as soon as a sync ran: its
    password stage has the LDAP backend, as authentik's default does."""
    path = "/api/v3/flows/executor/default-authentication-flow/"
    answer = await _login(client, "lena", "lena-pw-1", path)
    assert answer["component"] == REDIRECT, answer
    assert (await _login(client, "lena", "wrong-pw", path))["component"] != REDIRECT


async def test_a_password_changed_in_the_directory_works_at_once(
    client: Any, synced: dict[str, Any], slapd: Any
) -> None:
    connection = root_connection(slapd)
    assert connection.extend.standard.modify_password(synced["dn"], None, "lena-pw-2")
    connection.unbind()
    assert (await _login(client, "lena", "lena-pw-2"))["component"] == REDIRECT
    assert (await _login(client, "lena", "lena-pw-1"))["component"] == "ak-stage-password"


async def test_a_moved_entry_still_logs_in(
    client: Any, synced: dict[str, Any], slapd: Any, scratch_ou: str
) -> None:
    connection = root_connection(slapd)
    assert connection.modify_dn(synced["dn"], "uid=lena-moved"), connection.result
    connection.unbind()
    # The DN the source saw is gone; the entry is found again by its entryUUID.
    assert (await _login(client, "lena", "lena-pw-1"))["component"] == REDIRECT


async def test_without_the_ldap_backend_the_directory_is_not_asked(
    client: Any, synced: dict[str, Any], bootstrapped: store.Store
) -> None:
    await _flow(bootstrapped, [INBUILT], slug="local-only")
    body = await _login(client, "lena", "lena-pw-1", "/api/v3/flows/executor/local-only/")
    assert body["component"] == "ak-stage-password"


async def test_a_disabled_source_logs_nobody_in(
    client: Any, api: Any, synced: dict[str, Any]
) -> None:
    assert (await api("PATCH", "sources/ldap/corp/", json={"enabled": False}))[0] == 200
    assert (await _login(client, "lena", "lena-pw-1"))["component"] == "ak-stage-password"


async def test_the_login_throttle_applies_to_directory_logins(
    aiohttp_client: Any, make_settings: Any, synced: dict[str, Any], bootstrapped: store.Store
) -> None:
    settings = make_settings(login_throttle={"per_ip": 100, "per_username": 2})
    client = await aiohttp_client(app.create_app(settings, bootstrapped, run_tasks=False))
    for _ in range(2):
        assert (await _login(client, "lena", "guess"))["component"] == "ak-stage-password"
    body = await _login(client, "lena", "lena-pw-1")
    assert body["component"] == "ak-stage-access-denied" and "Too many" in body["error_message"]


async def test_a_login_can_update_the_internal_password(
    client: Any, api: Any, synced: dict[str, Any], bootstrapped: store.Store
) -> None:
    body = {"password_login_update_internal_password": True}
    assert (await api("PATCH", "sources/ldap/corp/", json=body))[0] == 200
    assert (await _login(client, "lena", "lena-pw-1"))["component"] == REDIRECT
    await _flow(bootstrapped, [INBUILT], slug="local-only")
    local = await _login(client, "lena", "lena-pw-1", "/api/v3/flows/executor/local-only/")
    assert local["component"] == REDIRECT


async def test_a_password_set_in_tessera_is_written_back(
    client: Any, api: Any, synced: dict[str, Any], slapd: Any, bootstrapped: store.Store
) -> None:
    assert (await api("PATCH", "sources/ldap/corp/", json={"sync_users_password": True}))[0] == 200
    _, page = await api("GET", "core/users/?username=lena")
    (lena,) = page["results"]
    path = f"core/users/{lena['pk']}/set_password/"
    assert (await api("POST", path, json={"password": "lena-new-pw-3"}))[0] == 204
    assert _binds(slapd, synced["dn"], "lena-new-pw-3")
    assert not _binds(slapd, synced["dn"], "lena-pw-1")
    assert (await _login(client, "lena", "lena-new-pw-3"))["component"] == REDIRECT
    # No local copy was kept: once IT resets the password in the directory, the one set here
    # stops working at once.
    connection = root_connection(slapd)
    assert connection.extend.standard.modify_password(synced["dn"], None, "lena-reset-pw-4")
    connection.unbind()
    assert (await _login(client, "lena", "lena-new-pw-3"))["component"] == "ak-stage-password"
    assert (await _login(client, "lena", "lena-reset-pw-4"))["component"] == REDIRECT


async def test_a_refused_write_back_stops_the_change(
    api: Any, synced: dict[str, Any], slapd: Any, scratch_ou: str
) -> None:
    # The source binds as a user who may not write other users' passwords.
    reader = add_person(slapd, scratch_ou, "reader", "r-pw-1")
    body = {"sync_users_password": True, "bind_cn": reader, "bind_password": "r-pw-1"}
    assert (await api("PATCH", "sources/ldap/corp/", json=body))[0] == 200
    _, page = await api("GET", "core/users/?username=lena")
    (lena,) = page["results"]
    status, answer = await api(
        "POST", f"core/users/{lena['pk']}/set_password/", json={"password": "lena-new-pw-4"}
    )
    assert status == 400 and "password" in answer, answer
    assert _binds(slapd, synced["dn"], "lena-pw-1")


async def test_the_password_change_flow_writes_back(
    client: Any, api: Any, synced: dict[str, Any], slapd: Any, bootstrapped: store.Store
) -> None:
    assert (await api("PATCH", "sources/ldap/corp/", json={"sync_users_password": True}))[0] == 200
    assert (await _login(client, "lena", "lena-pw-1"))["component"] == REDIRECT
    change = "/api/v3/flows/executor/default-password-change/"
    assert (await call(client, change))["component"] == "ak-stage-prompt"
    new = {"password": "lena-flow-pw-5", "password_repeat": "lena-flow-pw-5"}
    assert (await call(client, change, new))["component"] == REDIRECT
    assert _binds(slapd, synced["dn"], "lena-flow-pw-5")
    assert (await _login(client, "lena", "lena-flow-pw-5"))["component"] == REDIRECT
    async with bootstrapped.read() as tx:
        assert (await crud.get(tx, "users", username="lena"))["password"] == ""


async def test_a_refused_change_in_the_flow_is_shown_on_the_prompt(
    client: Any, api: Any, synced: dict[str, Any], slapd: Any, scratch_ou: str
) -> None:
    reader = add_person(slapd, scratch_ou, "reader", "r-pw-1")
    body = {"sync_users_password": True, "bind_cn": reader, "bind_password": "r-pw-1"}
    assert (await api("PATCH", "sources/ldap/corp/", json=body))[0] == 200
    assert (await _login(client, "lena", "lena-pw-1"))["component"] == REDIRECT
    change = "/api/v3/flows/executor/default-password-change/"
    await call(client, change)
    new = {"password": "lena-flow-pw-6", "password_repeat": "lena-flow-pw-6"}
    answer = await call(client, change, new)
    assert answer["component"] == "ak-stage-prompt" and "password" in answer["response_errors"]
    assert _binds(slapd, synced["dn"], "lena-pw-1")
