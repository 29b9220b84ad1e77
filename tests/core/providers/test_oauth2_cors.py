"""CORS on the endpoints a browser single-page app calls: allowed origins are those of each
provider's redirect URIs; preflights answered; any other origin gets no CORS header."""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any

import pytest
from oauth2kit import CB, TOKEN, authorize, key_pair, login, make_provider

from tessera.core import wire
from tessera.core.providers.oauth2 import cors

APP = "https://app.example.com"  # CB's origin
OTHER = "https://other.example.com"
EVIL = "https://evil.example"


@pytest.fixture
async def spa(api: Any, client: Any) -> dict[str, Any]:
    provider = await make_provider(
        api, "spa", client_type="public", signing_key=await key_pair(api, "spa")
    )
    await make_provider(
        api,
        "other",
        redirect_uris=[{"matching_mode": "strict", "url": OTHER + "/cb"}],
        signing_key=await key_pair(api, "other"),
    )
    await login(client)
    return provider


async def _pkce_tokens(client: Any, provider: dict[str, Any], origin: str) -> Any:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    code = (
        await authorize(
            client, provider, code_challenge=challenge.decode(), code_challenge_method="S256"
        )
    )["code"]
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CB,
        "client_id": provider["client_id"],
        "code_verifier": verifier,
    }
    return await client.post(TOKEN, data=data, headers={"Origin": origin})


def _cors(response: Any) -> str | None:
    return response.headers.get("Access-Control-Allow-Origin")


# Preflights ----------------------------------------------------------------------------------


PATHS = [
    TOKEN,
    "/application/o/userinfo/",
    "/application/o/introspect/",
    "/application/o/revoke/",
    "/application/o/device/",
    "/application/o/spa/.well-known/openid-configuration",
    "/.well-known/oauth-authorization-server/application/o/spa/",
    "/application/o/spa/jwks/",
]


@pytest.mark.parametrize("path", PATHS)
async def test_preflight_for_an_allowed_origin(client: Any, spa: Any, path: str) -> None:
    headers = {
        "Origin": APP,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    response = await client.options(path, headers=headers)
    assert response.status == 204
    assert _cors(response) == APP
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert response.headers["Access-Control-Allow-Headers"] == "authorization, content-type"
    assert "Origin" in response.headers.get("Vary", "")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(
    "origin",
    [EVIL, "null", "https://app.example.com.evil.example", "http://app.example.com", "file://"],
)
async def test_preflight_for_any_other_origin_has_no_cors(
    client: Any, spa: Any, path: str, origin: str
) -> None:
    headers = {
        "Origin": origin,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    response = await client.options(path, headers=headers)
    assert response.status == 204  # answered, never 405 ...
    cors_headers = [h for h in response.headers if h.lower().startswith("access-control-")]
    assert cors_headers == []  # ... but nothing a browser would act on


async def test_provider_paths_take_only_that_providers_origins(client: Any, spa: Any) -> None:
    path = "/application/o/spa/.well-known/openid-configuration"
    assert _cors(await client.options(path, headers={"Origin": OTHER})) is None
    assert _cors(await client.get(path, headers={"Origin": OTHER})) is None
    assert _cors(await client.get(path, headers={"Origin": APP})) == APP
    # The JWKS: public keys, readable by any page as in authentik, without credentials.
    keys = await client.get("/application/o/spa/jwks/", headers={"Origin": EVIL})
    assert _cors(keys) == "*" and "Access-Control-Allow-Credentials" not in keys.headers
    other = "/application/o/other/.well-known/openid-configuration"
    assert _cors(await client.get(other, headers={"Origin": OTHER})) == OTHER
    assert _cors(await client.get(other, headers={"Origin": APP})) is None
    missing = await client.get("/application/o/nope/jwks/", headers={"Origin": APP})
    assert missing.status == 404 and _cors(missing) is None


# The code exchange and what follows -----------------------------------------------------------


async def test_pkce_exchange_and_userinfo_from_the_apps_origin(client: Any, spa: Any) -> None:
    answer = await _pkce_tokens(client, spa, APP)
    assert answer.status == 200, await answer.text()
    assert _cors(answer) == APP and answer.headers["Access-Control-Allow-Credentials"] == "true"
    tokens = await answer.json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    info = await client.get("/application/o/userinfo/", headers={**bearer, "Origin": APP})
    assert info.status == 200 and _cors(info) == APP
    # Another provider's origin, or a stranger, may not read this client's answers.
    for origin in (OTHER, EVIL):
        info = await client.get("/application/o/userinfo/", headers={**bearer, "Origin": origin})
        assert info.status == 200 and _cors(info) is None, origin
    # An error a page must be able to read (expired or bad token): any provider's origin.
    bad = await client.get(
        "/application/o/userinfo/", headers={"Authorization": "Bearer x.y.z", "Origin": APP}
    )
    assert bad.status == 401 and _cors(bad) == APP
    assert "WWW-Authenticate" in bad.headers["Access-Control-Expose-Headers"]
    assert (
        _cors(
            await client.get(
                "/application/o/userinfo/", headers={"Authorization": "Bearer x", "Origin": EVIL}
            )
        )
        is None
    )
    # Revocation by the public client, from its page.
    revoked = await client.post(
        "/application/o/revoke/",
        data={"token": tokens["refresh_token"], "client_id": spa["client_id"]},
        headers={"Origin": APP},
    )
    assert revoked.status == 200 and _cors(revoked) == APP


async def test_token_answers_carry_cors_only_for_the_clients_origins(client: Any, spa: Any) -> None:
    for origin in (OTHER, EVIL):
        answer = await _pkce_tokens(client, spa, origin)
        assert answer.status == 200 and _cors(answer) is None, origin
    no_origin = await client.post(TOKEN, data={"grant_type": "password"})
    assert not any(h.lower().startswith("access-control-") for h in no_origin.headers)


async def test_device_and_introspection(api: Any, client: Any, spa: Any) -> None:
    device = await client.post(
        "/application/o/device/",
        data={"client_id": spa["client_id"], "scope": "openid"},
        headers={"Origin": APP},
    )
    assert device.status == 200, await device.text()
    assert _cors(device) == APP
    status, other = await api("GET", "providers/oauth2/?search=other")
    confidential = other["results"][0]
    raw = base64.b64encode(
        f"{confidential['client_id']}:{confidential['client_secret']}".encode()
    ).decode()
    introspected = await client.post(
        "/application/o/introspect/",
        data={"token": "not-a-token"},
        headers={"Authorization": f"Basic {raw}", "Origin": OTHER},
    )
    assert introspected.status == 200 and _cors(introspected) == OTHER
    assert (
        _cors(
            await client.post(
                "/application/o/introspect/",
                data={"token": "not-a-token"},
                headers={"Authorization": f"Basic {raw}", "Origin": APP},
            )
        )
        is None
    )


# Origins from redirect URIs -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://app.example.com/cb", "https://app.example.com"),
        ("https://APP.example.com:443/cb", "https://app.example.com"),
        ("http://localhost:5173/callback", "http://localhost:5173"),
        ("http://[::1]:8080/cb", "http://[::1]:8080"),
        ("com.example.app:/oauth2redirect", None),  # a native app's scheme: no web origin
        ("https:///cb", None),
        ("https://app.example.com:99999/cb", None),
    ],
)
def test_origin_of(url: str, origin: str | None) -> None:
    assert cors.origin_of(url) == origin


@pytest.mark.parametrize(
    ("pattern", "origin"),
    [
        (r"https://app\.example\.com/.*", "https://app.example.com"),
        (r"^https://app\.example\.com:8443/cb$", "https://app.example.com:8443"),
        (r"https://.*\.example\.com/.*", None),  # a wildcard host opens nothing
        (r"https://app.example.com.*", None),  # nor an unescaped one that matches anything after
        (r".*", None),
    ],
)
def test_regex_redirect_uris(pattern: str, origin: str | None) -> None:
    entry = wire.oauth2.RedirectURI.model_construct(
        matching_mode="regex", url=pattern, redirect_uri_type="authorization"
    )
    fake: Any = type("C", (), {"redirect_uris": [entry]})()
    assert cors.client_origins(fake) == (frozenset({origin}) if origin else frozenset())
