"""Password hashing with argon2id, at OWASP's recommended cost (19 MiB, t=2, p=1).

Stored hashes are PHC strings (`$argon2id$...`). An empty stored value is an unusable password
that never verifies.
"""

from __future__ import annotations

import argon2

# OWASP Password Storage Cheat Sheet: argon2id, m=19 MiB, t=2, p=1 (a few ms per hash).
_HASHER = argon2.PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
UNUSABLE = ""


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
