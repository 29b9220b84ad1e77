"""The outpost as a relying party (outposts/proxy/oidc.py): where it sends requests for the core,
and which tokens it accepts."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey
from proxykit import config

from tessera.outposts.proxy import oidc
from tessera.outposts.proxy.providers import Provider

CORE = "http://127.0.0.1:9"
PROVIDER = Provider.build(config(external_host="http://app.example.com", client_secret="s" * 40))


def _claims(**overrides: Any) -> dict[str, Any]:
    return {
        "iss": PROVIDER.endpoints.issuer,
        "aud": PROVIDER.client_id,
        "sub": "someone",
        "exp": int(time.time()) + 300,
        "nonce": "n1",
        **overrides,
    }


def _hs256(claims: dict[str, Any], secret: str = "s" * 40) -> str:
    return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(secret.encode()))


def _unsigned(claims: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}."


def test_requests_go_to_authentik_host_with_the_browser_host() -> None:
    core = oidc.Core("http://core.internal:9000", "https://auth.example.com")
    target, headers = core._target("https://auth.example.com/application/o/token/?x=1")
    assert target == "http://core.internal:9000/application/o/token/?x=1"
    assert headers == {"Host": "auth.example.com"}
    plain = oidc.Core("http://core.internal:9000")
    assert plain._target("https://auth.example.com/application/o/token/")[1] == {}


async def test_hs256_tokens_signed_with_the_client_secret_verify() -> None:
    core = oidc.Core(CORE)
    claims = await core.verify(PROVIDER, _hs256(_claims()), nonce="n1")
    assert claims["sub"] == "someone"
    await core.close()


@pytest.mark.parametrize(
    ("token_of", "message"),
    [
        (lambda: _hs256(_claims(), secret="x" * 40), "signature"),
        (lambda: _hs256(_claims(iss="https://evil.example.com/")), "issuer"),
        (lambda: _hs256(_claims(aud="another-client")), "not for this provider"),
        (lambda: _hs256(_claims(exp=int(time.time()) - 120)), "expired"),
        (lambda: _hs256(_claims(nonce="other")), "nonce"),
        (lambda: _unsigned(_claims()), "algorithm"),
        (lambda: "not.a.jwt", "JWT"),
        (lambda: "x" * 20000, "malformed"),
    ],
)
async def test_attack_tokens_the_outpost_refuses(token_of: Any, message: str) -> None:
    core = oidc.Core(CORE)
    with pytest.raises(oidc.Refused, match=message):
        await core.verify(PROVIDER, token_of(), nonce="n1")
    await core.close()


async def test_a_key_set_that_cannot_be_fetched_is_unavailable_not_refused() -> None:
    core = oidc.Core(CORE)
    header = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"k"}').rstrip(b"=").decode()
    with pytest.raises(oidc.CoreUnavailable):
        await core.verify(PROVIDER, f"{header}.e30.c2ln")
    await core.close()
