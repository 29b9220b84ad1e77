"""Machine clients: `Authorization: Bearer` and `Basic` when `intercept_header_auth` is on.

authentik's `checkAuth` order after the cookie (`application/auth*.go`): a 60 s memo keyed by
the header, then a bearer access token (verified with the provider's key set, then confirmed
active by introspection), or Basic credentials: user name `goauthentik.io/token` makes the
password a bearer token; otherwise the user name and app password go to the core's
client_credentials grant and the access token that comes back is verified. `handlers` and
`reverse` call `authenticate`.

# SECURITY: the memo is keyed by a hash of the whole header, holds refusals as well as successes
# (a client retrying a bad password reaches the core once a minute, not once a request), and
# is bounded; a bearer token must be issued to this very provider (`aud`/`azp`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time

import structlog

from tessera.outposts.proxy import oidc
from tessera.outposts.proxy.providers import Provider
from tessera.outposts.proxy.sessions import Session, Sessions

log = structlog.get_logger(__name__)
TTL = 60.0
MAX_ENTRIES = 20_000
MAX_HEADER = 16 * 1024
TOKEN_USER = "goauthentik.io/token"  # noqa: S105 - a user name, not a password


class Unavailable(Exception):
    """The core could not be asked (answered 503: the credentials are not known to be bad)."""


class HeaderAuth:
    def __init__(self, core: oidc.Core, sessions: Sessions) -> None:
        self.core = core
        self.sessions = sessions
        self._memo: dict[str, tuple[float, Session | None]] = {}

    async def authenticate(self, provider: Provider, header: str) -> Session | None:
        """The session the header proves, or None when it proves nothing."""
        if len(header) > MAX_HEADER:
            return None
        key = hashlib.sha256(f"{provider.client_id}\0{header}".encode()).hexdigest()
        now = time.monotonic()
        hit = self._memo.get(key)
        if hit is not None and hit[0] > now:
            session = hit[1]
            return session if session is not None and self.sessions.alive(session) else None
        session = await self._resolve(provider, header)
        if len(self._memo) >= MAX_ENTRIES:
            self._memo = {k: v for k, v in self._memo.items() if v[0] > now}
            if len(self._memo) >= MAX_ENTRIES:
                self._memo.clear()
        self._memo[key] = (now + TTL, session)
        return session

    async def _resolve(self, provider: Provider, header: str) -> Session | None:
        scheme, _, value = header.strip().partition(" ")
        value = value.strip()
        try:
            if scheme.lower() == "bearer" and value:
                return await self._bearer(provider, value)
            if scheme.lower() == "basic" and value:
                return await self._basic(provider, value)
        except oidc.CoreUnavailable as exc:
            log.warning("header_auth_unavailable", provider=provider.name, reason=str(exc))
            raise Unavailable(str(exc)) from exc
        return None

    async def _bearer(self, provider: Provider, token: str) -> Session | None:
        try:
            claims = await self.core.verify(provider, token)
        except oidc.Refused:
            return None
        if not await self.core.introspect(provider, token):
            return None
        session = Session.of_token(token, claims)
        return session if self.sessions.alive(session) else None

    async def _basic(self, provider: Provider, value: str) -> Session | None:
        try:
            raw = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, colon, password = raw.partition(":")
        if not colon or not username or not password:
            return None
        if username == TOKEN_USER:
            return await self._bearer(provider, password)
        try:
            tokens = await self.core.client_credentials(provider, username, password)
            claims = await self.core.verify(provider, tokens.access_token)
        except oidc.Refused:
            return None
        return Session.of_token(tokens.access_token, claims)
