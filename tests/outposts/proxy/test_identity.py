"""The identity headers a protected application receives (outposts/proxy/identity.py)."""

from __future__ import annotations

import base64

from proxykit import config

from tessera.outposts.proxy import identity
from tessera.outposts.proxy.providers import Provider
from tessera.outposts.proxy.sessions import Session

CLAIMS = {
    "sub": "hashed-id",
    "sid": "s" * 64,
    "exp": 2_000_000_000,
    "iat": 1,
    "preferred_username": "alice",
    "email": "alice@example.com",
    "name": "Alice\r\nInjected: yes",
    "groups": ["admins", "users"],
    "entitlements": ["read"],
    "ak_proxy": {
        "user_attributes": {
            "additionalHeaders": {
                "X-Team": "blue",
                "X-authentik-username": "root",
                "x_authentik_uid": "0",
                "Host": "evil",
                "Bad Header": "x",
                "Content-Length": "0",
            },
            "svc_user": "alice-svc",
            "svc_password": "s3cret",
        }
    },
}


def _provider(**overrides: object) -> Provider:
    return Provider.build(config(external_host="http://app.example.com", **overrides))


def test_the_twelve_headers() -> None:
    headers = identity.headers(_provider(), Session.of_token("tok", CLAIMS), "outpost", "2026.8.5")
    assert {k: v for k, v in headers.items() if k.startswith("X-authentik-")} == {
        "X-authentik-username": "alice",
        "X-authentik-groups": "admins|users",
        "X-authentik-entitlements": "read",
        "X-authentik-email": "alice@example.com",
        "X-authentik-name": "AliceInjected: yes",
        "X-authentik-uid": "hashed-id",
        "X-authentik-jwt": "tok",
        "X-authentik-meta-jwks": "http://127.0.0.1:9/application/o/app/jwks/",
        "X-authentik-meta-outpost": "outpost",
        "X-authentik-meta-provider": "app provider",
        "X-authentik-meta-app": "app",
        "X-authentik-meta-version": "goauthentik.io/outpost/2026.8.5",
    }


def test_attack_attributes_cannot_forge_identity_or_framing_headers() -> None:
    headers = identity.headers(_provider(), Session.of_token("tok", CLAIMS), "o", "v")
    assert headers["X-Team"] == "blue"
    assert headers["X-authentik-username"] == "alice"
    for forbidden in ("x_authentik_uid", "Host", "Bad Header", "Content-Length"):
        assert forbidden not in headers
    assert "Authorization" not in headers


def test_basic_auth_from_attributes() -> None:
    provider = _provider(
        basic_auth_enabled=True,
        basic_auth_user_attribute="svc_user",
        basic_auth_password_attribute="svc_password",
    )
    headers = identity.headers(provider, Session.of_token("tok", CLAIMS), "o", "v")
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"alice-svc:s3cret").decode()
    fallback = _provider(basic_auth_enabled=True, basic_auth_password_attribute="svc_password")
    headers = identity.headers(fallback, Session.of_token("tok", CLAIMS), "o", "v")
    assert base64.b64decode(headers["Authorization"][6:]) == b"alice@example.com:s3cret"
    empty = _provider(basic_auth_enabled=True, basic_auth_password_attribute="missing")
    assert "Authorization" not in identity.headers(empty, Session.of_token("t", CLAIMS), "o", "v")


def test_strip_finds_forged_identity_headers_in_any_spelling() -> None:
    names = ["X-authentik-username", "x-AUTHENTIK-uid", "X_authentik_groups", "X-Other", "Cookie"]
    assert identity.strip(names) == names[:3]
