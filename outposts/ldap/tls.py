"""TLS for LDAPS (6636) and StartTLS (3389), with pyOpenSSL as Twisted uses it.

Each provider may name a certificate-key pair; the outpost fetches its certificate and key
with its own token (`fetch_certificates`, the runtime's extras, kept with the last good
configuration, as the proxy outpost does) and serves it to clients whose SNI names the
provider's `tls_server_name`. A client naming nothing known gets the certificate of a provider
without a `tls_server_name`, else a self-signed certificate made at start (authentik's
fallback). `Certificates.factory` is what `listenSSL` and `startTLS` take. Used by `server` and
`main`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from OpenSSL import SSL, crypto
from twisted.internet.interfaces import IOpenSSLContextFactory
from zope.interface import implementer  # type: ignore[import-untyped]

from tessera.core.wire import ldap as wire
from tessera.outposts.common import client as client_

log = structlog.get_logger(__name__)
KEYPAIRS = "/api/v3/crypto/certificatekeypairs/"


async def fetch_certificates(
    client: client_.CoreClient, outpost: client_.OutpostInfo, providers: tuple[dict[str, Any], ...]
) -> dict[str, Any]:
    """`{"certificates": {<key pair uuid>: {"certificate", "key"}}}`; a key pair the core
    refuses is left out; the core being away fails the fetch (the last good one stays)."""
    found: dict[str, dict[str, str]] = {}
    for pk in sorted({str(p["certificate"]) for p in providers if p.get("certificate")}):
        try:
            certificate = await client.get(f"{KEYPAIRS}{pk}/view_certificate/")
            key = await client.get(f"{KEYPAIRS}{pk}/view_private_key/")
        except (client_.CoreRefused, client_.CoreResponseError) as exc:
            log.warning("ldap_certificate_unavailable", keypair=pk, reason=str(exc))
            continue
        if isinstance(certificate, dict) and isinstance(key, dict):
            found[pk] = {"certificate": str(certificate["data"]), "key": str(key["data"])}
    return {"certificates": found}


def self_signed(name: str = "authentik default certificate") -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def context(certificate_pem: str, key_pem: str) -> SSL.Context:
    """A server context from PEM text (the first certificate is the leaf, the rest its chain)."""
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_2_VERSION)
    ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE)
    blocks = [
        b + "-----END CERTIFICATE-----\n"
        for b in certificate_pem.split("-----END CERTIFICATE-----")
        if "-----BEGIN CERTIFICATE-----" in b
    ]
    if not blocks:
        raise ValueError("no certificate")
    ctx.use_certificate(x509.load_pem_x509_certificate(blocks[0].strip().encode()))
    for extra in blocks[1:]:
        ctx.add_extra_chain_cert(x509.load_pem_x509_certificate(extra.strip().encode()))
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    ):
        raise ValueError("unsupported key type")
    ctx.use_privatekey(key)
    ctx.check_privatekey()
    return ctx


class Certificates:
    """The contexts of the TLS listeners: chosen per connection by SNI."""

    def __init__(self) -> None:
        self.fallback = context(*self_signed())
        self.default = self.fallback
        self.by_name: dict[str, SSL.Context] = {}
        self.front = context(*self_signed())
        self.front.set_tlsext_servername_callback(self._choose)
        self.factory = _Factory(self)

    def update(
        self, providers: Iterable[wire.LDAPOutpostConfig], material: Mapping[str, Any]
    ) -> None:
        made: dict[str, SSL.Context] = {}
        by_name: dict[str, SSL.Context] = {}
        default = self.fallback
        for provider in providers:
            pk = str(provider.certificate or "")
            found = material.get(pk)
            if not pk or not isinstance(found, Mapping):
                continue
            if pk not in made:
                try:
                    made[pk] = context(str(found["certificate"]), str(found["key"]))
                except (SSL.Error, crypto.Error, KeyError, ValueError) as exc:
                    log.warning("ldap_certificate_refused", keypair=pk, reason=str(exc)[:200])
                    continue
            if provider.tls_server_name:
                by_name[provider.tls_server_name.lower()] = made[pk]
            elif default is self.fallback:
                default = made[pk]
        self.by_name, self.default = by_name, default

    def _choose(self, connection: SSL.Connection) -> None:
        raw = connection.get_servername()
        name = raw.decode("ascii", "replace").lower() if raw else ""
        connection.set_context(self.by_name.get(name, self.default))


@implementer(IOpenSSLContextFactory)
class _Factory:
    """Twisted's old-style context factory: the front context whose SNI callback switches."""

    def __init__(self, certificates: Certificates) -> None:
        self.certificates = certificates

    def getContext(self) -> SSL.Context:
        return self.certificates.front
