"""Password hashing: argon2id at OWASP's cost, verification, unusable passwords, rehash."""

from __future__ import annotations

import argon2

from tessera.core.crypto import passwords


def test_hash_is_argon2id_with_owasp_parameters() -> None:
    stored = passwords.hash_password("correct horse")
    params = argon2.extract_parameters(stored)
    assert stored.startswith("$argon2id$")
    assert (params.memory_cost, params.time_cost, params.parallelism) == (19 * 1024, 2, 1)
    assert passwords.verify_password(stored, "correct horse")
    assert not passwords.verify_password(stored, "Correct horse")


def test_unusable_and_malformed_hashes_never_verify() -> None:
    assert not passwords.verify_password(passwords.UNUSABLE, "")
    assert not passwords.verify_password("$argon2id$garbage", "x")
    assert not passwords.verify_password("plaintext", "plaintext")


def test_old_parameters_need_rehash() -> None:
    old = argon2.PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash("pw")
    assert passwords.needs_rehash(old)
    assert not passwords.needs_rehash(passwords.hash_password("pw"))
