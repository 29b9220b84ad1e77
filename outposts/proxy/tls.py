"""TLS for the outpost's HTTPS listener (`AUTHENTIK_LISTEN__HTTPS`, default `:9443`).

Each provider may name a certificate-key pair (`certificate`); the outpost fetches its
certificate and key with its own token (`fetch_certificates`, the runtime's extras, so they are
kept with the last good configuration) and serves it to clients asking, by SNI, for the
provider's host. Any other name (or none) gets a self-signed certificate, as authentik's
outposts do; it is made by the first handshake that needs it, not at start, so an outpost that
serves only plain HTTP (behind a reverse proxy, the usual case) never loads cryptography's X.509
and key-generation modules (about 2 MiB of its idle memory, issue 17). `main` builds
`Certificates` and updates it with every configuration.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import structlog

from tessera.outposts.common import client as client_
from tessera.outposts.proxy.providers import Provider

log = structlog.get_logger(__name__)
KEYPAIRS = "/api/v3/crypto/certificatekeypairs/"


async def fetch_certificates(
    client: client_.CoreClient, outpost: client_.OutpostInfo, providers: tuple[dict[str, Any], ...]
) -> dict[str, Any]:
    """The runtime's extras: `{"certificates": {<key pair uuid>: {"certificate", "key"}}}`. A
    key pair the core refuses (deleted meanwhile) is left out; the core being unreachable
    fails the fetch, so the last good configuration stays."""
    found: dict[str, dict[str, str]] = {}
    wanted = {str(p["certificate"]) for p in providers if p.get("certificate")}
    for pk in sorted(wanted):
        try:
            certificate = await client.get(f"{KEYPAIRS}{pk}/view_certificate/")
            key = await client.get(f"{KEYPAIRS}{pk}/view_private_key/")
        except client_.CoreRefused as exc:
            log.warning("proxy_certificate_unavailable", keypair=pk, reason=str(exc))
            continue
        if isinstance(certificate, dict) and isinstance(key, dict):
            found[pk] = {"certificate": str(certificate["data"]), "key": str(key["data"])}
    return {"certificates": found}


def _context(certificate_pem: str, key_pem: str) -> ssl.SSLContext:
    """A server context from PEM text (`ssl` loads chains from files only: a private temporary
    directory holds them for the moment of loading)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="tessera-tls-") as folder:
        cert_path, key_path = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        for path, text in ((cert_path, certificate_pem), (key_path, key_pem)):
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(text)
        context.load_cert_chain(cert_path, key_path)
    return context


def self_signed(name: str = "authentik default certificate") -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

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
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return certificate.public_bytes(serialization.Encoding.PEM).decode(), key_pem


class Certificates:
    """The listener's contexts: one per provider host with a certificate, a default for others."""

    def __init__(self) -> None:
        # The listener's own context holds no certificate: `_choose`, which OpenSSL calls for
        # every ClientHello (with the SNI name, or None without one), always hands the
        # connection one that does, the provider's or the self-signed default.
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.sni_callback = self._choose
        self._by_host: dict[str, ssl.SSLContext] = {}
        self._default: ssl.SSLContext | None = None

    @property
    def default(self) -> ssl.SSLContext:
        """The self-signed certificate's context, made on first use (a few milliseconds once)."""
        if self._default is None:
            self._default = _context(*self_signed())
        return self._default

    def update(self, providers: Iterable[Provider], certificates: dict[str, Any]) -> None:
        contexts: dict[str, ssl.SSLContext] = {}
        by_host: dict[str, ssl.SSLContext] = {}
        for provider in providers:
            material = certificates.get(provider.certificate or "")
            if not isinstance(material, dict) or provider.external.hostname is None:
                continue
            pk = str(provider.certificate)
            if pk not in contexts:
                try:
                    contexts[pk] = _context(material["certificate"], material["key"])
                except (ssl.SSLError, KeyError, ValueError) as exc:
                    log.warning("proxy_certificate_refused", keypair=pk, reason=str(exc))
                    continue
            by_host[provider.external.hostname.lower()] = contexts[pk]
        self._by_host = by_host

    def _choose(self, connection: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        chosen = self._by_host.get((name or "").lower())
        connection.context = chosen if chosen is not None else self.default
