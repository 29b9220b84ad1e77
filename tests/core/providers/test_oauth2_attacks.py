"""The OAuth2 provider under attack, in process: every bad input or replay named by the issue
ends in the protocol's error (or an error page), never a redirect to a stranger and never a 500."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import urllib.parse
from typing import Any

import pytest
from helpers import BOOTSTRAP_TOKEN
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, KeySet
from oauth2kit import (
    CB,
    IMPLICIT,
    TOKEN,
    authorize,
    authorize_url,
    basic,
    code_tokens,
    flow_pk,
    key_pair,
    login,
    make_provider,
    token,
)


@pytest.fixture
async def provider(api: Any, client: Any) -> dict[str, Any]:
    created = await make_provider(api, "wiki", signing_key=await key_pair(api, "wiki"))
    await login(client)
    return created


# Redirect URIs -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        CB + "/more",
        CB + "x",
        CB.replace("app.", "APP."),
        CB.replace("/cb", "/%63b"),
        CB + "?next=https://evil.example/",
        "https://app.example.com@evil.example/cb",
        "https://app.example.com.evil.example/cb",
        "//app.example.com/cb",
        "",
    ],
)
async def test_look_alike_redirect_uris_get_an_error_page(
    client: Any, provider: dict[str, Any], target: str
) -> None:
    response = await client.get(authorize_url(provider, redirect_uri=target), allow_redirects=False)
    assert response.status == 400
    assert "Location" not in response.headers
    assert "not registered" in await response.text()


async def test_regex_redirect_uris_are_anchored(api: Any, client: Any) -> None:
    provider = await make_provider(
        api,
        "regexapp",
        redirect_uris=[{"matching_mode": "regex", "url": r"https://app\.example\.com/.*"}],
    )
    await login(client)
    ok = await client.get(authorize_url(provider), allow_redirects=False)
    assert ok.status == 302 and ok.headers["Location"].startswith(CB)
    for evil in ("https://evil.example/?https://app.example.com/x", "xhttps://app.example.com/x"):
        bad = await client.get(authorize_url(provider, redirect_uri=evil), allow_redirects=False)
        assert bad.status == 400, evil


async def test_unknown_client_and_dangerous_registrations(api: Any, client: Any) -> None:
    response = await client.get(authorize_url({"client_id": "nobody"}), allow_redirects=False)
    assert response.status == 400 and "Location" not in response.headers
    flow = await flow_pk(api, IMPLICIT)
    for url in ("javascript:alert(1)//", "data:text/html,hi", "https://app.example.com/cb#frag"):
        status, body = await api(
            "POST",
            "providers/oauth2/",
            json={"name": url[:20], "authorization_flow": flow, "redirect_uris": [{"url": url}]},
        )
        assert status == 400, (url, body)
    status, body = await api(
        "POST",
        "providers/oauth2/",
        json={"name": "bad-duration", "authorization_flow": flow, "access_token_validity": "1h"},
    )
    assert status == 400 and "access_token_validity" in body


# Codes, PKCE, refresh ------------------------------------------------------------------------


async def test_code_is_single_use_and_a_replay_revokes_its_tokens(
    api: Any, client: Any, provider: dict[str, Any]
) -> None:
    code = (await authorize(client, provider))["code"]
    first = await token(
        client, provider, grant_type="authorization_code", code=code, redirect_uri=CB
    )
    assert first.status == 200
    issued = await first.json()
    info = await client.get(
        "/application/o/userinfo/", headers={"Authorization": "Bearer " + issued["access_token"]}
    )
    assert info.status == 200
    again = await token(
        client, provider, grant_type="authorization_code", code=code, redirect_uri=CB
    )
    assert again.status == 400 and (await again.json())["error"] == "invalid_grant"
    info = await client.get(
        "/application/o/userinfo/", headers={"Authorization": "Bearer " + issued["access_token"]}
    )
    assert info.status == 401
    refresh = await token(
        client, provider, grant_type="refresh_token", refresh_token=issued["refresh_token"]
    )
    assert (await refresh.json())["error"] == "invalid_grant"
    status, events = await api("GET", "events/events/?action=suspicious_request")
    assert events["results"] and code not in json.dumps(events)


async def test_code_of_another_client_and_wrong_redirect(
    api: Any, client: Any, provider: dict[str, Any]
) -> None:
    other = await make_provider(api, "other")
    code = (await authorize(client, provider))["code"]
    stolen = await token(client, other, grant_type="authorization_code", code=code, redirect_uri=CB)
    assert stolen.status == 400 and (await stolen.json())["error"] == "invalid_grant"
    code = (await authorize(client, provider))["code"]
    wrong = await token(
        client, provider, grant_type="authorization_code", code=code, redirect_uri=CB + "x"
    )
    assert (await wrong.json())["error"] == "invalid_grant"


async def test_expired_code(api: Any, client: Any) -> None:
    provider = await make_provider(api, "shortcode", access_code_validity="seconds=1")
    await login(client)
    code = (await authorize(client, provider))["code"]
    await asyncio.sleep(1.2)
    answer = await token(
        client, provider, grant_type="authorization_code", code=code, redirect_uri=CB
    )
    assert (await answer.json())["error"] == "invalid_grant"


async def test_pkce_missing_or_wrong_verifier(client: Any, provider: dict[str, Any]) -> None:
    verifier = "v" * 50
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    for sent in (None, "w" * 50, "short"):
        code = (
            await authorize(
                client, provider, code_challenge=challenge, code_challenge_method="S256"
            )
        )["code"]
        data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CB}
        if sent is not None:
            data["code_verifier"] = sent
        answer = await token(client, provider, **data)
        assert answer.status == 400 and (await answer.json())["error"] == "invalid_grant", sent
    code = (
        await authorize(client, provider, code_challenge=challenge, code_challenge_method="S256")
    )["code"]
    good = await token(
        client,
        provider,
        grant_type="authorization_code",
        code=code,
        redirect_uri=CB,
        code_verifier=verifier,
    )
    assert good.status == 200


async def test_public_clients_must_use_pkce(api: Any, client: Any) -> None:
    provider = await make_provider(api, "spa", client_type="public")
    await login(client)
    params = await authorize(client, provider)
    assert params["error"] == "invalid_request" and params["state"] == "st"


async def test_refresh_scope_escalation_and_rotation(client: Any, provider: dict[str, Any]) -> None:
    issued = await code_tokens(client, provider, scope="openid offline_access")
    wider = await token(
        client,
        provider,
        grant_type="refresh_token",
        refresh_token=issued["refresh_token"],
        scope="openid email offline_access",
    )
    assert wider.status == 400 and (await wider.json())["error"] == "invalid_scope"
    rotated = await token(
        client, provider, grant_type="refresh_token", refresh_token=issued["refresh_token"]
    )
    assert rotated.status == 200
    assert (await rotated.json())["refresh_token"] != issued["refresh_token"]


async def test_no_refresh_token_without_offline_access(
    client: Any, provider: dict[str, Any]
) -> None:
    issued = await code_tokens(client, provider, scope="openid email")
    assert "refresh_token" not in issued


# Client authentication ------------------------------------------------------------------------


async def test_wrong_secret_and_mixed_methods(client: Any, provider: dict[str, Any]) -> None:
    wrong = await token(client, provider, secret="nope", grant_type="client_credentials")
    assert wrong.status == 401 and (await wrong.json())["error"] == "invalid_client"
    assert "Basic" in wrong.headers.get("WWW-Authenticate", "")
    posted = await client.post(
        TOKEN,
        data={
            "grant_type": "client_credentials",
            "client_id": provider["client_id"],
            "client_secret": "nope",
        },
    )
    assert posted.status == 401
    both = await token(
        client, provider, grant_type="client_credentials", client_secret=provider["client_secret"]
    )
    assert both.status == 400 and (await both.json())["error"] == "invalid_request"
    unknown = await client.post(
        TOKEN, data={"grant_type": "client_credentials", "client_id": "x", "client_secret": "y"}
    )
    assert unknown.status == 401


async def test_malformed_token_requests_are_invalid_request(
    client: Any, provider: dict[str, Any]
) -> None:
    auth = basic(provider["client_id"], provider["client_secret"])
    cases = [
        ("grant_type=client_credentials&grant_type=password", "application/x-www-form-urlencoded"),
        ("grant_type=client_credentials&scope=" + "a" * 5000, "application/x-www-form-urlencoded"),
        ("grant_type=client_credentials&scope=%00", "application/x-www-form-urlencoded"),
        ('{"grant_type": "client_credentials"}', "application/json"),
        ("", "application/x-www-form-urlencoded"),
    ]
    for body, content_type in cases:
        answer = await client.post(TOKEN, data=body, headers={"Content-Type": content_type, **auth})
        assert answer.status == 400, (body[:60], await answer.text())
        assert (await answer.json())["error"] == "invalid_request"
    garbage = await client.post(
        TOKEN, data={"grant_type": "client_credentials"}, headers={"Authorization": "Basic !!!"}
    )
    assert garbage.status == 401
    weird = await token(client, provider, grant_type="urn:unknown")
    assert (await weird.json())["error"] == "unsupported_grant_type"


async def test_malformed_authorize_requests(client: Any, provider: dict[str, Any]) -> None:
    repeated = authorize_url(provider) + "&scope=openid"
    assert (await client.get(repeated, allow_redirects=False)).status == 400
    huge = await client.get(authorize_url(provider, state="s" * 5000), allow_redirects=False)
    assert huge.status == 400
    bad_type = await authorize(client, provider, response_type="code tokenx")
    assert bad_type["error"] == "unsupported_response_type"
    no_nonce = await client.get(
        authorize_url(provider, response_type="id_token"), allow_redirects=False
    )
    params = dict(
        urllib.parse.parse_qsl(urllib.parse.urlsplit(no_nonce.headers["Location"]).fragment)
    )
    assert params["error"] == "invalid_request"


# Tokens -------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_forged_bearer_tokens_are_refused(client: Any, provider: dict[str, Any]) -> None:
    issued = await code_tokens(client, provider)
    claims = jose_jwt.decode(
        issued["access_token"],
        KeySet.import_key_set(await (await client.get("/application/o/wiki/jwks/")).json()),
    ).claims
    none_header = _b64(b'{"alg":"none","typ":"JWT"}')
    unsigned = f"{none_header}.{_b64(json.dumps(claims).encode())}."
    jwks = await (await client.get("/application/o/wiki/jwks/")).json()
    public = ECKey.import_key(jwks["keys"][0])
    pem = public.as_pem(private=False)
    # HS256 "signed" with the published public key as the shared secret (key confusion).
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    hs = f"{signing_input}.{_b64(mac)}"
    other = ECKey.generate_key("P-256")
    wrong_key = jose_jwt.encode({"alg": "ES256", "kid": jwks["keys"][0]["kid"]}, claims, other)
    for bearer in (unsigned, hs, wrong_key, issued["id_token"], "a.b.c", "x" * 8000):
        answer = await client.get(
            "/application/o/userinfo/", headers={"Authorization": "Bearer " + bearer}
        )
        assert answer.status == 401, bearer[:40]


async def test_state_and_nonce_are_echoed_exactly(client: Any, provider: dict[str, Any]) -> None:
    state, nonce = "a b&c=d/é%20+", "n&o=n ce"
    params = await authorize(client, provider, state=state, nonce=nonce)
    assert params["state"] == state
    issued = await code_tokens(client, provider, nonce=nonce)
    jwks = KeySet.import_key_set(await (await client.get("/application/o/wiki/jwks/")).json())
    assert jose_jwt.decode(issued["id_token"], jwks).claims["nonce"] == nonce


async def test_implicit_and_form_post(client: Any, provider: dict[str, Any]) -> None:
    params = await authorize(client, provider, response_type="id_token token", nonce="n1")
    assert {"access_token", "id_token", "state"} <= params.keys()
    response = await client.get(
        authorize_url(provider, response_mode="form_post"), allow_redirects=False
    )
    assert response.status == 200
    text = await response.text()
    assert f'action="{CB}"' in text and 'name="code"' in text and "autosubmit.js" in text
    tokens_in_query = await authorize(
        client, provider, response_type="code token", response_mode="query", nonce="n"
    )
    assert tokens_in_query["error"] == "invalid_request"


async def test_prompt_none_without_login(api: Any, client: Any) -> None:
    provider = await make_provider(api, "silent")
    params = await authorize(client, provider, prompt="none")
    assert params["error"] == "login_required" and params["state"] == "st"


async def test_key_rotation_keeps_the_old_key_published(
    api: Any, client: Any, provider: dict[str, Any]
) -> None:
    issued = await code_tokens(client, provider)
    before = {
        k["kid"] for k in (await (await client.get("/application/o/wiki/jwks/")).json())["keys"]
    }
    new_key = await key_pair(api, "wiki-2", "rsa")
    status, body = await api(
        "PATCH", f"providers/oauth2/{provider['pk']}/", json={"signing_key": new_key}
    )
    assert status == 200, body
    after = {
        k["kid"] for k in (await (await client.get("/application/o/wiki/jwks/")).json())["keys"]
    }
    assert before < after and len(after) == 2
    config = await (await client.get("/application/o/wiki/.well-known/openid-configuration")).json()
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]
    old = await client.get(
        "/application/o/userinfo/", headers={"Authorization": "Bearer " + issued["access_token"]}
    )
    assert old.status == 200
    fresh = await code_tokens(client, provider)
    assert (
        jose_jwt.decode(
            fresh["id_token"],
            KeySet.import_key_set(await (await client.get("/application/o/wiki/jwks/")).json()),
        ).header["alg"]
        == "RS256"
    )


# Service accounts ---------------------------------------------------------------------------


async def test_client_credentials_with_app_password(
    api: Any, client: Any, provider: dict[str, Any], make_user: Any
) -> None:
    user = await make_user("robot")
    status, created = await api(
        "POST",
        "core/tokens/",
        json={"identifier": "robot-pw", "intent": "app_password", "user": user["pk"]},
    )
    assert status == 201, created
    status, key = await api("GET", "core/tokens/robot-pw/view_key/")
    good = await token(
        client, provider, grant_type="client_credentials", username="robot", password=key["key"]
    )
    assert good.status == 200, await good.text()
    claims = jose_jwt.decode(
        (await good.json())["access_token"],
        KeySet.import_key_set(await (await client.get("/application/o/wiki/jwks/")).json()),
    ).claims
    assert claims["azp"] == provider["client_id"]
    bad = await token(
        client, provider, grant_type="client_credentials", username="akadmin", password=key["key"]
    )
    assert bad.status == 400 and (await bad.json())["error"] == "invalid_grant"
    own = await token(client, provider, grant_type="client_credentials", scope="openid")
    assert own.status == 200


async def test_managed_objects_need_the_operator_header(api: Any, provider: dict[str, Any]) -> None:
    status, made = await api(
        "POST",
        "core/applications/",
        json={"name": "M", "slug": "managed-app", "managed": "tessera.dev/Application/ns/m/uid-1"},
    )
    assert status == 201, made
    status, body = await api("PATCH", "core/applications/managed-app/", json={"name": "changed"})
    assert status == 409 and "tessera.dev/Application/ns/m/uid-1" in body["detail"]
    status, _ = await api("DELETE", "core/applications/managed-app/")
    assert status == 409
    header = {
        "Authorization": f"Bearer {BOOTSTRAP_TOKEN}",
        "X-Tessera-Managed-By": "tessera.dev/Application/ns/m/uid-1",
    }
    status, body = await api(
        "PATCH", "core/applications/managed-app/", json={"name": "changed"}, headers=header
    )
    assert status == 200 and body["name"] == "changed"
    status, listed = await api(
        "GET", "core/applications/?managed=tessera.dev/Application/ns/m/uid-1"
    )
    assert [a["slug"] for a in listed["results"]] == ["managed-app"]


async def test_system_scope_mappings(api: Any) -> None:
    status, body = await api("GET", "propertymappings/provider/scope/?managed__isnull=false")
    assert {m["scope_name"] for m in body["results"]} >= {
        "openid",
        "email",
        "profile",
        "offline_access",
        "entitlements",
    }
    first = body["results"][0]
    status, _ = await api(
        "PATCH", f"propertymappings/provider/scope/{first['pk']}/", json={"name": "x"}
    )
    assert status == 403
    status, bad = await api(
        "POST",
        "propertymappings/provider/scope/",
        json={"name": "evil", "scope_name": "evil", "expression": "return ().__class__"},
    )
    assert status == 400 and "expression" in bad


async def test_bindings_of_a_managed_application_need_the_header(api: Any, make_group: Any) -> None:
    managed = "tessera.dev/Application/ns/b/uid-2"
    status, app = await api(
        "POST", "core/applications/", json={"name": "B", "slug": "b", "managed": managed}
    )
    group = await make_group("b-users")
    binding = {"target": app["pk"], "group": group["pk"], "order": 0}
    status, body = await api("POST", "policies/bindings/", json=binding)
    assert status == 409, body
    header = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}", "X-Tessera-Managed-By": managed}
    status, body = await api("POST", "policies/bindings/", json=binding, headers=header)
    assert status == 201, body
    status, _ = await api("DELETE", f"policies/bindings/{body['pk']}/")
    assert status == 409


async def test_custom_scope_mapping_runs_in_the_sandbox(api: Any, client: Any) -> None:
    expression = (
        'return {"nickname": "custom-" + request.user.username, "iss": "https://evil.example",'
        ' "scope_seen": scope}'
    )
    status, mapping = await api(
        "POST",
        "propertymappings/provider/scope/",
        json={"name": "Custom nick", "scope_name": "custom", "expression": expression},
    )
    assert status == 201, mapping
    status, broken = await api(
        "POST",
        "propertymappings/provider/scope/",
        json={"name": "Broken", "scope_name": "broken", "expression": "return 1 / 0"},
    )
    assert status == 201
    provider = await make_provider(api, "custom-claims", signing_key=await key_pair(api, "cc"))
    status, _ = await api(
        "PATCH",
        f"providers/oauth2/{provider['pk']}/",
        json={"property_mappings": [mapping["pk"], broken["pk"]]},
    )
    assert status == 200
    await login(client)
    issued = await code_tokens(client, provider, scope="openid custom broken")
    keys = KeySet.import_key_set(
        await (await client.get("/application/o/custom-claims/jwks/")).json()
    )
    claims = jose_jwt.decode(issued["id_token"], keys).claims
    assert claims["nickname"] == "custom-akadmin"
    assert claims["iss"].endswith("/application/o/custom-claims/")  # protocol claims win
    assert claims["scope_seen"] == ["openid", "custom", "broken"]
    info = await client.get(
        "/application/o/userinfo/", headers={"Authorization": "Bearer " + issued["access_token"]}
    )
    assert (await info.json())["nickname"] == "custom-akadmin"


async def test_redirect_uri_is_repeated_only_when_it_was_given(
    client: Any, provider: dict[str, Any]
) -> None:
    query = {
        "client_id": provider["client_id"],
        "response_type": "code",
        "scope": "openid",
        "state": "st",
    }
    response = await client.get(
        "/application/o/authorize/?" + urllib.parse.urlencode(query), allow_redirects=False
    )
    location = response.headers["Location"]
    assert location.startswith(CB)  # the one registered URI
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))["code"]
    answer = await token(client, provider, grant_type="authorization_code", code=code)
    assert answer.status == 200, await answer.text()
    code = (await authorize(client, provider))["code"]  # given: must be repeated
    missing = await token(client, provider, grant_type="authorization_code", code=code)
    assert (await missing.json())["error"] == "invalid_grant"


async def test_max_age_zero_logs_in_again_once(client: Any, provider: dict[str, Any]) -> None:
    response = await client.get(authorize_url(provider, max_age="0"), allow_redirects=False)
    assert "/if/flow/default-authentication-flow/" in response.headers["Location"]
    await login(client)
    follow = urllib.parse.parse_qs(urllib.parse.urlsplit(response.headers["Location"]).query)
    again = await client.get(follow["next"][0], allow_redirects=False)
    assert again.headers["Location"].startswith(CB), again.headers["Location"]
