"""`/api/v3/outposts/instances/` and what an outpost's own token may do.

An outpost gets a service account and a non-expiring API token when it is made, and loses both
when it is deleted. Its token reads its own outpost, its providers' configurations, itself, the
root configuration and its providers' key pairs; each attack on the rest is a test of its own.
The embedded outpost exists from the start and keeps its name.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from oauth2kit import key_pair
from proxyadminkit import bearer, make_outpost, make_proxy_provider, outpost_token

from tessera.core.identity import outposts

EMBEDDED = "goauthentik.io/outposts/embedded"


@pytest.fixture
async def two_outposts(api: Any) -> dict[str, Any]:
    """Outposts `a` (provider `alpha`, with a certificate) and `b` (provider `beta`), their tokens,
    and a key pair neither uses."""
    used = await key_pair(api, "alpha-tls")
    unused = await key_pair(api, "someone-else")
    alpha = await make_proxy_provider(api, "alpha", certificate=used)
    beta = await make_proxy_provider(api, "beta")
    a = await make_outpost(api, "edge-a", [alpha["pk"]])
    b = await make_outpost(api, "edge-b", [beta["pk"]])
    return {
        "a": a,
        "b": b,
        "alpha": alpha,
        "beta": beta,
        "key_a": await outpost_token(api, a),
        "key_b": await outpost_token(api, b),
        "used": used,
        "unused": unused,
    }


async def test_creating_an_outpost_makes_its_service_account_and_token(api: Any) -> None:
    outpost = await make_outpost(api, "edge", [])
    pk = outpost["pk"]
    assert outpost["token_identifier"] == f"ak-outpost-{pk}-api"
    status, found = await api("GET", f"core/users/?username=ak-outpost-{uuid.UUID(pk).hex}")
    assert status == 200 and found["pagination"]["count"] == 1
    account = found["results"][0]
    assert (account["type"], account["path"]) == (
        "internal_service_account",
        "goauthentik.io/outposts",
    )
    assert account["name"] == "Outpost edge Service-Account"
    status, token = await api("GET", f"core/tokens/ak-outpost-{pk}-api/")
    assert status == 200, token
    assert token["intent"] == "api" and token["expiring"] is False and token["expires"] is None
    assert token["user"] == account["pk"]
    assert token["managed"] == f"goauthentik.io/outpost/ak-outpost-{pk}-api"
    key = await outpost_token(api, outpost)
    status, me = await api("GET", "core/users/me/", headers=bearer(key))
    assert status == 200 and me["user"]["username"] == account["username"]


async def test_outpost_shape_and_default_config(api: Any) -> None:
    provider = await make_proxy_provider(api, "wiki")
    outpost = await make_outpost(api, "edge", [provider["pk"]], refresh_interval="minutes=2")
    assert outpost["type"] == "proxy"
    assert outpost["providers"] == [provider["pk"]]
    assert [p["component"] for p in outpost["providers_obj"]] == ["ak-provider-proxy-form"]
    assert (
        outpost["providers_obj"][0]["meta_model_name"] == "authentik_providers_proxy.proxyprovider"
    )
    assert outpost["service_connection"] is None and outpost["service_connection_obj"] is None
    assert outpost["refresh_interval_s"] == 120
    config = outpost["config"]
    assert config["refresh_interval"] == "minutes=2"
    assert config["authentik_host"] == "" and config["kubernetes_replicas"] == 1
    assert config["object_naming_template"] == "ak-outpost-%(name)s"
    assert config["kubernetes_ingress_secret_name"] == "authentik-outpost-tls"
    status, defaults = await api("GET", "outposts/instances/default_settings/")
    assert status == 200
    assert set(defaults["config"]) <= set(config)
    assert defaults["config"]["authentik_host"].startswith("http://")


async def test_unknown_config_keys_are_kept(api: Any) -> None:
    outpost = await make_outpost(api, "edge", [], some_future_key={"x": 1})
    assert outpost["config"]["some_future_key"] == {"x": 1}


@pytest.mark.parametrize(
    "config",
    [
        {"refresh_interval": "every five minutes"},
        {"authentik_host": "ftp://core.example.com"},
        {"authentik_host_browser": "https://user:pw@core.example.com"},
        {"kubernetes_replicas": "3"},
        {"kubernetes_replicas": -1},
        {"log_level": "loud"},
        {"kubernetes_json_patches": {"deployment": "not a list"}},
    ],
)
async def test_a_bad_config_is_400_naming_config(api: Any, config: dict[str, Any]) -> None:
    body = {"name": "edge", "type": "proxy", "providers": [], "config": config}
    status, answer = await api("POST", "outposts/instances/", json=body)
    assert status == 400, answer
    assert list(answer) == ["config"]


async def test_providers_must_exist_and_be_of_the_outposts_type(api: Any) -> None:
    proxy = await make_proxy_provider(api, "wiki")
    cases = [
        ({"type": "ldap", "providers": [proxy["pk"]]}, "not a ldap provider"),
        ({"type": "proxy", "providers": [999_999]}, "does not exist"),
        ({"type": "radius", "providers": []}, None),
    ]
    for fields, message in cases:
        body = {"name": "edge", "config": {}, **fields}
        status, answer = await api("POST", "outposts/instances/", json=body)
        assert status == 400, answer
        if message is not None:
            assert message in answer["providers"][0]
        else:
            assert "type" in answer


async def test_an_oauth2_provider_is_not_a_proxy_outposts(api: Any) -> None:
    from oauth2kit import make_provider

    oauth = await make_provider(api, "plain-oidc")
    body = {"name": "edge", "type": "proxy", "providers": [oauth["pk"]], "config": {}}
    status, answer = await api("POST", "outposts/instances/", json=body)
    assert status == 400 and "providers" in answer


async def test_names_are_unique(api: Any) -> None:
    await make_outpost(api, "edge", [])
    body = {"name": "edge", "type": "proxy", "providers": [], "config": {}}
    status, answer = await api("POST", "outposts/instances/", json=body)
    assert status == 400 and "name" in answer


async def test_deleting_an_outpost_removes_its_account_and_token(api: Any) -> None:
    outpost = await make_outpost(api, "edge", [])
    key = await outpost_token(api, outpost)
    username = f"ak-outpost-{uuid.UUID(outpost['pk']).hex}"
    status, _ = await api("DELETE", f"outposts/instances/{outpost['pk']}/")
    assert status == 204
    status, found = await api("GET", f"core/users/?username={username}")
    assert found["pagination"]["count"] == 0
    status, _ = await api("GET", f"core/tokens/{outpost['token_identifier']}/")
    assert status == 404
    status, _ = await api("GET", "outposts/instances/", headers=bearer(key))
    assert status == 401


async def test_a_deleted_token_is_made_again_on_the_next_change(api: Any) -> None:
    outpost = await make_outpost(api, "edge", [])
    old = await outpost_token(api, outpost)
    status, _ = await api("DELETE", f"core/tokens/{outpost['token_identifier']}/")
    assert status == 204
    status, _ = await api("PATCH", f"outposts/instances/{outpost['pk']}/", json={"name": "edge2"})
    assert status == 200
    new = await outpost_token(api, outpost)
    assert new != old
    status, page = await api("GET", "outposts/instances/", headers=bearer(new))
    assert status == 200 and page["results"][0]["name"] == "edge2"


# What an outpost's token may do --------------------------------------------------------------


async def test_outpost_token_lists_only_its_own_outpost(
    api: Any, two_outposts: dict[str, Any]
) -> None:
    status, page = await api("GET", "outposts/instances/", headers=bearer(two_outposts["key_a"]))
    assert status == 200
    assert [o["pk"] for o in page["results"]] == [two_outposts["a"]["pk"]]
    assert page["pagination"]["count"] == 1
    status, own = await api(
        "GET",
        f"outposts/instances/{two_outposts['a']['pk']}/",
        headers=bearer(two_outposts["key_a"]),
    )
    assert status == 200 and own["name"] == "edge-a"


async def test_attack_outpost_token_reads_another_outpost(
    api: Any, two_outposts: dict[str, Any]
) -> None:
    other = two_outposts["b"]["pk"]
    status, _ = await api(
        "GET", f"outposts/instances/{other}/", headers=bearer(two_outposts["key_a"])
    )
    assert status == 404
    status, page = await api(
        "GET", "outposts/instances/?name__iexact=edge-b", headers=bearer(two_outposts["key_a"])
    )
    assert status == 200 and page["results"] == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "POST",
            "outposts/instances/",
            {"name": "x", "type": "proxy", "providers": [], "config": {}},
        ),
        ("PATCH", "outposts/instances/{a}/", {"name": "renamed"}),
        (
            "PUT",
            "outposts/instances/{a}/",
            {"name": "x", "type": "proxy", "providers": [], "config": {}},
        ),
        ("DELETE", "outposts/instances/{a}/", None),
        ("PATCH", "outposts/instances/{b}/", {"providers": []}),
        ("PATCH", "providers/proxy/{alpha}/", {"external_host": "https://evil.example.com"}),
        ("DELETE", "providers/proxy/{alpha}/", None),
        ("POST", "core/tokens/", {"identifier": "mine", "intent": "api"}),
        ("POST", "core/users/", {"username": "backdoor"}),
        ("PATCH", "core/users/{account}/", {"name": "x"}),
        ("POST", "crypto/certificatekeypairs/generate/", {"common_name": "x"}),
        ("PATCH", "crypto/certificatekeypairs/{used}/", {"name": "x"}),
        ("DELETE", "crypto/certificatekeypairs/{used}/", None),
        ("POST", "core/applications/", {"name": "x", "slug": "x"}),
    ],
)
async def test_attack_outpost_token_writes_anything(
    api: Any, two_outposts: dict[str, Any], method: str, path: str, body: Any
) -> None:
    status, me = await api("GET", "core/users/me/", headers=bearer(two_outposts["key_a"]))
    names = {
        "a": two_outposts["a"]["pk"],
        "b": two_outposts["b"]["pk"],
        "alpha": two_outposts["alpha"]["pk"],
        "used": two_outposts["used"],
        "account": me["user"]["pk"],
    }
    status, answer = await api(
        method, path.format(**names), headers=bearer(two_outposts["key_a"]), json=body
    )
    assert status == 403, answer
    status, outpost = await api("GET", f"outposts/instances/{names['a']}/")
    assert outpost["name"] == "edge-a" and outpost["providers"] == [names["alpha"]]


@pytest.mark.parametrize(
    "path",
    [
        "core/users/",
        "core/users/{account}/",
        "core/groups/",
        "core/tokens/",
        "core/tokens/{identifier}/view_key/",
        "core/applications/",
        "providers/proxy/",
        "providers/all/",
        "providers/oauth2/",
        "crypto/certificatekeypairs/",
        "events/events/",
        "flows/instances/",
        "admin/system/",
        "outposts/instances/default_settings/",
    ],
)
async def test_attack_outpost_token_reads_users_and_other_objects(
    api: Any, two_outposts: dict[str, Any], path: str
) -> None:
    key = two_outposts["key_a"]
    status, me = await api("GET", "core/users/me/", headers=bearer(key))
    names = {"account": me["user"]["pk"], "identifier": two_outposts["a"]["token_identifier"]}
    status, answer = await api("GET", path.format(**names), headers=bearer(key))
    assert status == 403, answer


async def test_outpost_token_reads_itself_and_the_root_config(
    api: Any, two_outposts: dict[str, Any]
) -> None:
    key = two_outposts["key_a"]
    status, me = await api("GET", "core/users/me/", headers=bearer(key))
    assert status == 200 and me["user"]["type"] == "internal_service_account"
    assert me["user"]["is_superuser"] is False
    status, _ = await api("GET", "root/config/", headers=bearer(key))
    assert status == 200


async def test_outpost_token_reads_the_key_pairs_of_its_providers(
    api: Any, two_outposts: dict[str, Any]
) -> None:
    key, used = two_outposts["key_a"], two_outposts["used"]
    status, pair = await api("GET", f"crypto/certificatekeypairs/{used}/", headers=bearer(key))
    assert status == 200 and pair["name"] == "alpha-tls"
    status, cert = await api(
        "GET", f"crypto/certificatekeypairs/{used}/view_certificate/", headers=bearer(key)
    )
    assert status == 200 and "BEGIN CERTIFICATE" in cert["data"]
    status, private = await api(
        "GET", f"crypto/certificatekeypairs/{used}/view_private_key/", headers=bearer(key)
    )
    assert status == 200 and "PRIVATE KEY" in private["data"]


@pytest.mark.parametrize("suffix", ["", "view_certificate/", "view_private_key/"])
async def test_attack_outpost_token_reads_a_key_pair_not_of_its_providers(
    api: Any, two_outposts: dict[str, Any], suffix: str
) -> None:
    for key in (two_outposts["key_a"], two_outposts["key_b"]):
        pair = two_outposts["unused"] if key == two_outposts["key_a"] else two_outposts["used"]
        status, answer = await api(
            "GET", f"crypto/certificatekeypairs/{pair}/{suffix}", headers=bearer(key)
        )
        assert status == 404, answer


async def test_outposts_proxy_is_for_outpost_tokens_only(
    api: Any, two_outposts: dict[str, Any]
) -> None:
    status, _ = await api("GET", "outposts/proxy/")  # as akadmin
    assert status == 403
    status, _ = await api("GET", "outposts/proxy/", headers={"Accept": "application/json"})
    assert status == 401


async def test_outposts_proxy_serves_the_callers_providers(
    api: Any, two_outposts: dict[str, Any]
) -> None:
    status, page = await api("GET", "outposts/proxy/", headers=bearer(two_outposts["key_a"]))
    assert status == 200, page
    assert [c["name"] for c in page["results"]] == ["alpha"]
    status, page = await api("GET", "outposts/proxy/", headers=bearer(two_outposts["key_b"]))
    assert [c["name"] for c in page["results"]] == ["beta"]


# The embedded outpost ------------------------------------------------------------------------


async def _embedded(api: Any) -> dict[str, Any]:
    status, page = await api("GET", f"outposts/instances/?managed__iexact={EMBEDDED}")
    assert status == 200 and page["pagination"]["count"] == 1, page
    return dict(page["results"][0])


async def test_the_embedded_outpost_exists_from_the_start(api: Any) -> None:
    embedded = await _embedded(api)
    assert embedded["name"] == "authentik Embedded Outpost"
    assert embedded["type"] == "proxy" and embedded["managed"] == EMBEDDED
    assert embedded["config"]["authentik_host"] == ""  # no public URL: the request's host
    assert await outpost_token(api, embedded)


async def test_the_embedded_outpost_takes_providers(api: Any) -> None:
    embedded = await _embedded(api)
    provider = await make_proxy_provider(api, "wiki")
    status, changed = await api(
        "PATCH", f"outposts/instances/{embedded['pk']}/", json={"providers": [provider["pk"]]}
    )
    assert status == 200, changed
    assert changed["providers"] == [provider["pk"]] and changed["managed"] == EMBEDDED
    key = await outpost_token(api, embedded)
    status, page = await api("GET", "outposts/proxy/", headers=bearer(key))
    assert [c["name"] for c in page["results"]] == ["wiki"]


@pytest.mark.parametrize(
    ("change", "field"),
    [({"name": "mine now"}, "name"), ({"type": "ldap"}, "type"), ({"managed": "other"}, "managed")],
)
async def test_the_embedded_outpost_keeps_its_identity(
    api: Any, change: dict[str, Any], field: str
) -> None:
    embedded = await _embedded(api)
    status, answer = await api("PATCH", f"outposts/instances/{embedded['pk']}/", json=change)
    assert status == 400 and field in answer, answer
    assert (await _embedded(api))["name"] == "authentik Embedded Outpost"


async def test_the_embedded_outpost_cannot_be_deleted(api: Any) -> None:
    embedded = await _embedded(api)
    status, _ = await api("DELETE", f"outposts/instances/{embedded['pk']}/")
    assert status == 403
    assert (await _embedded(api))["pk"] == embedded["pk"]


async def test_no_other_outpost_claims_the_embedded_marker(api: Any) -> None:
    body = {"name": "fake", "type": "proxy", "providers": [], "config": {}, "managed": EMBEDDED}
    status, answer = await api("POST", "outposts/instances/", json=body)
    assert status == 400 and "managed" in answer
    other = await make_outpost(api, "edge", [])
    status, answer = await api(
        "PATCH", f"outposts/instances/{other['pk']}/", json={"managed": EMBEDDED}
    )
    assert status == 400 and "managed" in answer


async def test_identity_names(api: Any) -> None:
    pk = "0b0e7c38-3f4c-4c52-9d5e-1d2b1a9e9d11"
    assert outposts.username(pk) == "ak-outpost-0b0e7c383f4c4c529d5e1d2b1a9e9d11"
    assert outposts.token_identifier(pk) == f"ak-outpost-{pk}-api"
