"""What userinfo and introspection found about an access token, kept in process for its lifetime.

Verifying an access token costs an ES256 (or RS256) signature check, a revocation lookup, the
user and their groups, and the scope mappings; a relying party that calls userinfo on every
request pays all of it each time. An entry keeps the outcome, keyed by a digest of the token, and
holds while three things stay true:

- the token has not expired (`exp`);
- no commit changed a row that decides it: `Store.state_generation` (users, memberships,
  revocations, grants) and `Store.config_generation` (groups, providers, scope mappings) are
  those of the entry. Commits of this process bump them at once; other worker processes and
  replicas hear of theirs through the bus within milliseconds (`app._config_bus_ctx`), which is
  how a revocation holds everywhere within a second;
- this process hears the others (`Store.hears_others`): while the bus is down nothing is read
  from or put in the cache, so a revocation elsewhere is never masked by an old entry.

Claims that an expression mapping computed may depend on the caller's address, so they are kept
per address (the design's "claims per access token", without giving one caller another's view).
Entries are never shared between clients for introspection: the answer depends on who asks.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from tessera.core import store

# Enough for every live token of a large installation; the oldest go first beyond it.
MAX_ENTRIES = 50_000
# A bound on one entry's per-address claim sets (an expression-mapped token used from many
# addresses recomputes beyond it).
MAX_ADDRESSES = 16


def key_of(raw: str) -> bytes:
    """The cache key of a raw token: a digest, so that memory never holds the token itself."""
    return hashlib.blake2b(raw.encode(), digest_size=24).digest()


@dataclass(slots=True)
class Entry:
    stamp: tuple[int, int]
    expires: float
    client_pk: int
    claims: dict[str, Any]
    # None: the token does not hold (revoked, or its user is inactive or gone), for `refusal`.
    user_pk: int | None
    refusal: str = ""
    # Userinfo bodies: "" when no expression mapping ran, else one per caller address.
    userinfo: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Introspection answers, per asking client.
    introspection: dict[int, dict[str, Any]] = field(default_factory=dict)


class ClaimCache:
    """Entries by token digest, valid for the stamp of the store they were made under."""

    def __init__(self, db: store.Store, max_entries: int = MAX_ENTRIES) -> None:
        self.db = db
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, Entry] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def stamp(self) -> tuple[int, int]:
        return (self.db.state_generation, self.db.config_generation)

    def get(self, key: bytes) -> Entry | None:
        """The live entry of `key`, or None (also whenever this process is deaf to the others)."""
        if not self.db.hears_others:
            return None
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            return None
        if entry.stamp != self.stamp() or entry.expires <= time.time():
            del self._entries[key]
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def put(self, key: bytes, entry: Entry) -> None:
        """Keep `entry` unless the store moved since its stamp was taken (a commit between the
        reads and now) or this process is deaf to the others."""
        if not self.db.hears_others or entry.stamp != self.stamp():
            return
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def remember_userinfo(entry: Entry, address: str, body: dict[str, Any]) -> None:
    if len(entry.userinfo) < MAX_ADDRESSES or address in entry.userinfo:
        entry.userinfo[address] = body


__all__ = ["MAX_ENTRIES", "ClaimCache", "Entry", "key_of", "remember_userinfo"]
