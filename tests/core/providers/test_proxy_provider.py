"""`/api/v3/providers/proxy/` and `/api/v3/outposts/proxy/`: a proxy provider is a confidential
OAuth2 client of the core (authentik's `ProxyProvider` inherits its `OAuth2Provider`), so the
outpost's code exchange goes through the core's own token endpoint; bad settings are a 400 naming
the field; what an outpost reads matches the provider and its discovery document."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

import pytest
from helpers import SECRET_KEY
from joserfc import jwt as jose_jwt
from joserfc.jwk import OctKey
from oauth2kit import TOKEN, basic, key_pair, login
from proxyadminkit import bearer, make_outpost, make_proxy_provider, outpost_token, proxy_body

from tessera.core import store
from tessera.core.crypto import Keyring
from tessera.core.providers import proxy

CALLBACK = (
    "https://alpha.example.com/outpost.goauthentik.io/callback?X-authentik-auth-callback=true"
)


async def _configs(api: Any, key: str) -> list[dict[str, Any]]:
    status, page = await api("GET", "outposts/proxy/", headers=bearer(key))
    assert status == 200, page
    return list(page["results"])


@pytest.fixture
async def served(api: Any) -> dict[str, Any]:
    """Provider `alpha` (application `alpha`) served by outpost `edge`, and the outpost's token."""
    provider = await make_proxy_provider(api, "alpha")
    outpost = await make_outpost(api, "edge", [provider["pk"]])
    key = await outpost_token(api, outpost)
    return {
        "provider": provider,
        "outpost": outpost,
        "key": key,
        "config": (await _configs(api, key))[0],
    }


async def test_a_proxy_provider_is_a_confidential_oauth2_client(api: Any) -> None:
    provider = await make_proxy_provider(api, "alpha")
    assert provider["client_id"] and provider["component"] == "ak-provider-proxy-form"
    assert provider["redirect_uris"] == [
        {"matching_mode": "strict", "url": CALLBACK, "redirect_uri_type": "authorization"},
        {
            "matching_mode": "strict",
            "url": "https://alpha.example.com?X-authentik-auth-callback=true",
            "redirect_uri_type": "authorization",
        },
    ]
    assert provider["mode"] == "proxy" and provider["intercept_header_auth"] is True
    assert provider["access_token_validity"] == "hours=24"
    status, scopes = await api("GET", "propertymappings/provider/scope/?page_size=100")
    by_pk = {m["pk"]: m["scope_name"] for m in scopes["results"]}
    names = sorted(by_pk[pk] for pk in provider["property_mappings"])
    assert names == ["ak_proxy", "email", "entitlements", "openid", "profile"]
    status, every = await api("GET", f"providers/all/{provider['pk']}/")
    assert every["component"] == "ak-provider-proxy-form"
    assert every["verbose_name"] == "Proxy Provider"
    status, oauth = await api("GET", f"providers/oauth2/{provider['pk']}/")
    assert status == 404  # shown as what it is, not as a plain OAuth2 provider


async def test_extra_scope_mappings_are_added_to_the_defaults(api: Any) -> None:
    status, made = await api(
        "POST",
        "propertymappings/provider/scope/",
        json={"name": "groups-extra", "scope_name": "groups", "expression": "return {}"},
    )
    assert status == 201, made
    provider = await make_proxy_provider(api, "alpha", property_mappings=[made["pk"]])
    assert made["pk"] in provider["property_mappings"]
    assert len(provider["property_mappings"]) == 6


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"mode": "transparent"}, "mode"),
        ({"external_host": "ftp://alpha.example.com"}, "external_host"),
        ({"external_host": "alpha.example.com"}, "external_host"),
        ({"external_host": "https://"}, "external_host"),
        ({"external_host": "javascript:alert(1)"}, "external_host"),
        ({"external_host": "https://alpha.example.com/#x"}, "external_host"),
        ({"external_host": "https://a b.example.com"}, "external_host"),
        ({"external_host": "https://alpha.example.com:99999"}, "external_host"),
        ({"external_host": ""}, "external_host"),
        ({"internal_host": "gopher://upstream"}, "internal_host"),
        ({"internal_host": "", "mode": "proxy"}, "internal_host"),
        ({"skip_path_regex": "^/health$\n^/api/(unclosed"}, "skip_path_regex"),
        ({"skip_path_regex": "*"}, "skip_path_regex"),
        ({"skip_path_regex": "\n".join(["^/a$"] * 101)}, "skip_path_regex"),
        ({"cookie_domain": "https://example.com"}, "cookie_domain"),
        ({"cookie_domain": "example.com/path"}, "cookie_domain"),
        ({"cookie_domain": "*.example.com"}, "cookie_domain"),
        ({"cookie_domain": "exa mple.com"}, "cookie_domain"),
        ({"cookie_domain": "example.com:443"}, "cookie_domain"),
        ({"cookie_domain": "other.org"}, "cookie_domain"),
        ({"mode": "forward_domain"}, "cookie_domain"),
        ({"mode": "forward_domain", "cookie_domain": "example.org"}, "cookie_domain"),
        ({"basic_auth_enabled": True}, "basic_auth_enabled"),
        ({"certificate": "00000000-0000-4000-8000-000000000001"}, "certificate"),
        ({"authorization_flow": "00000000-0000-4000-8000-000000000001"}, "authorization_flow"),
        ({"authentication_flow": "00000000-0000-4000-8000-000000000001"}, "authentication_flow"),
        ({"access_token_validity": "forever"}, "access_token_validity"),
        ({"jwt_federation_providers": [1]}, "jwt_federation_providers"),
        ({"client_secret": "mine"}, "client_secret"),
    ],
)
async def test_bad_settings_are_400_naming_the_field(
    api: Any, fields: dict[str, Any], field: str
) -> None:
    body = await proxy_body(api, "alpha", **fields)
    status, answer = await api("POST", "providers/proxy/", json=body)
    assert status == 400, answer
    assert field in answer, answer


@pytest.mark.parametrize(
    "fields",
    [
        {"mode": "forward_single", "internal_host": ""},
        {"mode": "forward_domain", "cookie_domain": "example.com", "internal_host": ""},
        {"mode": "forward_domain", "cookie_domain": ".example.com"},
        {"cookie_domain": "alpha.example.com", "skip_path_regex": "^/health$\n\n^/static/.*"},
        {
            "basic_auth_enabled": True,
            "basic_auth_user_attribute": "u",
            "basic_auth_password_attribute": "p",
        },
    ],
)
async def test_good_settings_are_kept(api: Any, fields: dict[str, Any]) -> None:
    provider = await make_proxy_provider(api, "alpha", **fields)
    for name, value in fields.items():
        assert provider[name] == value


async def test_a_certificate_without_a_key_is_refused(api: Any) -> None:
    pair = await key_pair(api, "tls")
    status, pem = await api("GET", f"crypto/certificatekeypairs/{pair}/view_certificate/")
    status, bare = await api(
        "POST",
        "crypto/certificatekeypairs/",
        json={"name": "bare", "certificate_data": pem["data"]},
    )
    assert status == 201, bare
    status, answer = await api(
        "POST", "providers/proxy/", json=await proxy_body(api, "alpha", certificate=bare["pk"])
    )
    assert status == 400 and "certificate" in answer


async def test_a_change_keeps_the_client_and_follows_the_external_host(
    api: Any, served: dict[str, Any]
) -> None:
    pk = served["provider"]["pk"]
    status, changed = await api(
        "PATCH", f"providers/proxy/{pk}/", json={"external_host": "https://beta.example.com/"}
    )
    assert status == 200, changed
    assert changed["client_id"] == served["provider"]["client_id"]
    assert [u["url"] for u in changed["redirect_uris"]] == [
        "https://beta.example.com/outpost.goauthentik.io/callback?X-authentik-auth-callback=true",
        "https://beta.example.com/?X-authentik-auth-callback=true",
    ]
    after = (await _configs(api, served["key"]))[0]
    assert after["client_secret"] == served["config"]["client_secret"]
    assert after["cookie_secret"] == served["config"]["cookie_secret"]
    assert after["external_host"] == "https://beta.example.com/"


async def test_what_the_outpost_reads(api: Any, served: dict[str, Any]) -> None:
    config, provider = served["config"], served["provider"]
    assert config["pk"] == provider["pk"] and config["name"] == "alpha"
    assert config["client_id"] == provider["client_id"]
    assert len(config["client_secret"]) >= 64
    assert re.fullmatch(r"[A-Z0-9]{32}", config["cookie_secret"])
    assert config["access_token_validity"] == 86400
    assert config["scopes_to_request"] == ["ak_proxy", "email", "entitlements", "openid", "profile"]
    assert (config["assigned_application_slug"], config["assigned_application_name"]) == (
        "alpha",
        "alpha",
    )
    assert (config["mode"], config["internal_host"]) == ("proxy", "http://127.0.0.1:8080")
    assert config["certificate"] is None and config["skip_path_regex"] == ""


async def test_the_embedded_discovery_document_is_the_providers(
    api: Any, client: Any, served: dict[str, Any]
) -> None:
    embedded = served["config"]["oidc_configuration"]
    response = await client.get("/application/o/alpha/.well-known/openid-configuration")
    assert response.status == 200
    discovery = await response.json()
    assert embedded == {key: discovery[key] for key in embedded}
    assert embedded["id_token_signing_alg_values_supported"] == ["HS256"]


async def test_providers_without_an_application_are_not_served(api: Any) -> None:
    alone = await make_proxy_provider(api, "alone", application=False)
    used = await make_proxy_provider(api, "used")
    outpost = await make_outpost(api, "edge", [alone["pk"], used["pk"]])
    key = await outpost_token(api, outpost)
    status, page = await api("GET", "outposts/proxy/", headers=bearer(key))
    assert [c["name"] for c in page["results"]] == ["used"]
    assert page["pagination"]["count"] == 1


async def test_the_configs_in_process_are_the_apis(
    api: Any, client: Any, bootstrapped: store.Store, served: dict[str, Any]
) -> None:
    base = str(client.make_url("")).rstrip("/")
    found = await proxy.outpost_proxy_configs(
        bootstrapped, Keyring(SECRET_KEY), served["outpost"]["pk"], base
    )
    assert [c.model_dump(mode="json") for c in found] == [served["config"]]


async def test_the_outposts_code_exchange_at_the_core_token_endpoint(
    api: Any, client: Any, served: dict[str, Any]
) -> None:
    config = served["config"]
    await login(client)
    query = {
        "client_id": config["client_id"],
        "response_type": "code",
        "scope": " ".join(config["scopes_to_request"]),
        "redirect_uri": CALLBACK,
        "state": "outpost-state",
    }
    url = "/application/o/authorize/?" + urllib.parse.urlencode(query)
    for _ in range(5):
        response = await client.get(url, allow_redirects=False)
        assert response.status == 302, await response.text()
        url = response.headers["Location"]
        if url.startswith(CALLBACK.split("?")[0]):
            break
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert params["X-authentik-auth-callback"] == "true" and params["state"] == "outpost-state"
    answer = await client.post(
        TOKEN,
        data={"grant_type": "authorization_code", "code": params["code"], "redirect_uri": CALLBACK},
        headers=basic(config["client_id"], config["client_secret"]),
    )
    assert answer.status == 200, await answer.text()
    issued = await answer.json()
    # The outpost verifies the access token with the client secret (HS256, no signing key).
    key = OctKey.import_key(config["client_secret"])
    claims = jose_jwt.decode(issued["access_token"], key, algorithms=["HS256"]).claims
    assert claims["iss"] == config["oidc_configuration"]["issuer"]
    assert claims["preferred_username"] == "akadmin"
    assert claims["ak_proxy"]["is_superuser"] is True
    assert isinstance(claims["ak_proxy"]["user_attributes"], dict)


async def test_attack_a_redirect_elsewhere_is_refused(
    api: Any, client: Any, served: dict[str, Any]
) -> None:
    await login(client)
    query = {
        "client_id": served["config"]["client_id"],
        "response_type": "code",
        "scope": "openid",
        "redirect_uri": "https://evil.example.net/outpost.goauthentik.io/callback",
        "state": "s",
    }
    response = await client.get(
        "/application/o/authorize/?" + urllib.parse.urlencode(query), allow_redirects=False
    )
    assert response.status == 400
    assert "evil.example.net" not in response.headers.get("Location", "")


async def test_deleting_a_proxy_provider_removes_its_client(
    api: Any, client: Any, served: dict[str, Any]
) -> None:
    config = served["config"]
    status, _ = await api("DELETE", f"providers/proxy/{config['pk']}/")
    assert status == 204
    answer = await client.post(
        TOKEN,
        data={"grant_type": "client_credentials", "scope": "openid"},
        headers=basic(config["client_id"], config["client_secret"]),
    )
    assert answer.status == 401
    status, outpost = await api("GET", f"outposts/instances/{served['outpost']['pk']}/")
    assert outpost["providers"] == []
    assert await _configs(api, served["key"]) == []


async def test_outpost_set_names_the_serving_outposts(api: Any, served: dict[str, Any]) -> None:
    status, provider = await api("GET", f"providers/proxy/{served['provider']['pk']}/")
    assert provider["outpost_set"] == ["Outpost edge"]
