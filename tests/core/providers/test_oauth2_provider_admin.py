"""`/api/v3/providers/oauth2/` in authentik's shape: grant types stored and enforced, the refresh
token threshold Tessera implements, the fields Tessera has no behaviour for accepted empty only,
the invalidation flow always named."""

from __future__ import annotations

from typing import Any

from oauth2kit import authorize, flow_pk, login, make_provider, token

GRANTS = [
    "authorization_code",
    "implicit",
    "hybrid",
    "refresh_token",
    "client_credentials",
    "password",
    "urn:ietf:params:oauth:grant-type:device_code",
    "urn:ietf:params:oauth:grant-type:token-exchange",
]


async def _change(api: Any, provider: dict[str, Any], **fields: Any) -> tuple[int, Any]:
    return await api("PATCH", f"providers/oauth2/{provider['pk']}/", json=fields)


async def test_every_grant_by_default_and_the_list_kept(api: Any) -> None:
    provider = await make_provider(api, "grants")
    assert provider["grant_types"] == GRANTS
    status, changed = await _change(
        api, provider, grant_types=["refresh_token", "authorization_code", "refresh_token"]
    )
    assert status == 200 and changed["grant_types"] == ["refresh_token", "authorization_code"]
    status, problem = await _change(api, provider, grant_types=["magic"])
    assert status == 400 and "grant_types.0" in problem


async def test_a_grant_left_out_is_refused_at_the_token_endpoint(api: Any, client: Any) -> None:
    provider = await make_provider(api, "narrow", grant_types=["authorization_code"])
    answer = await token(client, provider, grant_type="client_credentials", scope="openid")
    assert answer.status == 400
    assert (await answer.json())["error"] == "unauthorized_client"
    await _change(api, provider, grant_types=["client_credentials"])
    answer = await token(client, provider, grant_type="client_credentials", scope="openid")
    assert answer.status == 200, await answer.text()


async def test_a_response_type_left_out_is_refused_at_authorize(api: Any, client: Any) -> None:
    provider = await make_provider(api, "codeonly", grant_types=["authorization_code"])
    await login(client)
    assert "code" in await authorize(client, provider)
    refused = await authorize(client, provider, response_type="id_token token", nonce="n")
    assert refused["error"] == "unauthorized_client"
    refused = await authorize(client, provider, response_type="code id_token", nonce="n")
    assert refused["error"] == "unauthorized_client"


async def test_refresh_token_threshold_is_zero_only(api: Any) -> None:
    provider = await make_provider(api, "rotating", refresh_token_threshold="minutes=0")
    assert provider["refresh_token_threshold"] == "seconds=0"
    status, problem = await _change(api, provider, refresh_token_threshold="hours=1")
    assert status == 400 and "refresh_token_threshold" in problem


async def test_fields_without_behaviour_are_refused_when_set(api: Any) -> None:
    provider = await make_provider(api, "plain")
    assert provider["authentication_flow"] is None and provider["encryption_key"] is None
    flow = await flow_pk(api, "default-authentication-flow")
    status, problem = await _change(api, provider, authentication_flow=flow)
    assert status == 400 and "authentication_flow" in problem
    status, problem = await _change(api, provider, encryption_key=provider["signing_key"] or flow)
    assert status == 400 and "encryption_key" in problem
    status, problem = await _change(api, provider, authentication_flow=None, encryption_key=None)
    assert status == 200, problem


async def test_invalidation_flow_is_required_and_falls_back_to_the_default(api: Any) -> None:
    body = {
        "name": "no logout flow",
        "authorization_flow": await flow_pk(api, "default-provider-authorization-implicit-consent"),
        "redirect_uris": [],
    }
    status, problem = await api("POST", "providers/oauth2/", json=body)
    assert status == 400 and "invalidation_flow" in problem
    status, flow = await api(
        "POST",
        "flows/instances/",
        json={"name": "Bye", "slug": "bye", "title": "Bye", "designation": "invalidation"},
    )
    assert status == 201, flow
    provider = await make_provider(api, "leaving", invalidation_flow=flow["pk"])
    assert provider["invalidation_flow"] == flow["pk"]
    assert (await api("DELETE", "flows/instances/bye/"))[0] == 204
    status, shown = await api("GET", f"providers/oauth2/{provider['pk']}/")
    assert shown["invalidation_flow"] == await flow_pk(api, "default-invalidation-flow")


async def test_setup_urls_have_no_dynamic_registration(api: Any) -> None:
    provider = await make_provider(api, "urls")
    status, urls = await api("GET", f"providers/oauth2/{provider['pk']}/setup_urls/")
    assert status == 200 and urls["dcr_registration"] is None
    assert urls["jwks"].endswith("/application/o/urls/jwks/")


async def test_scope_mappings_take_managed_only_empty(api: Any) -> None:
    body = {"name": "dept", "scope_name": "dept", "expression": "return {}", "managed": None}
    status, created = await api("POST", "propertymappings/provider/scope/", json=body)
    assert status == 201 and created["managed"] is None
    body = {**body, "name": "dept2", "managed": "goauthentik.io/providers/oauth2/scope-dept"}
    status, problem = await api("POST", "propertymappings/provider/scope/", json=body)
    assert status == 400 and "managed" in problem
