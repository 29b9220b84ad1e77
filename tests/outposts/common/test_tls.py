"""A core behind TLS with a self-signed certificate: the outpost refuses it with one clear line,
unless `AUTHENTIK_INSECURE` says otherwise; then the API and the control channel (wss) work."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from outpostkit import Core, Deployed

from tessera.outposts.common import runtime


def _context(tmp_path: Path) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


async def test_a_self_signed_core_needs_insecure(
    core: Core, deployed: Deployed, tmp_path: Path
) -> None:
    tls = Core(core.settings, core.db, ssl_context=_context(tmp_path))  # the same store
    await tls.start()
    url = tls.url
    try:
        strict = runtime.Runtime(deployed.settings(core, host=url), "proxy")
        with pytest.raises(runtime.StartupError) as refused:
            await strict.start()
        assert f"cannot reach the core at {url}" in str(refused.value)
        assert "certificate" in str(refused.value).lower()

        lax = runtime.Runtime(deployed.settings(core, host=url, insecure=True), "proxy")
        snapshot = await lax.start()
        try:
            assert snapshot.outpost.pk == deployed.outpost["pk"]
            for _ in range(100):
                if lax.connected:
                    break
                await asyncio.sleep(0.05)
            assert lax.connected  # wss:// with the same setting
        finally:
            await lax.stop()
    finally:
        await tls.stop()
