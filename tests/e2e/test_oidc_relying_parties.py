"""Relying parties that no one here wrote, against a running `tessera server`: the `oic` (pyoidc)
client and authlib's client drive discovery, the code flow with PKCE (login and consent in
Chromium), both client authentication methods, ID-token validation from the JWKS, userinfo,
refresh rotation, client_credentials, introspection, revocation, end-session and the device flow.
ID tokens are checked again with joserfc against the JWKS from discovery, for an ES256 (P-256) and
an RS256 signing key."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from helpers import Server, free_port
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from oic.oic import Client as OicClient
from oic.oic.message import AuthorizationResponse, RegistrationResponse
from oic.utils.authn.client import CLIENT_AUTHN_METHOD
from oidckit import (
    Catcher,
    Client,
    admin,
    keypair,
    make_client,
    requires_provider,
    server_fixture,
    sign_in_until,
)
from playwright.sync_api import Browser, Route

pytestmark = requires_provider

SCOPES = ["openid", "email", "profile", "offline_access"]
CALLBACK = f"http://127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from server_fixture(tmp_path_factory)


@pytest.fixture(scope="module")
def clients(server: Server) -> dict[str, Client]:
    es = keypair(server, "oidc-es256", "ecdsa")
    rs = keypair(server, "oidc-rs256", "rsa")
    return {
        alg: make_client(
            server,
            f"rp-{alg.lower()}",
            signing_key=key,
            redirect_uri=f"{CALLBACK}/{alg.lower()}/cb",
            logout_uri=f"{CALLBACK}/{alg.lower()}/bye",
        )
        for alg, key in (("ES256", es), ("RS256", rs))
    }


def discovery(server: Server, client: Client) -> dict[str, Any]:
    answer = requests.get(client.issuer(server) + ".well-known/openid-configuration", timeout=10)
    assert answer.status_code == 200
    return dict(answer.json())


def browser_redirect(browser: Browser, url: str, prefix: str) -> dict[str, str]:
    """Open `url` in a fresh Chromium context, log in and consent; the redirect's parameters."""
    context = browser.new_context()
    try:
        page = context.new_page()
        catcher = Catcher(page, prefix)
        page.goto(url)
        sign_in_until(page, lambda: bool(catcher.urls))
        return catcher.params()
    finally:
        context.close()


def oic_client(server: Server, client: Client, method: str) -> OicClient:
    rp = OicClient(client_authn_method=CLIENT_AUTHN_METHOD)
    rp.provider_config(client.issuer(server))  # discovery, then the keys from jwks_uri
    rp.store_registration_info(
        RegistrationResponse(
            client_id=client.client_id,
            client_secret=client.client_secret,
            redirect_uris=[client.redirect_uri],
            token_endpoint_auth_method=method,
        )
    )
    rp.redirect_uris = [client.redirect_uri]
    return rp


def oic_code_flow(
    browser: Browser, server: Server, client: Client, method: str
) -> tuple[OicClient, str, Any, str]:
    """The code flow with PKCE S256 through pyoidc; returns (client, state, tokens, nonce)."""
    rp = oic_client(server, client, method)
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    pkce, verifier = rp.add_code_challenge()
    assert pkce["code_challenge_method"] == "S256"
    request = rp.construct_AuthorizationRequest(
        request_args={
            "client_id": client.client_id,
            "response_type": "code",
            "scope": SCOPES,
            "state": state,
            "nonce": nonce,
            "redirect_uri": client.redirect_uri,
            **pkce,
        }
    )
    params = browser_redirect(browser, request.request(rp.authorization_endpoint), CALLBACK)
    assert params["state"] == state
    answer = rp.parse_response(
        AuthorizationResponse, info=urllib.parse.urlencode(params), sformat="urlencoded"
    )
    tokens = rp.do_access_token_request(
        state=state,
        request_args={
            "code": answer["code"],
            "code_verifier": verifier,
            "redirect_uri": client.redirect_uri,
        },
        authn_method=method,
    )
    assert "error" not in tokens, tokens.to_dict()
    return rp, state, tokens, nonce


def post_token(server: Server, client: Client, **data: str) -> requests.Response:
    return requests.post(
        server.url + "/application/o/token/",
        data=data,
        auth=(client.client_id, client.client_secret),
        timeout=10,
    )


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_oic_code_flow_with_pkce(
    browser: Browser, server: Server, clients: dict[str, Client], method: str
) -> None:
    client = clients["ES256"]
    rp, state, tokens, nonce = oic_code_flow(browser, server, client, method)
    # pyoidc verified the ID token: signature with the JWKS key, iss, aud, exp.
    id_token = tokens["id_token"]
    assert id_token["iss"] == client.issuer(server)
    assert client.client_id in id_token["aud"]
    assert id_token["nonce"] == nonce
    assert tokens["token_type"].lower() == "bearer"
    assert "refresh_token" in tokens

    info = rp.do_user_info_request(state=state)
    assert info["sub"] == id_token["sub"]
    assert info["preferred_username"] == "akadmin"

    # Refresh rotates: the new token works, the old one is then refused.
    old = tokens["refresh_token"]
    refreshed = rp.do_access_token_refresh(state=state, authn_method=method)
    assert "error" not in refreshed, refreshed.to_dict()
    assert refreshed["refresh_token"] != old
    again = post_token(server, client, grant_type="refresh_token", refresh_token=old)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"
    # Presenting a used refresh token revokes the whole family and is recorded.
    newest = post_token(
        server, client, grant_type="refresh_token", refresh_token=refreshed["refresh_token"]
    )
    assert newest.status_code == 400
    assert newest.json()["error"] == "invalid_grant"
    events = admin(server, "GET", "events/events/?action=suspicious_request")
    assert events["results"], "no suspicious_request event"
    assert old not in json.dumps(events)  # the token itself is not logged


def test_oic_client_credentials(server: Server, clients: dict[str, Client]) -> None:
    client = clients["ES256"]
    rp = oic_client(server, client, "client_secret_basic")
    answer = requests.post(
        rp.token_endpoint,
        data={"grant_type": "client_credentials", "scope": "openid"},
        auth=(client.client_id, client.client_secret),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"].lower() == "bearer"
    assert "refresh_token" not in body
    claims = verify_with_jwks(server, client, body["access_token"], "ES256")
    assert claims["azp"] == client.client_id

    wrong = requests.post(
        rp.token_endpoint,
        data={"grant_type": "client_credentials"},
        auth=(client.client_id, client.client_secret + "x"),
        timeout=10,
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"


def verify_with_jwks(server: Server, client: Client, token: str, alg: str) -> dict[str, Any]:
    """Claims of `token` checked by joserfc with the JWKS named by discovery."""
    config = discovery(server, client)
    assert alg in config["id_token_signing_alg_values_supported"]
    keys = KeySet.import_key_set(requests.get(config["jwks_uri"], timeout=10).json())
    assert all(key.kid for key in keys.keys)
    decoded = jwt.decode(token, keys, algorithms=[alg])
    assert decoded.header["alg"] == alg
    assert decoded.header["kid"] in {key.kid for key in keys.keys}
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": client.issuer(server)},
        exp={"essential": True},
        iat={"essential": True},
    ).validate(decoded.claims)
    return dict(decoded.claims)


def authlib_session(client: Client, **extra: Any) -> OAuth2Session:
    return OAuth2Session(
        client.client_id,
        client.client_secret,
        scope=" ".join(SCOPES),
        redirect_uri=client.redirect_uri,
        code_challenge_method="S256",
        **extra,
    )


def authlib_code_flow(
    browser: Browser, server: Server, client: Client
) -> tuple[OAuth2Session, dict[str, Any], dict[str, Any], str]:
    config = discovery(server, client)
    session = authlib_session(client)
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    url, state = session.create_authorization_url(
        config["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    params = browser_redirect(browser, url, CALLBACK)
    assert params["state"] == state
    token = session.fetch_token(
        config["token_endpoint"],
        authorization_response=client.redirect_uri + "?" + urllib.parse.urlencode(params),
        code_verifier=verifier,
        state=state,
    )
    return session, dict(token), config, nonce


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_authlib_code_flow_and_jwks(
    browser: Browser, server: Server, clients: dict[str, Client], alg: str
) -> None:
    client = clients[alg]
    session, token, config, nonce = authlib_code_flow(browser, server, client)
    claims = verify_with_jwks(server, client, token["id_token"], alg)
    assert claims["nonce"] == nonce
    assert claims["aud"] in (client.client_id, [client.client_id])
    # at_hash: left half of the SHA-256 of the access token (both algs use SHA-256).
    digest = hashlib.sha256(token["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    access = verify_with_jwks(server, client, token["access_token"], alg)
    assert access["azp"] == client.client_id
    assert access["sub"] == claims["sub"]

    info = session.get(config["userinfo_endpoint"])
    assert info.status_code == 200
    assert info.json()["sub"] == claims["sub"]
    assert "email" in info.json()

    # A token signed with another key, or `alg: none`, is not accepted as a bearer.
    forged = claims | {"sub": "someone-else"}
    unsigned = ".".join(
        base64.urlsafe_b64encode(part).rstrip(b"=").decode()
        for part in (b'{"alg":"none","typ":"JWT"}', json.dumps(forged).encode())
    )
    for bearer in (unsigned + ".", token["access_token"][:-4] + "AAAA"):
        answer = requests.get(
            config["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {bearer}"},
            timeout=10,
        )
        assert answer.status_code == 401
        keys = KeySet.import_key_set(requests.get(config["jwks_uri"], timeout=10).json())
        with pytest.raises(JoseError):
            jwt.decode(bearer, keys, algorithms=[alg])


def test_authlib_introspect_revoke_end_session(
    browser: Browser, server: Server, clients: dict[str, Client]
) -> None:
    client = clients["ES256"]
    session, token, config, _ = authlib_code_flow(browser, server, client)

    live = session.introspect_token(config["introspection_endpoint"], token=token["access_token"])
    assert live.status_code == 200
    assert live.json()["active"] is True
    assert live.json()["client_id"] == client.client_id

    revoked = session.revoke_token(
        config["revocation_endpoint"], token=token["refresh_token"], token_type_hint="refresh_token"
    )
    assert revoked.status_code == 200
    refresh = post_token(
        server, client, grant_type="refresh_token", refresh_token=token["refresh_token"]
    )
    assert refresh.json()["error"] == "invalid_grant"
    dead = session.introspect_token(config["introspection_endpoint"], token=token["refresh_token"])
    assert dead.json() == {"active": False}
    # Unknown tokens: revocation still answers 200 (RFC 7009 §2.2), introspection inactive.
    assert session.revoke_token(config["revocation_endpoint"], token="nonsense").status_code == 200
    junk = session.introspect_token(config["introspection_endpoint"], token="nonsense")
    assert junk.json() == {"active": False}

    end = config["end_session_endpoint"]
    assert end_session(browser, end, token["id_token"], client.logout_uri) == [client.logout_uri]
    assert end_session(browser, end, token["id_token"], CALLBACK + "/elsewhere") == []


def end_session(browser: Browser, endpoint: str, id_token: str, target: str) -> list[str]:
    """RP-initiated logout in Chromium; the URLs under CALLBACK that the browser was sent to."""
    query = urllib.parse.urlencode({"id_token_hint": id_token, "post_logout_redirect_uri": target})
    context = browser.new_context()
    try:
        page = context.new_page()
        catcher = Catcher(page, CALLBACK)
        page.goto(f"{endpoint}?{query}")
        page.wait_for_load_state()
        for _ in range(3):  # an invalidation flow page may ask for a click
            button = page.locator("button[type=submit]")
            if catcher.urls or not button.count():
                break
            button.first.click()
            page.wait_for_load_state()
        page.wait_for_timeout(300)
        return [url.split("?")[0] for url in catcher.urls]
    finally:
        context.close()


def test_device_flow(browser: Browser, server: Server, clients: dict[str, Client]) -> None:
    client = clients["ES256"]
    config = discovery(server, client)
    if "device_authorization_endpoint" not in config:
        pytest.skip("the provider does not publish device authorization yet")
    start = requests.post(
        config["device_authorization_endpoint"],
        data={"client_id": client.client_id, "scope": "openid profile"},
        timeout=10,
    )
    assert start.status_code == 200, start.text
    grant = start.json()
    poll = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code"}
    pending = post_token(server, client, device_code=grant["device_code"], **poll)
    assert pending.status_code == 400
    assert pending.json()["error"] == "authorization_pending"

    context = browser.new_context()
    page = context.new_page()
    page.goto(server.url + "/device")
    entered = {"done": False}
    issued: list[dict[str, Any]] = []

    def done() -> bool:
        if issued:  # asked again after success: a device code is exchanged once only
            return True
        if not entered["done"] and page.locator("input[name=code], #code").count():
            page.fill("input[name=code], #code", grant["user_code"])
            entered["done"] = True
        answer = post_token(server, client, device_code=grant["device_code"], **poll)
        if answer.status_code == 200:
            issued.append(answer.json())
            return True
        assert answer.json()["error"] in ("authorization_pending", "slow_down"), answer.text
        return False

    sign_in_until(page, done, steps=10)
    context.close()
    claims = verify_with_jwks(server, client, issued[0]["id_token"], "ES256")
    assert claims["aud"] in (client.client_id, [client.client_id])


def test_look_alike_redirect_uris_are_never_followed(
    browser: Browser, server: Server, clients: dict[str, Client]
) -> None:
    """A logged-in user who follows an authorize link with a look-alike redirect_uri (and would
    consent) is shown an error page at Tessera; the browser never goes anywhere else."""
    client = clients["ES256"]
    registered = client.redirect_uri
    host = CALLBACK.removeprefix("http://")
    look_alikes = [
        registered + "/more",
        registered + "x",
        registered.replace("/es256/", "/ES256/"),
        registered.replace("/cb", "/%63b"),
        registered + "?next=http://evil.example/",
        f"http://{host}@evil.example/es256/cb",
        registered.replace("127.0.0.1", "127.0.0.1.evil.example"),
        registered.removeprefix("http:"),
    ]
    context = browser.new_context()
    elsewhere: list[str] = []

    def route(route: Route) -> None:
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.fulfill(status=200, body="caught")

    page = context.new_page()
    page.route("**/*", route)
    page.goto(server.url + "/if/flow/default-authentication-flow/")
    sign_in_until(page, lambda: page.url.endswith("/if/user/"))
    authorize = discovery(server, client)["authorization_endpoint"]
    for target in look_alikes:
        query = urllib.parse.urlencode(
            {
                "client_id": client.client_id,
                "response_type": "code",
                "scope": "openid",
                "state": "s",
                "redirect_uri": target,
            }
        )
        page.goto(f"{authorize}?{query}")
        button = page.locator("button[type=submit]")
        if button.count():  # a consent page would be a bug already; answer it anyway
            button.first.click()
            page.wait_for_load_state()
        assert elsewhere == [], (target, elsewhere)
        assert page.url.startswith(server.url), (target, page.url)
    context.close()
