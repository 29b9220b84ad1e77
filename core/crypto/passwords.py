"""Password hashing with argon2id (argon2-cffi's RFC 9106 low-memory profile).

Stored hashes are PHC strings (`$argon2id$...`). An empty stored value is an unusable password
that never verifies.
"""

from __future__ import annotations

import argon2

_HASHER = argon2.PasswordHasher.from_parameters(argon2.profiles.RFC_9106_LOW_MEMORY)
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
