"""Secret values, keyed digests and sealed (encrypted) storage of secrets.

`Secret` hides its value from `repr` and `str`. A `Keyring` derives, from the instance secret key,
one HMAC key for lookup digests and one AES-GCM key for sealing, so that a database dump alone
neither reveals nor reproduces API tokens, private keys or client secrets.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets as _secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_SEAL_PREFIX = "v1:"


class Secret:
    """A secret string whose `repr` and `str` are asterisks."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash(self._value)


class UnsealError(Exception):
    """A sealed value was tampered with or sealed under another secret key."""


def _derive(secret_key: str, purpose: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"tessera", info=purpose)
    return hkdf.derive(secret_key.encode())


class Keyring:
    """Keys derived from the instance secret key."""

    def __init__(self, secret_key: str) -> None:
        self._digest_key = _derive(secret_key, b"lookup-digest")
        self._aead = AESGCM(_derive(secret_key, b"seal"))

    def digest(self, value: str) -> str:
        """A keyed digest for looking a secret up without storing it."""
        return hmac.new(self._digest_key, value.encode(), hashlib.sha256).hexdigest()

    def seal(self, value: str, context: str) -> str:
        """Encrypt `value`; `context` (e.g. the table and row) must match when unsealing."""
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, value.encode(), context.encode())
        return _SEAL_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def unseal(self, sealed: str, context: str) -> str:
        if not sealed.startswith(_SEAL_PREFIX):
            raise UnsealError("unknown seal format")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(_SEAL_PREFIX) :])
            return self._aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise UnsealError("cannot unseal") from exc


def new_token(length: int = 60) -> str:
    """A random token of URL-safe letters and digits (authentik's token keys are 60 long)."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(_secrets.choice(alphabet) for _ in range(length))


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def equal(a: str, b: str) -> bool:
    """Constant-time string comparison."""
    return hmac.compare_digest(a.encode(), b.encode())
