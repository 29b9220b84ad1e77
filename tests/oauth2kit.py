"""Helpers for the in-process OAuth2 provider tests: providers made through the admin API, a login
through the JSON executor, and the authorization endpoint followed to the client's redirect."""

from __future__ import annotations

import base64
import urllib.parse
from typing import Any

from helpers import BOOTSTRAP_PASSWORD

LOGIN = "/api/v3/flows/executor/default-authentication-flow/"
IMPLICIT = "default-provider-authorization-implicit-consent"
CB = "https://app.example.com/cb"
TOKEN = "/application/o/token/"


async def flow_pk(api: Any, slug: str) -> str:
    status, body = await api("GET", f"flows/instances/{slug}/")
    assert status == 200, body
    return str(body["pk"])


async def key_pair(api: Any, name: str, alg: str = "ecdsa") -> str:
    body = {"common_name": name, "alg": alg, "validity_days": 30}
    status, answer = await api("POST", "crypto/certificatekeypairs/generate/", json=body)
    assert status == 200, answer
    return str(answer["pk"])


async def scope_mappings(api: Any) -> list[str]:
    status, body = await api("GET", "propertymappings/provider/scope/?page_size=100")
    assert status == 200
    return [m["pk"] for m in body["results"]]


async def make_provider(api: Any, slug: str, **fields: Any) -> dict[str, Any]:
    body = {
        "name": f"{slug} provider",
        "authorization_flow": await flow_pk(api, IMPLICIT),
        "invalidation_flow": await flow_pk(api, "default-invalidation-flow"),
        "redirect_uris": [{"matching_mode": "strict", "url": CB}],
        "property_mappings": await scope_mappings(api),
        **fields,
    }
    status, provider = await api("POST", "providers/oauth2/", json=body)
    assert status == 201, provider
    status, app = await api(
        "POST", "core/applications/", json={"name": slug, "slug": slug, "provider": provider["pk"]}
    )
    assert status == 201, app
    return dict(provider)


async def login(client: Any) -> None:
    """Log akadmin in (again, if already logged in: then the CSRF header is needed)."""

    def csrf() -> dict[str, str]:
        jar = client.session.cookie_jar
        return {"X-authentik-CSRF": next((c.value for c in jar if c.key == "authentik_csrf"), "")}

    await client.get(LOGIN + "?query=restart%3D1")
    await client.post(LOGIN, json={"uid_field": "akadmin"}, headers=csrf())
    body = await (
        await client.post(LOGIN, json={"password": BOOTSTRAP_PASSWORD}, headers=csrf())
    ).json()
    assert body["component"] == "xak-flow-redirect", body


def authorize_url(provider: dict[str, Any], **params: str) -> str:
    query = {
        "client_id": provider["client_id"],
        "response_type": "code",
        "scope": "openid email profile offline_access",
        "redirect_uri": CB,
        "state": "st",
        **params,
    }
    return "/application/o/authorize/?" + urllib.parse.urlencode(query)


async def authorize(client: Any, provider: dict[str, Any], **params: str) -> dict[str, str]:
    """Follow the authorization endpoint (logged in, implicit consent) to the client's redirect;
    its query (or fragment) parameters."""
    url = authorize_url(provider, **params)
    for _ in range(5):
        response = await client.get(url, allow_redirects=False)
        assert response.status == 302, await response.text()
        url = response.headers["Location"]
        if url.startswith(CB):
            parts = urllib.parse.urlsplit(url)
            return dict(urllib.parse.parse_qsl(parts.query or parts.fragment))
    raise AssertionError(f"no redirect to the client; last {url}")


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


async def token(
    client: Any, provider: dict[str, Any], secret: str | None = None, **data: str
) -> Any:
    headers = basic(provider["client_id"], provider["client_secret"] if secret is None else secret)
    return await client.post(TOKEN, data=data, headers=headers)


async def code_tokens(client: Any, provider: dict[str, Any], **params: str) -> dict[str, Any]:
    code = (await authorize(client, provider, **params))["code"]
    answer = await token(
        client, provider, grant_type="authorization_code", code=code, redirect_uri=CB
    )
    assert answer.status == 200, await answer.text()
    return dict(await answer.json())
