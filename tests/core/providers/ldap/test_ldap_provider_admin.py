"""`/api/v3/providers/ldap/` in authentik's shape (defaults, validation naming the field, listed
among all providers, an application's provider, an LDAP outpost's), `search_access/`, and what
an LDAP outpost reads: `/api/v3/outposts/ldap/` and `check_access/`, parsed by authentik's own
client models."""

from __future__ import annotations

from typing import Any

from akcontract.apps import _pem_pair
from authentik_client.models import LDAPCheckAccess, LDAPProvider, PaginatedLDAPOutpostConfigList
from ldapcorekit import ldap_body, make_ldap_provider, serve, user_with_password
from proxyadminkit import bearer, make_outpost

DEFAULT_BASE = "dc=ldap,dc=goauthentik,dc=io"


async def test_a_provider_has_authentiks_defaults_and_shape(api: Any) -> None:
    body = await ldap_body(api, "gitea")
    del body["base_dn"]
    status, made = await api("POST", "providers/ldap/", json=body)
    assert status == 201, made
    LDAPProvider.from_dict(made)  # authentik's client parses it
    assert made["base_dn"] == DEFAULT_BASE
    assert (made["uid_start_number"], made["gid_start_number"]) == (2000, 4000)
    assert (made["search_mode"], made["bind_mode"], made["mfa_support"]) == (
        "direct",
        "direct",
        True,
    )
    assert made["component"] == "ak-provider-ldap-form"
    assert made["meta_model_name"] == "authentik_providers_ldap.ldapprovider"
    assert made["outpost_set"] == [] and made["assigned_application_slug"] is None
    status, every = await api("GET", f"providers/all/{made['pk']}/")
    assert status == 200 and every["verbose_name"] == "LDAP Provider"
    assert every["authorization_flow"] == body["authorization_flow"]
    status, app = await api(
        "POST",
        "core/applications/",
        json={"name": "Gitea", "slug": "gitea", "provider": made["pk"]},
    )
    assert status == 201 and app["provider_obj"]["component"] == "ak-provider-ldap-form"
    outpost = await make_outpost(api, "ldap-edge", [made["pk"]], type="ldap")
    status, again = await api("GET", f"providers/ldap/{made['pk']}/")
    assert again["assigned_application_slug"] == "gitea"
    assert again["outpost_set"] == ["Outpost ldap-edge"]
    assert outpost["providers_obj"][0]["component"] == "ak-provider-ldap-form"
    status, refused = await api(
        "POST",
        "outposts/instances/",
        json={"name": "web", "type": "proxy", "providers": [made["pk"]], "config": {}},
    )
    assert status == 400 and "providers" in refused


BAD = [
    ({"base_dn": ""}, "base_dn"),
    ({"base_dn": "not a dn"}, "base_dn"),
    ({"base_dn": "dc=a,,dc=b"}, "base_dn"),
    ({"base_dn": "=x,dc=b"}, "base_dn"),
    ({"base_dn": "dc=a\ndc=b"}, "base_dn"),
    ({"base_dn": "dc=x" * 300}, "base_dn"),
    ({"uid_start_number": -1}, "uid_start_number"),
    ({"gid_start_number": 2**31}, "gid_start_number"),
    ({"search_mode": "sometimes"}, "search_mode"),
    ({"bind_mode": "cache"}, "bind_mode"),
    ({"authorization_flow": "00000000-0000-4000-8000-000000000001"}, "authorization_flow"),
    ({"invalidation_flow": None}, "invalidation_flow"),
    ({"certificate": "00000000-0000-4000-8000-000000000001"}, "certificate"),
    ({"property_mappings": ["00000000-0000-4000-8000-000000000001"]}, "property_mappings"),
    ({"tls_server_name": "x" * 254}, "tls_server_name"),
    ({"outpost_set": ["x"], "unknown": 1}, "unknown"),
]


async def test_bad_settings_are_400_naming_the_field(api: Any) -> None:
    body = await ldap_body(api, "bad")
    for fields, field in BAD:
        status, answer = await api("POST", "providers/ldap/", json={**body, **fields})
        assert status == 400, (fields, answer)
        assert field in answer, (fields, answer)


async def test_base_dns_and_names_are_unique(api: Any) -> None:
    await make_ldap_provider(api, "one", base_dn="dc=Example,dc=Com", application=False)
    body = await ldap_body(api, "two", base_dn="DC=example , dc=com")
    status, answer = await api("POST", "providers/ldap/", json=body)
    assert status == 400 and "base_dn" in answer, answer
    body = await ldap_body(api, "one", base_dn="dc=other")
    status, answer = await api("POST", "providers/ldap/", json=body)
    assert status == 400 and "name" in answer, answer


async def test_a_certificate_needs_its_key_and_the_outpost_may_read_it(api: Any) -> None:
    certificate, key = _pem_pair("ldap.example.com")
    status, bare = await api(
        "POST",
        "crypto/certificatekeypairs/",
        json={"name": "bare", "certificate_data": certificate},
    )
    status, answer = await api(
        "POST", "providers/ldap/", json=await ldap_body(api, "tls", certificate=bare["pk"])
    )
    assert status == 400 and "certificate" in answer
    status, pair = await api(
        "POST",
        "crypto/certificatekeypairs/",
        json={"name": "full", "certificate_data": certificate, "key_data": key},
    )
    served = await serve(api, "tls", certificate=pair["pk"], tls_server_name="ldap.example.com")
    status, body = await api(
        "GET",
        f"crypto/certificatekeypairs/{pair['pk']}/view_private_key/",
        headers=bearer(served.key),
    )
    assert status == 200 and "PRIVATE KEY" in body["data"], body


async def test_the_outpost_reads_its_configs(api: Any) -> None:
    served = await serve(api, "nextcloud", search_mode="cached", uid_start_number=5000)
    orphan = await make_ldap_provider(api, "orphan", application=False)
    status, outpost = await api("GET", f"outposts/instances/{served.outpost['pk']}/")
    body = {**outpost, "providers": [served.pk, orphan["pk"]], "config": outpost["config"]}
    status, _ = await api("PUT", f"outposts/instances/{served.outpost['pk']}/", json=body)
    assert status == 200
    status, page = await api("GET", "outposts/ldap/", headers=bearer(served.key))
    assert status == 200, page
    PaginatedLDAPOutpostConfigList.from_dict(page)
    (config,) = page["results"]  # the provider without an application is not served
    assert config == {
        "pk": served.pk,
        "name": "nextcloud",
        "base_dn": "dc=nextcloud,dc=example,dc=com",
        "bind_flow_slug": "default-authentication-flow",
        "unbind_flow_slug": "default-invalidation-flow",
        "application_slug": "nextcloud",
        "certificate": None,
        "tls_server_name": "",
        "uid_start_number": 5000,
        "gid_start_number": 4000,
        "search_mode": "cached",
        "bind_mode": "direct",
        "mfa_support": True,
    }
    status, denied = await api("GET", "outposts/ldap/")  # akadmin is no outpost
    assert status == 403, denied


async def test_check_access_for_a_user_and_for_an_outposts_session(
    api: Any, make_token: Any
) -> None:
    served = await serve(api, "wiki")
    await user_with_password(api, "alice")
    bound = await served.bound("alice")
    status, answer = await served.call(
        "GET", "check_access", params={"app_slug": "wiki", "session_id": bound["session_id"]}
    )
    assert status == 200, answer
    LDAPCheckAccess.from_dict(answer)
    assert answer["access"]["passing"] is True and answer["has_search_permission"] is False
    key = await make_token("alice", intent="api")
    status, own = await api(
        "GET", f"outposts/ldap/{served.pk}/check_access/?app_slug=wiki", headers=bearer(key)
    )
    assert status == 200, own
    assert own["access"] == {"passing": True, "messages": [], "log_messages": []}


async def test_search_access_is_read_and_replaced_by_admins(api: Any, make_token: Any) -> None:
    served = await serve(api, "grafana")
    alice = await user_with_password(api, "alice")
    bob = await user_with_password(api, "bob")
    status, parent = await api("POST", "core/groups/", json={"name": "ops"})
    status, child = await api(
        "POST", "core/groups/", json={"name": "ops-oncall", "parents": [parent["pk"]]}
    )
    await api("POST", f"core/groups/{child['pk']}/add_user/", json={"pk": bob["pk"]})
    path = f"providers/ldap/{served.pk}/search_access/"
    status, empty = await api("GET", path)
    assert (status, empty) == (200, {"users": [], "groups": []})
    status, now = await api("PUT", path, json={"users": [alice["pk"]], "groups": [parent["pk"]]})
    assert status == 200 and now == {"users": [alice["pk"]], "groups": [parent["pk"]]}, now
    assert (await served.bound("alice"))["has_search_permission"] is True
    assert (await served.bound("bob"))["has_search_permission"] is True  # through the child
    status, now = await api("PUT", path, json={"users": [], "groups": []})
    assert (await served.bound("bob"))["has_search_permission"] is False
    status, answer = await api("PUT", path, json={"users": [987654]})
    assert status == 400 and "users" in answer
    status, answer = await api(
        "PUT", path, json={"groups": ["00000000-0000-4000-8000-00000000aaaa"]}
    )
    assert status == 400 and "groups" in answer
    key = await make_token("alice", intent="api")
    status, answer = await api("PUT", path, json={"users": [alice["pk"]]}, headers=bearer(key))
    assert status == 403, answer
    status, events = await api("GET", "events/events/?action=model_updated")
    assert any("search_access" in str(e["context"].get("diff")) for e in events["results"])
