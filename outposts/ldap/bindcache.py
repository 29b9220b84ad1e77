"""Cached bind mode: repeat binds answered locally.

A successful bind is kept under (provider, normalized DN) with an HMAC-SHA256 of the DN and
the password under a key made at process start, never the password itself (# SECURITY: a
memory dump does not hold the clear password; the key is not on disk, so a restart forgets
every entry). A repeat bind with the same DN and password is answered from here while the
core session behind it lives; the entry is dropped when that session ends (SESSION_END),
when the core says the user changed (a DirectoryChanged naming them: password changed,
deactivated), when it expires (the session's expiry, at most `MAX_AGE`), and when a bind
with another password for the DN fails. Used by `outpost`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from tessera.outposts.ldap.provider import Session

MAX_AGE = 3600.0
MAX_ENTRIES = 100_000


@dataclass(eq=False, slots=True)
class Cached:
    digest: bytes
    session: Session
    until: float  # monotonic


class BindCache:
    def __init__(self, max_age: float = MAX_AGE) -> None:
        self._key = secrets.token_bytes(32)
        self.max_age = max_age
        self._entries: dict[tuple[int, str], Cached] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _digest(self, provider: int, ndn: str, password: bytes) -> bytes:
        material = f"{provider}\x00{ndn}\x00".encode() + password
        return hmac.new(self._key, material, hashlib.sha256).digest()

    def get(self, provider: int, ndn: str, password: bytes) -> Session | None:
        found = self._entries.get((provider, ndn))
        if found is None:
            return None
        if found.until <= time.monotonic() or found.session.expired:
            del self._entries[(provider, ndn)]
            return None
        if not hmac.compare_digest(found.digest, self._digest(provider, ndn, password)):
            return None
        return found.session

    def put(self, provider: int, ndn: str, password: bytes, session: Session) -> None:
        if len(self._entries) >= MAX_ENTRIES:
            self.expire()
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))
        until = time.monotonic() + self.max_age
        expires = session.result.expires
        if expires is not None:
            until = min(until, time.monotonic() + max(0.0, expires.timestamp() - time.time()))
        digest = self._digest(provider, ndn, password)
        self._entries[(provider, ndn)] = Cached(digest, session, until)

    def drop(self, provider: int, ndn: str) -> None:
        self._entries.pop((provider, ndn), None)

    def drop_session(self, session_id: str) -> int:
        doomed = [k for k, v in self._entries.items() if v.session.session_id == session_id]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    def drop_users(self, provider: int, user_pks: set[int]) -> int:
        doomed = [
            k
            for k, v in self._entries.items()
            if k[0] == provider and v.session.user_pk in user_pks
        ]
        for key in doomed:
            del self._entries[key]
        return len(doomed)

    def drop_provider(self, provider: int) -> None:
        for key in [k for k in self._entries if k[0] == provider]:
            del self._entries[key]

    def expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, v in self._entries.items() if v.until <= now]:
            del self._entries[key]
