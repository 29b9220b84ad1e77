"""JSON Web Tokens and key sets for the OAuth2 provider, on joserfc.

A `SigningKey` wraps one private key (a certificate-key pair: RSA → RS256, EC → ES256/384/512)
or a client secret (HS256). `verify` accepts only the algorithms the caller names and only keys of
the matching type, so `alg: none` and HS256 signed with a public key never pass.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from joserfc import jws
from joserfc import jwt as _jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OctKey, RSAKey

_EC_ALGS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
MAX_TOKEN_BYTES = 16 * 1024


class InvalidToken(ValueError):
    """A token that is malformed, signed by an unknown key or with an unexpected algorithm."""


@dataclass(frozen=True)
class SigningKey:
    alg: str
    kid: str | None
    key: ECKey | RSAKey | OctKey

    def public_jwk(self) -> dict[str, Any] | None:
        """The key as published in a JWKS (None for a shared secret, which is never published)."""
        if isinstance(self.key, OctKey):
            return None
        return dict(self.key.as_dict(private=False)) | {
            "kid": self.kid,
            "alg": self.alg,
            "use": "sig",
        }


def from_pem(private_pem: str) -> SigningKey:
    """A signing key from a PEM private key; its `kid` is the RFC 7638 thumbprint."""
    try:
        key: ECKey | RSAKey = RSAKey.import_key(private_pem)
        alg = "RS256"
    except (ValueError, JoseError):
        key = ECKey.import_key(private_pem)
        alg = _EC_ALGS.get(str(key.curve_name), "")
        if not alg:
            raise ValueError(f"unsupported curve {key.curve_name}") from None
    return SigningKey(alg, key.thumbprint(), key)


def from_secret(secret: str) -> SigningKey:
    """HS256 with a client secret (providers without a signing key, as in authentik)."""
    return SigningKey("HS256", None, OctKey.import_key(secret.encode()))


def sign(claims: dict[str, Any], key: SigningKey, typ: str = "JWT") -> str:
    header: dict[str, Any] = {"alg": key.alg, "typ": typ}
    if key.kid:
        header["kid"] = key.kid
    return _jwt.encode(header, claims, key.key, algorithms=[key.alg])


def verify(token: str, keys: list[SigningKey]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of `token` if one of `keys` signed it with that key's algorithm. Expiry
    and audience are the caller's business."""
    if not token or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise InvalidToken("malformed token")
    try:
        header = jws.extract_compact(token.encode()).protected
    except (JoseError, ValueError, TypeError) as exc:
        raise InvalidToken("malformed token") from exc
    alg, kid = header.get("alg"), header.get("kid")
    candidates = [k for k in keys if k.alg == alg and (kid is None or k.kid in (kid, None))]
    for key in candidates:
        try:
            decoded = _jwt.decode(token, key.key, algorithms=[key.alg])
        except (JoseError, ValueError, TypeError):
            continue
        return dict(decoded.header), dict(decoded.claims)
    raise InvalidToken("signature does not verify")


def unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a token without checking it: only to find which client's keys to verify it
    with. Raises InvalidToken."""
    if not token or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise InvalidToken("malformed token")
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, TypeError) as exc:
        raise InvalidToken("malformed token") from exc
    if not isinstance(claims, dict):
        raise InvalidToken("malformed token")
    return claims


def jwks(keys: list[SigningKey]) -> dict[str, Any]:
    published = [k.public_jwk() for k in keys]
    return {"keys": [k for k in published if k is not None]}


def half_hash(value: str, alg: str) -> str:
    """`at_hash` / `c_hash`: the left half of the hash the signing algorithm uses."""
    digest = _HASHES.get(alg[-3:], hashlib.sha256)(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


__all__ = [
    "InvalidToken",
    "SigningKey",
    "from_pem",
    "from_secret",
    "half_hash",
    "jwks",
    "sign",
    "unverified_claims",
    "verify",
]
