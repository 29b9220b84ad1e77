"""Cryptography for the core: password hashing, secret digests and sealing, key pairs.

The only layer that imports argon2, cryptography and joserfc. Keys for digests and sealing are
derived from the secret key with HKDF, one purpose per derived key.
"""

from tessera.core.crypto import certificates, jwt, passwords, secrets, work
from tessera.core.crypto.secrets import Keyring, Secret

__all__ = ["Keyring", "Secret", "certificates", "jwt", "passwords", "secrets", "work"]
