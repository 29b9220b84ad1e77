"""The outpost as an OpenID Connect relying party of the core (OIDC Core 1.0, RFC 6749, RFC 7662).

A proxy provider is a confidential OAuth2 client of the core. This module talks to the core's
endpoints for it: the code exchange and the client_credentials grant (`token/`), introspection
(`introspect/`) and the key set (`<slug>/jwks/`), and verifies the tokens it gets back
(signature by a JWKS key, or HS256 with the client secret when the provider has no signing key;
issuer, audience, expiry, nonce). The endpoints' browser-facing URLs come from the provider's
`oidc_configuration`; requests go to `AUTHENTIK_HOST` with the same path, and carry the browser
host (`AUTHENTIK_HOST_BROWSER`) as `Host` so the issuer matches (authentik's rule).
`handlers`, `machine` and `sessions` call this; it calls only aiohttp and joserfc. joserfc (with
its JWS, JWE and key modules, about 1.2 MiB) is imported by the calls that verify a token or read
a key set, so an outpost that has served no callback and no bearer token has not loaded it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import aiohttp

from tessera.outposts.proxy.providers import Provider

if TYPE_CHECKING:
    from joserfc.jwk import ECKey, KeySet, OctKey, RSAKey

MAX_TOKEN = 16 * 1024
JWKS_TTL = 300.0
JWKS_RETRY = 10.0  # an unknown `kid` refetches the key set at most this often
TIMEOUT = aiohttp.ClientTimeout(total=10, connect=5)
ASYMMETRIC = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256"}
LEEWAY = 30


class CoreUnavailable(Exception):
    """The core did not answer (network error, timeout, 5xx)."""


class Refused(Exception):
    """The core or the token said no: a bad code, bad credentials, a token that does not verify."""


@dataclass(frozen=True)
class TokenSet:
    access_token: str
    id_token: str
    expires_in: int


def unverified_claims(token: str) -> dict[str, Any]:
    """A JWT's payload without checking it (for tokens the outpost sealed itself)."""
    if len(token) > MAX_TOKEN or token.count(".") != 2:
        raise Refused("not a JWT")
    return _segment(token, 1)


def _segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    try:
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (ValueError, TypeError) as exc:
        raise Refused("not a JWT") from exc
    if not isinstance(value, dict):
        raise Refused("not a JWT")
    return value


class Core:
    """The core's OAuth2 endpoints, seen from the outpost."""

    def __init__(self, host: str, browser_host: str = "", insecure: bool = False) -> None:
        self.host = host.rstrip("/")
        browser = urllib.parse.urlsplit(browser_host) if browser_host else None
        self.browser_netloc = browser.netloc if browser and browser.netloc else ""
        self.insecure = insecure
        self._http: aiohttp.ClientSession | None = None
        self._jwks: dict[str, tuple[float, KeySet]] = {}
        self._jwks_locks: dict[str, asyncio.Lock] = {}

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            context: ssl.SSLContext | bool = not self.insecure
            self._http = aiohttp.ClientSession(
                timeout=TIMEOUT,
                connector=aiohttp.TCPConnector(ssl=context, limit=64),
                headers={"User-Agent": "goauthentik.io/outpost/tessera"},
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    def _target(self, url: str) -> tuple[str, dict[str, str]]:
        """Where to send a request for a browser-facing URL of the core."""
        parts = urllib.parse.urlsplit(url)
        if not self.host:
            return url, {}
        path = parts.path + ("?" + parts.query if parts.query else "")
        headers = {"Host": self.browser_netloc} if self.browser_netloc else {}
        return self.host + path, headers

    async def _call(
        self, method: str, url: str, data: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        target, headers = self._target(url)
        try:
            async with self._session().request(
                method, target, data=data, headers=headers, allow_redirects=False
            ) as response:
                body = await response.read()
                status = response.status
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise CoreUnavailable(f"{type(exc).__name__} reaching {target}") from exc
        if status >= 500:
            raise CoreUnavailable(f"the core answered {status}")
        try:
            return status, json.loads(body) if body else None
        except ValueError:
            raise CoreUnavailable(f"the core answered {status} with a body not JSON") from None

    # Grants ----------------------------------------------------------------------------------

    async def _token(self, provider: Provider, form: dict[str, str]) -> TokenSet:
        form = {**form, "client_id": provider.client_id, "client_secret": provider.client_secret}
        status, body = await self._call("POST", provider.endpoints.token, form)
        if status != 200 or not isinstance(body, dict) or not body.get("access_token"):
            error = body.get("error", "") if isinstance(body, dict) else ""
            raise Refused(f"token endpoint answered {status} {error}".strip())
        return TokenSet(
            str(body["access_token"]),
            str(body.get("id_token") or ""),
            int(body.get("expires_in") or 0),
        )

    async def exchange_code(
        self, provider: Provider, code: str, redirect_uri: str | None = None
    ) -> TokenSet:
        """RFC 6749 §4.1.3: the code for tokens, with the redirect URI it was issued for (the
        provider's callback endpoint unless told otherwise)."""
        return await self._token(
            provider,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri or provider.redirect_uri,
            },
        )

    async def client_credentials(
        self, provider: Provider, username: str, password: str
    ) -> TokenSet:
        """authentik's client_credentials with a user name and an app password."""
        return await self._token(
            provider,
            {
                "grant_type": "client_credentials",
                "username": username,
                "password": password,
                "scope": provider.scopes,
            },
        )

    async def introspect(self, provider: Provider, token: str) -> bool:
        """RFC 7662: whether the core still holds `token` active (its grant not revoked, its user
        active). Raises CoreUnavailable when the core cannot say."""
        status, body = await self._call(
            "POST",
            provider.endpoints.introspect,
            {
                "token": token,
                "client_id": provider.client_id,
                "client_secret": provider.client_secret,
            },
        )
        if status != 200 or not isinstance(body, dict):
            raise CoreUnavailable(f"introspection answered {status}")
        return body.get("active") is True

    # Keys and verification -------------------------------------------------------------------

    async def _key_set(self, provider: Provider, refresh: bool = False) -> KeySet:
        """The provider's key set, cached; `refresh` asks for one at most JWKS_RETRY old (a
        token naming a key we do not know may follow a key rotation)."""
        from joserfc.errors import JoseError
        from joserfc.jwk import KeySet

        url = provider.endpoints.jwks
        fresh = self._fresh(url, JWKS_RETRY if refresh else JWKS_TTL)
        if fresh is not None:
            return fresh
        async with self._jwks_locks.setdefault(url, asyncio.Lock()):
            fresh = self._fresh(url, JWKS_RETRY if refresh else JWKS_TTL)
            if fresh is not None:
                return fresh
            status, body = await self._call("GET", url)
            keys = body.get("keys") if isinstance(body, dict) else None
            if status != 200 or not isinstance(keys, list):
                raise CoreUnavailable(f"the key set answered {status}")
            try:
                key_set = KeySet.import_key_set({"keys": [k for k in keys if isinstance(k, dict)]})
            except (JoseError, ValueError, TypeError) as exc:
                raise CoreUnavailable("the key set does not parse") from exc
            self._jwks[url] = (time.monotonic(), key_set)
            return key_set

    def _fresh(self, url: str, max_age: float) -> KeySet | None:
        cached = self._jwks.get(url)
        if cached is None or time.monotonic() - cached[0] >= max_age:
            return None
        return cached[1]

    async def _key_for(self, provider: Provider, header: dict[str, Any]) -> ECKey | RSAKey | OctKey:
        from joserfc.jwk import ECKey, OctKey, RSAKey

        alg, kid = header.get("alg"), header.get("kid")
        if alg == "HS256":
            return OctKey.import_key(provider.client_secret.encode())
        if alg not in ASYMMETRIC:
            raise Refused(f"algorithm {alg!r} is not accepted")
        for refresh in (False, True):
            keys = await self._key_set(provider, refresh=refresh)
            for key in keys.keys:
                if isinstance(key, RSAKey | ECKey) and (kid is None or key.kid == kid):
                    return key
        raise Refused("no key of the provider's key set signed this token")

    async def verify(
        self, provider: Provider, token: str, *, nonce: str | None = None
    ) -> dict[str, Any]:
        """The claims of a token the core issued to this provider: signature, `iss`, `aud`
        (or `azp`), `exp`, and `nonce` when one was sent. Raises Refused."""
        if not token or len(token) > MAX_TOKEN or token.count(".") != 2:
            raise Refused("malformed token")
        header = _segment(token, 0)
        key = await self._key_for(provider, header)
        from joserfc import jwt
        from joserfc.errors import JoseError

        try:
            decoded = jwt.decode(token, key, algorithms=[str(header.get("alg"))])
        except (JoseError, ValueError, TypeError) as exc:
            raise Refused("signature does not verify") from exc
        claims = dict(decoded.claims)
        check(provider, claims, nonce)
        return claims


def check(provider: Provider, claims: dict[str, Any], nonce: str | None = None) -> None:
    if claims.get("iss") != provider.endpoints.issuer:
        raise Refused("issuer is not the provider's")
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if provider.client_id not in audiences and claims.get("azp") != provider.client_id:
        raise Refused("token is not for this provider")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp + LEEWAY < time.time():
        raise Refused("token expired")
    if nonce is not None and claims.get("nonce") != nonce:
        raise Refused("nonce does not match")
