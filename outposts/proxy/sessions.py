"""Sessions held in memory: opened cookies, ended core sessions, and when each was last checked.

The hot path is a dictionary lookup: a sealed cookie value seen before maps to its opened
`Session` (claims and the identity headers already built), and the only other checks are its
expiry and whether its core session (`sid`) has ended. Nothing on it waits for I/O.

Ending: SESSION_END (sha256 of the core session key) puts the `sid` in `ended` at once, so every
replica connected to the control channel refuses it within the message's delivery time. A
replica may have missed messages: one that started after them, or one whose control channel was
down. So a cookie a process has not seen before, or has not checked since the control channel
last (re)connected (`epoch`), is checked once with the core by introspecting its access token
(the core revokes a session's grants when the session ends, and answers inactive for a
deactivated user); after that, messages keep it current. While the core cannot be reached the
session is served and checked again after `RECHECK` seconds: an outage of the core must not log
everybody out, and what the core could say is unknowable then anyway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from tessera.outposts.proxy import oidc, sealing
from tessera.outposts.proxy.providers import Provider

log = structlog.get_logger(__name__)
MAX_OPEN = 100_000
RECHECK = 10.0
ENDED_TTL = 7 * 86400


@dataclass(eq=False)
class Session:
    token: str = field(repr=False)
    claims: dict[str, Any]
    sub: str
    sid: str
    exp: float
    iat: float
    checked_epoch: int = -1  # the control-channel epoch it was last confirmed with the core in
    retry_at: float = 0.0  # monotonic time of the next check while the core was unreachable
    headers: dict[str, str] | None = None  # the identity headers, built on first use
    dead: bool = False  # the core said its token is no longer active
    check: asyncio.Task[bool] | None = field(default=None, repr=False)

    @classmethod
    def of_token(cls, token: str, claims: dict[str, Any]) -> Session:
        return cls(
            token=token,
            claims=claims,
            sub=str(claims.get("sub", "")),
            sid=str(claims.get("sid", "")),
            exp=float(claims.get("exp", 0)),
            iat=float(claims.get("iat", 0)),
        )


Checker = Callable[[Provider, str], Awaitable[bool]]


class Sessions:
    """The sessions of one outpost process, shared by all its providers."""

    def __init__(self, checker: Checker) -> None:
        self._checker = checker
        self._open: dict[tuple[str, str], Session] = {}
        self.ended: dict[str, float] = {}  # sid -> wall-clock time it ended
        self.epoch = 0

    def __len__(self) -> int:
        """Opened sessions held in memory."""
        return len(self._open)

    # The control channel --------------------------------------------------------------------

    def end(self, sid: str) -> None:
        """SESSION_END: the core session whose key hashes to `sid` ended."""
        if not sid:
            return
        now = time.time()
        self.ended[sid] = now
        if len(self.ended) % 1024 == 0:
            self.ended = {s: t for s, t in self.ended.items() if now - t < ENDED_TTL}

    def reconnected(self) -> None:
        """The control channel (re)connected: messages may have been missed meanwhile."""
        self.epoch += 1

    # Lookups --------------------------------------------------------------------------------

    def alive(self, session: Session) -> bool:
        return not (session.dead or session.exp < time.time() or session.sid in self.ended)

    def open(self, provider: Provider, sealed: str) -> Session | None:
        """The session in a sealed cookie value (from memory when seen before), or None when
        it does not open or has ended."""
        key = (provider.cookie_name, sealed)
        session = self._open.get(key)
        if session is None:
            try:
                payload = sealing.unseal(provider.session_key, provider.cookie_name, sealed)
                token = payload.get("t")
                if not isinstance(token, str):
                    return None
                session = Session.of_token(token, oidc.unverified_claims(token))
            except (sealing.Unreadable, oidc.Refused):
                return None
            self._remember(key, session)
        return session if self.alive(session) else None

    def _remember(self, key: tuple[str, str], session: Session) -> None:
        if len(self._open) >= MAX_OPEN:  # drop the oldest tenth (dicts keep insertion order)
            for old in list(self._open)[: MAX_OPEN // 10]:
                del self._open[old]
        self._open[key] = session

    def created(self, provider: Provider, sealed: str, session: Session) -> None:
        """A session this process just made at login: already confirmed by the core."""
        session.checked_epoch = self.epoch
        self._remember((provider.cookie_name, sealed), session)

    def confirmed_now(self, session: Session) -> bool:
        """Whether `confirmed` would say yes without asking the core, for a session `open`
        has just returned (the hot path's test: it never waits)."""
        return session.checked_epoch == self.epoch or session.retry_at > time.monotonic()

    async def confirmed(self, provider: Provider, session: Session) -> bool:
        """Whether the core still holds the session (once per epoch; see the module's note)."""
        if session.checked_epoch == self.epoch or session.retry_at > time.monotonic():
            return self.alive(session)
        if session.check is None or session.check.done():
            session.check = asyncio.create_task(self._check(provider, session))
        return await asyncio.shield(session.check)

    async def _check(self, provider: Provider, session: Session) -> bool:
        epoch = self.epoch
        try:
            active = await self._checker(provider, session.token)
        except oidc.CoreUnavailable as exc:
            log.warning("session_check_deferred", provider=provider.name, reason=str(exc))
            session.retry_at = time.monotonic() + RECHECK
            return self.alive(session)
        if not active:
            session.dead = True
            self.end(session.sid)
            return False
        session.checked_epoch = epoch
        return self.alive(session)
