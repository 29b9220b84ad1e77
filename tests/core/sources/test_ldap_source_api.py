"""`/api/v3/sources/ldap/`, `/api/v3/propertymappings/source/ldap/` and `/api/v3/sources/all/`:
authentik's shapes, the bind password sealed at rest and never answered (nor kept in logs or
events), validation of hostile or inconsistent settings, and the system mappings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tessera.core import store
from tessera.core.store import crud

CANARY = "canary-bind-secret-7f3a"


async def test_bind_password_is_sealed_and_never_answered(
    api: Any, make_source: Any, bootstrapped: store.Store, caplog: pytest.LogCaptureFixture
) -> None:
    created = await make_source(bind_password=CANARY)
    assert "bind_password" not in created and created["component"] == "ak-source-ldap-form"
    assert created["meta_model_name"] == "authentik_sources_ldap.ldapsource"
    status, listed = await api("GET", "sources/ldap/")
    status, one = await api("GET", "sources/ldap/corp/")
    assert status == 200 and one["slug"] == "corp"
    async with bootstrapped.read() as tx:
        row = await crud.get(tx, "ldap_sources", slug="corp")
        events = await crud.all_rows(tx, "events")
    assert (
        row["bind_password_sealed"].startswith("v1:") and CANARY not in row["bind_password_sealed"]
    )
    # A PATCH that leaves the password out keeps it; one that sends it replaces it.
    status, patched = await api("PATCH", "sources/ldap/corp/", json={"name": "Corporate"})
    assert status == 200 and patched["name"] == "Corporate"
    async with bootstrapped.read() as tx:
        kept = await crud.get(tx, "ldap_sources", slug="corp")
    assert kept["bind_password_sealed"] == row["bind_password_sealed"]
    for text in (json.dumps(listed), json.dumps(one), json.dumps(patched), repr(events)):
        assert CANARY not in text
    assert CANARY not in caplog.text


async def test_crud_round_trip_and_delete(api: Any, make_source: Any) -> None:
    await make_source()
    status, body = await api(
        "PUT",
        "sources/ldap/corp/",
        json={
            "name": "Corp",
            "slug": "corp",
            "server_uri": "ldaps://ldap.example.org",
            "base_dn": "dc=example,dc=org",
            "sync_groups": False,
            "bind_password": "new-secret",
        },
    )
    assert status == 200 and body["sync_groups"] is False, body
    assert body["server_uri"] == "ldaps://ldap.example.org"
    status, status_body = await api("GET", "sources/ldap/corp/sync/status/")
    assert status == 200 and status_body == {
        "is_running": False,
        "last_successful_sync": None,
        "last_sync_status": None,
        "last_sync": None,
    }
    status, every = await api("GET", "sources/all/")
    assert status == 200 and [s["slug"] for s in every["results"]] == ["corp"]
    assert every["results"][0]["component"] == "ak-source-ldap-form"
    assert (await api("DELETE", "sources/ldap/corp/"))[0] == 204
    assert (await api("GET", "sources/ldap/corp/"))[0] == 404


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("server_uri", "http://ldap.example.org"),
        ("server_uri", "ldap://"),
        ("server_uri", "ldap://ldap.example.org:99999"),
        ("server_uri", "ldap://ldap.example.org/dc=x?cn"),
        ("server_uri", " , "),
        ("slug", "not a slug"),
        ("user_property_mappings", ["00000000-0000-4000-8000-000000000000"]),
        ("peer_certificate", "00000000-0000-4000-8000-000000000000"),
        ("sync_parent_group", "00000000-0000-4000-8000-000000000000"),
        ("group_membership_field", "member)(objectClass=*"),
        ("user_object_filter", "objectClass=person"),
        ("group_object_filter", "(&(objectClass=group)"),
        ("user_path_template", "users/%(name)s"),
        ("base_dn", "dc=example\x00,dc=org"),
    ],
)
async def test_invalid_settings_are_refused(
    api: Any, make_source: Any, field: str, value: Any
) -> None:
    await make_source()
    status, body = await api("PATCH", "sources/ldap/corp/", json={field: value})
    assert status == 400, body
    assert field in body or "non_field_errors" in body, body


async def test_only_one_source_writes_passwords_back(api: Any, make_source: Any) -> None:
    await make_source("first", sync_users_password=True)
    status, body = await api(
        "POST",
        "sources/ldap/",
        json={
            "name": "Second",
            "slug": "second",
            "server_uri": "ldap://127.0.0.1",
            "base_dn": "dc=example,dc=org",
            "sync_users_password": True,
        },
    )
    assert status == 400 and "sync_users_password" in body, body


async def test_the_system_mappings_exist_and_are_protected(api: Any, make_source: Any) -> None:
    await make_source()  # the app has started: the system mappings exist
    status, page = await api("GET", "propertymappings/source/ldap/?managed__isnull=false")
    names = {m["managed"]: m["name"] for m in page["results"]}
    assert (
        names["goauthentik.io/sources/ldap/openldap-uid"]
        == "authentik default OpenLDAP Mapping: uid"
    )
    assert names["goauthentik.io/sources/ldap/ms-samaccountname"] == (
        "authentik default Active Directory Mapping: sAMAccountName"
    )
    assert len(names) == 9
    managed = page["results"][0]
    assert (
        await api(
            "PATCH",
            f"propertymappings/source/ldap/{managed['pk']}/",
            json={"expression": "return {}"},
        )
    )[0] == 403
    assert (await api("DELETE", f"propertymappings/source/ldap/{managed['pk']}/"))[0] == 403


async def test_mapping_expressions_are_checked(api: Any) -> None:
    status, body = await api(
        "POST",
        "propertymappings/source/ldap/",
        json={"name": "escape", "expression": "return ().__class__.__mro__"},
    )
    assert status == 400 and "expression" in body, body
    status, body = await api(
        "POST",
        "propertymappings/source/ldap/",
        json={"name": "ok", "expression": 'return {"name": list_flatten(ldap.get("cn"))}'},
    )
    assert status == 201 and body["component"] == "ak-property-mapping-source-ldap-form", body


async def test_non_admins_cannot_see_or_start_syncs(
    client: Any, make_source: Any, make_user: Any, make_token: Any
) -> None:
    await make_source()
    await make_user("mallory")
    token = await make_token("mallory")
    headers = {"Authorization": f"Bearer {token}"}
    for method, path in (
        ("GET", "sources/ldap/"),
        ("GET", "sources/ldap/corp/sync/status/"),
        ("POST", "sources/ldap/corp/sync/"),
        ("GET", "sources/all/"),
    ):
        response = await client.request(method, f"/api/v3/{path}", headers=headers)
        assert response.status == 403, (method, path)


@pytest.mark.parametrize(
    "change",
    [
        {"server_uri": "ldap://attacker.example.org"},
        {"bind_cn": "cn=other,dc=example,dc=org"},
        {"start_tls": True},
        {"sni": True},
    ],
    ids=["server_uri", "bind_cn", "start_tls", "sni"],
)
async def test_redirecting_the_stored_bind_password_needs_it_again(
    api: Any, make_source: Any, change: dict[str, Any]
) -> None:
    await make_source(bind_password=CANARY)
    status, body = await api("PATCH", "sources/ldap/corp/", json=change)
    assert status == 400 and "bind_password" in body, body
    status, body = await api("PATCH", "sources/ldap/corp/", json={**change, "bind_password": "x"})
    assert status == 200, body
