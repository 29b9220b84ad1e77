"""`AUTHENTIK_POSTGRESQL__SSLMODE` against a real PostgreSQL speaking TLS: a throwaway cluster on a
free port whose certificate (for `localhost`) a test CA signed, and which asks the `postgres` user
for a client certificate. Each mode connects or fails as libpq's does, and a failure is one line
naming the host setting and the mode."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from helpers import SECRET_KEY, free_port
from tlskit import PEM as pem
from tlskit import cert as _cert
from tlskit import key as _key
from tlskit import pem_key as _pem_key
from tlskit import write as _write

from tessera.core import config
from tessera.core.store import Store, StoreUnavailable

INITDB = shutil.which("initdb")
PG_CTL = shutil.which("pg_ctl")


def _postgres_user() -> bool:
    try:
        import pwd

        pwd.getpwnam("postgres")
    except (ImportError, KeyError):
        return False
    return os.geteuid() == 0


pytestmark = pytest.mark.skipif(
    not (INITDB and PG_CTL and _postgres_user()),
    reason="needs initdb/pg_ctl and the postgres user (a throwaway TLS cluster)",
)


class Cluster:
    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.files: dict[str, Path] = {}


def _as_postgres(*args: str) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *args],
        check=True,
        capture_output=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    assert INITDB and PG_CTL
    root = Path(tempfile.mkdtemp(prefix="tessera-pgtls-"))
    try:
        root.chmod(0o755)
        shutil.chown(root, "postgres", "postgres")  # its log and socket go here
        certs = root / "certs"
        certs.mkdir(mode=0o755)
        ca_key = _key()
        ca = _cert("Tessera test CA", ca_key)
        server_key = _key()
        server = _cert(
            "localhost", server_key, (ca, ca_key), [x509.DNSName("localhost")]
        )  # not 127.0.0.1: verify-full must check the name
        client_key = _key()
        client = _cert("postgres", client_key, (ca, ca_key))
        other_ca_key = _key()
        cluster = Cluster(root, free_port())
        cluster.files = {
            "ca": _write(certs / "ca.pem", ca.public_bytes(pem)),
            "other_ca": _write(
                certs / "other-ca.pem", _cert("Other CA", other_ca_key).public_bytes(pem)
            ),
            "client_cert": _write(certs / "client.pem", client.public_bytes(pem)),
            "client_key": _write(certs / "client.key", _pem_key(client_key), 0o600),
        }
        data = root / "data"
        data.mkdir(mode=0o700)
        shutil.chown(data, "postgres", "postgres")
        _as_postgres(INITDB, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        _write(data / "server.crt", server.public_bytes(pem))
        _write(data / "server.key", _pem_key(server_key), 0o600)
        _write(data / "root.crt", ca.public_bytes(pem))
        for name in ("server.crt", "server.key", "root.crt"):
            shutil.chown(data / name, "postgres", "postgres")
        # Only TLS; the postgres user must show a client certificate, "plain" any TLS connection.
        (data / "pg_hba.conf").write_text(
            "local all postgres trust\n"
            "hostssl all postgres 127.0.0.1/32 cert\n"
            "hostssl all plain 127.0.0.1/32 trust\n"
            "hostssl all postgres ::1/128 cert\n"
        )
        with (data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {cluster.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{root}'\nssl = on\nssl_ca_file = 'root.crt'\n"
                "max_connections = 20\nshared_buffers = 16MB\nfsync = off\n"
            )
        _as_postgres(PG_CTL, "-D", str(data), "-l", str(root / "log"), "-w", "start")
        _as_postgres(
            "psql",
            "-h",
            str(root),
            "-p",
            str(cluster.port),
            "-U",
            "postgres",
            "-c",
            "CREATE ROLE plain LOGIN",
        )
        yield cluster
    finally:
        stop = [PG_CTL, "-D", str(root / "data"), "-m", "immediate", "stop"]
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *stop],
            check=False,
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def _settings(cluster: Cluster, tmp_path: Path, **pg: Any) -> config.Settings:
    values = {"host": "localhost", "port": cluster.port, "user": "plain", "name": "postgres", **pg}
    return config.load(data_dir=tmp_path / "data", secret_key=SECRET_KEY, postgresql=values)


async def _ssl_in_use(settings: config.Settings) -> bool:
    db = Store(settings)
    await db.open()
    try:
        async with db.read() as tx:
            import sqlalchemy as sa

            row = (
                await tx.conn.execute(
                    sa.text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                )
            ).first()
            return bool(row[0])
    finally:
        await db.close()


async def _refused(settings: config.Settings) -> str:
    db = Store(settings)
    with pytest.raises(StoreUnavailable) as raised:
        await db.open()
    await db.close()
    return str(raised.value)


@pytest.mark.parametrize("mode", ["prefer", "allow", "require"])
async def test_unverified_modes_use_tls(mode: str, cluster: Cluster, tmp_path: Path) -> None:
    assert await _ssl_in_use(_settings(cluster, tmp_path, sslmode=mode))


async def test_disable_is_refused_by_a_tls_only_server(cluster: Cluster, tmp_path: Path) -> None:
    message = await _refused(_settings(cluster, tmp_path, sslmode="disable"))
    assert "AUTHENTIK_POSTGRESQL__HOST (sslmode disable): cannot reach the database" in message


async def test_verify_full_with_the_right_ca(cluster: Cluster, tmp_path: Path) -> None:
    settings = _settings(
        cluster, tmp_path, sslmode="verify-full", sslrootcert=str(cluster.files["ca"])
    )
    assert await _ssl_in_use(settings)


@pytest.mark.parametrize("mode", ["verify-ca", "verify-full", "require"])
async def test_a_wrong_root_certificate_fails_clearly(
    mode: str, cluster: Cluster, tmp_path: Path
) -> None:
    settings = _settings(
        cluster, tmp_path, sslmode=mode, sslrootcert=str(cluster.files["other_ca"])
    )
    message = await _refused(settings)
    assert f"AUTHENTIK_POSTGRESQL__HOST (sslmode {mode}): cannot reach the database" in message
    assert "\n" not in message


async def test_verify_full_checks_the_host_name(cluster: Cluster, tmp_path: Path) -> None:
    ca = str(cluster.files["ca"])
    # The certificate names localhost, not 127.0.0.1: verify-ca takes it, verify-full does not.
    assert await _ssl_in_use(
        _settings(cluster, tmp_path, host="127.0.0.1", sslmode="verify-ca", sslrootcert=ca)
    )
    message = await _refused(
        _settings(cluster, tmp_path, host="127.0.0.1", sslmode="verify-full", sslrootcert=ca)
    )
    assert "(sslmode verify-full)" in message


async def test_client_certificate(cluster: Cluster, tmp_path: Path) -> None:
    files = cluster.files
    with_cert = _settings(
        cluster,
        tmp_path,
        user="postgres",
        sslmode="verify-full",
        sslrootcert=str(files["ca"]),
        sslcert=str(files["client_cert"]),
        sslkey=str(files["client_key"]),
    )
    assert await _ssl_in_use(with_cert)
    without = _settings(
        cluster, tmp_path, user="postgres", sslmode="verify-full", sslrootcert=str(files["ca"])
    )
    assert "cannot reach the database" in await _refused(without)
