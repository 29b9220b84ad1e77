"""Password hashing with argon2id, by default at OWASP's recommended cost (19 MiB, t=2, p=1).

Stored hashes are PHC strings (`$argon2id$...`). An empty stored value is an unusable password
that never verifies. The cost is one setting of the process (`AUTHENTIK_PASSWORD_HASHING__*`),
applied with `configure` by the app factory and the CLI before anything is hashed; a stored hash
with other parameters `needs_rehash`, and the password stage then stores a new one.
"""

from __future__ import annotations

import argon2

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1 (a few ms per hash).
_HASHER = argon2.PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
UNUSABLE = ""


def configure(*, memory_kib: int, time_cost: int, parallelism: int) -> None:
    """Set the cost of new hashes for this process."""
    global _HASHER  # one cost per process, set once at start
    _HASHER = argon2.PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
    )


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str, password: str) -> bool:
    """True when `password` matches `stored`; constant time inside argon2."""
    if not stored.startswith("$argon2"):
        # SECURITY: hash anyway so that a missing or unusable password costs the same time.
        _HASHER.hash(password)
        return False
    try:
        return _HASHER.verify(stored, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return stored.startswith("$argon2") and _HASHER.check_needs_rehash(stored)


def breach_digest(password: str) -> str:
    """The password's SHA-1 in upper-case hex: the form Have I Been Pwned's range API indexes
    (`policies.pwned`). Used for that lookup only, never for storage."""
    import hashlib

    return hashlib.sha1(password.encode(), usedforsecurity=False).hexdigest().upper()
