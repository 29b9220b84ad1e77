"""Certificate-key pairs: generation of self-signed pairs and parsing of imported PEM.

Used by the admin API's `crypto/certificatekeypairs/` (import and the `generate` action) and, later,
by the providers that sign tokens and assertions.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

Alg = Literal["rsa", "ecdsa", "ed25519", "ed448"]  # what `generate` makes (authentik's names)
# A key's algorithm in authentik's names (`key_type`); before migration 0010 Tessera stored "ec"
# as "ecdsa", which `KEY_TYPE_ALIASES` still reads.
KeyType = Literal["rsa", "ec", "dsa", "ed25519", "ed448"]
KEY_TYPE_ALIASES: dict[str, KeyType] = {"ecdsa": "ec"}
MAX_PEM_BYTES = 64 * 1024


class CertificateError(ValueError):
    """PEM data that is not a usable certificate or key; `field` names the input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class CertificateInfo:
    fingerprint_sha256: str
    fingerprint_sha1: str
    cert_expiry: dt.datetime
    cert_subject: str
    key_type: KeyType | None


def _fingerprint(cert: x509.Certificate, algorithm: hashes.HashAlgorithm) -> str:
    return ":".join(f"{b:02x}" for b in cert.fingerprint(algorithm))


def _key_type(key: object) -> KeyType | None:
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        return "rsa"
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return "ec"
    if isinstance(key, dsa.DSAPublicKey | dsa.DSAPrivateKey):
        return "dsa"
    if isinstance(key, ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey):
        return "ed25519"
    if isinstance(key, ed448.Ed448PublicKey | ed448.Ed448PrivateKey):
        return "ed448"
    return None


def _public_der(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def parse(certificate_pem: str, key_pem: str) -> CertificateInfo:
    """Check an imported pair and describe it; raise CertificateError naming the bad field."""
    if len(certificate_pem) > MAX_PEM_BYTES:
        raise CertificateError("certificate_data", "Certificate is too large.")
    if len(key_pem) > MAX_PEM_BYTES:
        raise CertificateError("key_data", "Key is too large.")
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem.encode())
    except ValueError:
        raise CertificateError("certificate_data", "Unable to load certificate.") from None
    public = cert.public_key()
    if key_pem:
        try:
            private = serialization.load_pem_private_key(key_pem.encode(), password=None)
        except (ValueError, TypeError):
            raise CertificateError(
                "key_data", "Unable to load private key (possibly encrypted)."
            ) from None
        if _public_der(private.public_key()) != _public_der(public):
            raise CertificateError("key_data", "Private key does not match the certificate.")
    return CertificateInfo(
        fingerprint_sha256=_fingerprint(cert, hashes.SHA256()),
        fingerprint_sha1=_fingerprint(cert, hashes.SHA1()),  # noqa: S303 - an identifier only
        cert_expiry=cert.not_valid_after_utc,
        cert_subject=cert.subject.rfc4514_string(),
        key_type=_key_type(public),
    )


def _san(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)


def _new_key(alg: Alg) -> PrivateKey:
    match alg:
        case "rsa":
            return rsa.generate_private_key(public_exponent=65537, key_size=4096)
        case "ecdsa":
            return ec.generate_private_key(ec.SECP256R1())
        case "ed25519":
            return ed25519.Ed25519PrivateKey.generate()
        case "ed448":
            return ed448.Ed448PrivateKey.generate()


def generate(
    common_name: str, subject_alt_names: list[str], validity_days: int, alg: Alg
) -> tuple[str, str]:
    """A new private key and a self-signed certificate for it, both PEM."""
    key = _new_key(alg)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tessera"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Self-signed"),
        ]
    )
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=validity_days))
    )
    if subject_alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(_san(subject_alt_names)), False)
    # Edwards-curve signatures hash internally: no separate digest (RFC 8410).
    digest = (
        None
        if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey)
        else hashes.SHA256()
    )
    cert = builder.sign(key, digest)
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert_pem, key_pem
