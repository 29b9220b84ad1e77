"""`AUTHENTIK_REDIS__TLS`, `TLS_REQS` and `TLS_CA_CERT` against a real Redis speaking only TLS (a
throwaway `redis-server` on a free port, its certificate for `localhost` signed by a test CA)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from helpers import free_port
from tlskit import PEM, cert, key, pem_key, write

from tessera.core import cache

REDIS_SERVER = shutil.which("redis-server")
pytestmark = pytest.mark.skipif(REDIS_SERVER is None, reason="needs redis-server")


class TlsRedis:
    def __init__(self, port: int, ca: Path, other_ca: Path) -> None:
        self.port, self.ca, self.other_ca = port, ca, other_ca


@pytest.fixture(scope="module")
def tls_redis() -> Iterator[TlsRedis]:
    assert REDIS_SERVER
    root = Path(tempfile.mkdtemp(prefix="tessera-redistls-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        ca_key, server_key = key(), key()
        ca = cert("Tessera test CA", ca_key)
        server = cert("localhost", server_key, (ca, ca_key), [x509.DNSName("localhost")])
        files = {
            "ca": write(root / "ca.pem", ca.public_bytes(PEM)),
            "other": write(root / "other.pem", cert("Other CA", key()).public_bytes(PEM)),
            "cert": write(root / "server.pem", server.public_bytes(PEM)),
            "key": write(root / "server.key", pem_key(server_key), 0o600),
        }
        port = free_port()
        process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                "0",
                "--tls-port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--tls-cert-file",
                str(files["cert"]),
                "--tls-key-file",
                str(files["key"]),
                "--tls-ca-cert-file",
                str(files["ca"]),
                "--tls-auth-clients",
                "no",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield TlsRedis(port, files["ca"], files["other"])
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def _backend(server: TlsRedis, host: str = "localhost", **tls: Any) -> Any:
    return cache.from_settings(host, server.port, 0, "", "tessera-tls-test:", **tls)


async def _works(backend: Any) -> bool:
    try:
        await backend.set("k", {"v": 1}, 5)
        return bool(await backend.get("k") == {"v": 1})
    except cache.CacheUnavailable:
        return False
    finally:
        await backend.close()


async def test_verified_tls(tls_redis: TlsRedis) -> None:
    good = _backend(tls_redis, tls=True, tls_reqs="required", tls_ca_cert=str(tls_redis.ca))
    assert await _works(good)


async def test_a_wrong_ca_or_host_name_is_refused(tls_redis: TlsRedis) -> None:
    wrong_ca = _backend(
        tls_redis, tls=True, tls_reqs="required", tls_ca_cert=str(tls_redis.other_ca)
    )
    assert not await _works(wrong_ca)
    # The certificate names localhost, not 127.0.0.1.
    wrong_name = _backend(
        tls_redis, "127.0.0.1", tls=True, tls_reqs="required", tls_ca_cert=str(tls_redis.ca)
    )
    assert not await _works(wrong_name)


async def test_unchecked_tls_and_plain_text(tls_redis: TlsRedis) -> None:
    # authentik's default TLS_REQS "none": encrypted, the certificate not checked.
    assert await _works(
        _backend(tls_redis, tls=True, tls_reqs="none", tls_ca_cert=str(tls_redis.other_ca))
    )
    # Plain text to a TLS-only server does not work (and is not retried without TLS).
    assert not await _works(_backend(tls_redis))
