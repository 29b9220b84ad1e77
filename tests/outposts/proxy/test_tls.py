"""The outpost's HTTPS listener: a provider's certificate-key pair served for its host (chosen
by SNI), a self-signed default for any other name."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from helpers import Server, free_port
from proxykit import DOMAIN, OutpostProcess, admin, config, make_proxy_outpost

from tessera.outposts.proxy import tls
from tessera.outposts.proxy.providers import Provider


@pytest.fixture
def outposts() -> Iterator[list[OutpostProcess]]:
    started: list[OutpostProcess] = []
    yield started
    for outpost in started:
        outpost.stop()


async def _served_certificate(port: int, name: str) -> x509.Certificate:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    _reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname=name
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der)


@pytest.mark.slow
async def test_provider_certificates_by_sni(
    core: Server, tmp_path: Path, outposts: list[OutpostProcess]
) -> None:
    host = f"secure.{DOMAIN}"
    keypair = admin(
        core,
        "POST",
        "crypto/certificatekeypairs/generate/",
        {"common_name": host, "alg": "ecdsa", "validity_days": 30},
    )
    pem = admin(core, "GET", f"crypto/certificatekeypairs/{keypair['pk']}/view_certificate/")
    expected = x509.load_pem_x509_certificate(pem["data"].encode())
    _outpost, key = make_proxy_outpost(core, f"https://{host}", certificate=keypair["pk"])
    process = OutpostProcess(core, key, tmp_path, free_port())
    outposts.append(process)
    await process.ready()
    await process_https_ready(process.https_port)
    served = await _served_certificate(process.https_port, host)
    assert served.fingerprint(served.signature_hash_algorithm) == expected.fingerprint(
        expected.signature_hash_algorithm
    )
    other = await _served_certificate(process.https_port, f"other.{DOMAIN}")
    assert other != expected
    assert "authentik default certificate" in other.subject.rfc4514_string()


async def process_https_ready(port: int, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)


def test_a_certificate_that_does_not_load_is_left_out() -> None:
    certificates = tls.Certificates()
    provider = Provider.build(
        config(external_host="https://a.example.com", certificate=str(uuid.uuid4()))
    )
    broken = {provider.certificate: {"certificate": "not a pem", "key": "nope"}}
    certificates.update([provider], broken)
    assert certificates._by_host == {}
    cert, key = tls.self_signed("x")
    certificates.update([provider], {provider.certificate: {"certificate": cert, "key": key}})
    assert set(certificates._by_host) == {"a.example.com"}


async def _handshake(context: ssl.SSLContext, name: str) -> x509.Certificate:
    """The certificate a listener on `context` serves to a client asking for `name` by SNI
    (none when `name` is empty, as a client connecting to an address does)."""

    async def hang_up(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0, ssl=context)
    try:
        port = server.sockets[0].getsockname()[1]
        return await _served_certificate(port, name)
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("name", ["", "unknown.example.com"])
async def test_a_client_without_a_provider_name_gets_the_self_signed_default(name: str) -> None:
    # The listener's own context holds no certificate; a handshake without SNI (or for a
    # name no provider serves) must still get one, the default made on first use.
    certificates = tls.Certificates()
    assert certificates._default is None  # not made at start
    served = await _handshake(certificates.context, name)
    assert "authentik default certificate" in served.subject.rfc4514_string()
    again = await _handshake(certificates.context, name)
    assert again == served  # made once


async def test_a_provider_host_gets_its_own_certificate_on_the_bare_listener() -> None:
    certificates = tls.Certificates()
    provider = Provider.build(
        config(external_host="https://a.example.com", certificate=str(uuid.uuid4()))
    )
    cert, key = tls.self_signed("provider a")
    certificates.update([provider], {provider.certificate: {"certificate": cert, "key": key}})
    served = await _handshake(certificates.context, "A.example.com")
    assert "provider a" in served.subject.rfc4514_string()


START_PROBE = """
import json, sys
from tessera.outposts.proxy import tls
tls.Certificates()
print(json.dumps(sorted(m for m in sys.modules if m.startswith("cryptography.x509"))))
"""


def test_the_listener_is_made_without_cryptographys_x509_modules() -> None:
    # Issue 17: an outpost serving plain HTTP only never pays for X.509 and key generation.
    out = subprocess.run(
        [sys.executable, "-c", START_PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
