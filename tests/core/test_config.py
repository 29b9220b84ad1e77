"""Settings as authentik documents them: comma lists, `env://` and `file://` values, authentik keys
Tessera lacks refused by name, unknown keys warned about, PostgreSQL and Redis TLS, and the
`tessera --version` / `tessera dump-config` commands."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers import PG_HOST, PG_USER, REDIS_HOST, SECRET_KEY, base_env, free_port, run_cli

from tessera.core import cache, config
from tessera.core.config import keys
from tessera.core.store import Store, StoreUnavailable, tls

Env = pytest.MonkeyPatch


def _load(tmp_path: Path, **overrides: Any) -> config.Settings:
    return config.load(data_dir=tmp_path / "data", **overrides)


# Lists, indirections -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "10.0.0.0/8,192.168.0.0/16",
        " 10.0.0.0/8 , 192.168.0.0/16 ,",
        '["10.0.0.0/8","192.168.0.0/16"]',
    ],
)
def test_lists_comma_separated_or_json(raw: str, monkeypatch: Env, tmp_path: Path) -> None:
    monkeypatch.setenv("AUTHENTIK_LISTEN__TRUSTED_PROXY_CIDRS", raw)
    assert _load(tmp_path).listen.trusted_proxy_cidrs == ["10.0.0.0/8", "192.168.0.0/16"]


def test_env_and_file_values(monkeypatch: Env, tmp_path: Path) -> None:
    secret = tmp_path / "pg-password"
    secret.write_text("from-a-file\n")
    monkeypatch.setenv("AUTHENTIK_POSTGRESQL__PASSWORD", f"file://{secret}")
    monkeypatch.setenv("REDIS_SECRET", "from-another-variable")
    monkeypatch.setenv("AUTHENTIK_REDIS__PASSWORD", "env://REDIS_SECRET")
    monkeypatch.setenv("AUTHENTIK_EMAIL__PORT", "env://NOT_SET_ANYWHERE?2525")
    monkeypatch.setenv("AUTHENTIK_EMAIL__HOST", f"file://{tmp_path}/missing?smtp.lan")
    monkeypatch.setenv("AUTHENTIK_SECRET_KEY", f"file://{tmp_path}/key")
    (tmp_path / "key").write_text(SECRET_KEY)
    settings = _load(tmp_path)
    assert settings.postgresql.password.get_secret_value() == "from-a-file"
    assert settings.redis.password.get_secret_value() == "from-another-variable"
    assert settings.email.port == 2525 and settings.email.host == "smtp.lan"
    assert settings.secret_key is not None and settings.secret_key.get_secret_value() == SECRET_KEY
    assert settings.origins["postgresql.password"] == (
        f"AUTHENTIK_POSTGRESQL__PASSWORD (file://{secret})"
    )
    assert settings.origins["redis.password"] == "AUTHENTIK_REDIS__PASSWORD (env://REDIS_SECRET)"


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        ("env://NOT_SET_ANYWHERE", "no such environment variable"),
        ("file:///nonexistent/x", "No such file"),
    ],
)
def test_missing_indirection_names_the_key(
    raw: str, needle: str, monkeypatch: Env, tmp_path: Path
) -> None:
    monkeypatch.setenv("AUTHENTIK_POSTGRESQL__PASSWORD", raw)
    with pytest.raises(config.ConfigError) as raised:
        _load(tmp_path)
    message = str(raised.value)
    assert message.startswith("AUTHENTIK_POSTGRESQL__PASSWORD: ") and needle in message


def test_yaml_values_take_indirections_too(monkeypatch: Env, tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("yaml-secret")
    config_file = tmp_path / "tessera.yaml"
    config_file.write_text(f"postgresql:\n  password: file://{tmp_path}/pw\n")
    settings = config.load(config_file, data_dir=tmp_path / "data")
    assert settings.postgresql.password.get_secret_value() == "yaml-secret"
    assert settings.origins["postgresql.password"] == f"config file {config_file}"


def test_tessera_prefix_wins_and_is_the_origin(monkeypatch: Env, tmp_path: Path) -> None:
    monkeypatch.setenv("AUTHENTIK_LOG_LEVEL", "debug")
    monkeypatch.setenv("TESSERA_LOG_LEVEL", "warning")
    settings = _load(tmp_path)
    assert settings.log_level == "warning" and settings.origins["log_level"] == "TESSERA_LOG_LEVEL"


# Known, refused and unknown keys -------------------------------------------------------------

# A value for each authentik key Tessera reads, and what it must become.
SAMPLES: dict[str, tuple[str, Any]] = {
    "secret_key": (SECRET_KEY, SECRET_KEY),
    "log_level": ("debug", "debug"),
    "bootstrap_password": ("bootstrap-pw", "bootstrap-pw"),
    "bootstrap_token": ("bootstrap-token", "bootstrap-token"),
    "bootstrap_email": ("admin@home.arpa", "admin@home.arpa"),
    "postgresql.host": ("db.lan", "db.lan"),
    "postgresql.port": ("5433", 5433),
    "postgresql.name": ("idp", "idp"),
    "postgresql.user": ("idp-user", "idp-user"),
    "postgresql.password": ("pg-pw", "pg-pw"),
    "postgresql.sslmode": ("verify-full", "verify-full"),
    "postgresql.sslrootcert": ("/certs/ca.pem", "/certs/ca.pem"),
    "postgresql.sslcert": ("/certs/client.pem", "/certs/client.pem"),
    "postgresql.sslkey": ("/certs/client.key", "/certs/client.key"),
    "redis.host": ("redis.lan", "redis.lan"),
    "redis.port": ("6380", 6380),
    "redis.db": ("3", 3),
    "redis.username": ("idp", "idp"),
    "redis.password": ("redis-pw", "redis-pw"),
    "redis.tls": ("true", True),
    "redis.tls_reqs": ("required", "required"),
    "redis.tls_ca_cert": ("/certs/redis-ca.pem", "/certs/redis-ca.pem"),
    "cache.timeout_policies": ("120", 120.0),
    "listen.http": ("0.0.0.0:9100", "0.0.0.0:9100"),
    "listen.metrics": ("0.0.0.0:9301", "0.0.0.0:9301"),
    "listen.trusted_proxy_cidrs": ("10.1.0.0/16,10.2.0.0/16", ["10.1.0.0/16", "10.2.0.0/16"]),
    "web.workers": ("3", 3),
    "email.host": ("smtp.lan", "smtp.lan"),
    "email.port": ("587", 587),
    "email.username": ("mailer", "mailer"),
    "email.password": ("mail-pw", "mail-pw"),
    "email.use_tls": ("true", True),
    "email.use_ssl": ("true", True),
    "email.timeout": ("30", 30),
    "email.from": ("idp@home.arpa", "idp@home.arpa"),
    "error_reporting.enabled": ("true", True),
    "disable_startup_analytics": ("false", False),
    "disable_update_check": ("false", False),
    "outposts.disable_embedded_outpost": ("true", True),
}


def _env_name(dotted: str) -> str:
    return "AUTHENTIK_" + dotted.upper().replace(".", "__")


def _value(settings: config.Settings, dotted: str) -> Any:
    value: Any = settings
    for part in dotted.split("."):
        value = getattr(value, "from_" if part == "from" else part)
    return value.get_secret_value() if hasattr(value, "get_secret_value") else value


def test_every_authentik_key_tessera_has_is_read(monkeypatch: Env, tmp_path: Path) -> None:
    assert set(SAMPLES) == keys.SUPPORTED
    fields = config.setting_keys()
    for dotted in keys.SUPPORTED:
        assert dotted in fields, dotted
    for dotted, (raw, _) in SAMPLES.items():
        monkeypatch.setenv(_env_name(dotted), raw)
    settings = _load(tmp_path)
    assert settings.warnings == []
    for dotted, (_, expected) in SAMPLES.items():
        assert _value(settings, dotted) == expected, dotted
        assert settings.origins[dotted] == _env_name(dotted)


# Every key of authentik's configuration reference (website/docs/install-config/configuration),
# as dotted paths; `READ_REPLICAS__0__*` stands for every replica.
AUTHENTIK_REFERENCE = [
    "postgresql.host",
    "postgresql.name",
    "postgresql.user",
    "postgresql.port",
    "postgresql.password",
    "postgresql.use_pgbouncer",
    "postgresql.use_pgpool",
    "postgresql.sslmode",
    "postgresql.sslrootcert",
    "postgresql.sslcert",
    "postgresql.sslkey",
    "postgresql.conn_max_age",
    "postgresql.conn_health_checks",
    "postgresql.disable_server_side_cursors",
    "postgresql.default_schema",
    "postgresql.read_replicas.0.host",
    "postgresql.read_replicas.0.sslmode",
    "redis.host",
    "redis.port",
    "redis.db",
    "redis.username",
    "redis.password",
    "redis.tls",
    "redis.tls_reqs",
    "redis.tls_ca_cert",
    "result_backend.url",
    "cache.url",
    "cache.timeout",
    "cache.timeout_flows",
    "cache.timeout_policies",
    "cache.timeout_reputation",
    "channel.url",
    "broker.url",
    "broker.transport_options",
    "listen.http",
    "listen.https",
    "listen.ldap",
    "listen.ldaps",
    "listen.metrics",
    "listen.debug",
    "listen.debug_py",
    "listen.trusted_proxy_cidrs",
    "storage.media.backend",
    "storage.media.s3.region",
    "storage.media.s3.access_key",
    "storage.media.s3.bucket_name",
    "secret_key",
    "log_level",
    "cookie_domain",
    "events.context_processors.geoip",
    "events.context_processors.asn",
    "disable_update_check",
    "error_reporting.enabled",
    "error_reporting.sentry_dsn",
    "error_reporting.environment",
    "error_reporting.send_pii",
    "error_reporting.extra_args",
    "email.host",
    "email.port",
    "email.username",
    "email.password",
    "email.use_tls",
    "email.use_ssl",
    "email.timeout",
    "email.from",
    "outposts.container_image_base",
    "outposts.discover",
    "outposts.disable_embedded_outpost",
    "ldap.task_timeout_hours",
    "ldap.page_size",
    "ldap.tls.ciphers",
    "reputation.expiry",
    "session_storage",
    "sessions.unauthenticated_age",
    "web.workers",
    "web.threads",
    "worker.concurrency",
    "web.path",
]


@pytest.mark.parametrize("dotted", AUTHENTIK_REFERENCE)
def test_every_key_of_authentiks_reference_is_read_refused_or_known(dotted: str) -> None:
    """No documented key falls through to "unknown": each is read (a setting of Tessera),
    refused at start by name, or known not to be a server setting."""
    read = dotted in config.setting_keys()
    refused = keys.unsupported(dotted)
    known = dotted in keys.NOT_SETTINGS
    assert [read, refused, known].count(True) == 1, (read, refused, known)


def test_refused_and_supported_keys_do_not_overlap() -> None:
    for dotted in config.setting_keys():
        assert not keys.unsupported(dotted), dotted


@pytest.mark.parametrize(
    "name",
    [
        "AUTHENTIK_POSTGRESQL__USE_PGBOUNCER",
        "AUTHENTIK_DEBUG",
        "AUTHENTIK_POSTGRESQL__READ_REPLICAS__0__HOST",
        "AUTHENTIK_STORAGE__MEDIA__BACKEND",
        "AUTHENTIK_ERROR_REPORTING__SENTRY_DSN",
        "TESSERA_COOKIE_DOMAIN",
        "AUTHENTIK_OUTPOSTS__CONTAINER_IMAGE_BASE",
    ],
)
def test_authentik_key_tessera_lacks_stops_start_naming_it(
    name: str, monkeypatch: Env, tmp_path: Path
) -> None:
    monkeypatch.setenv(name, "1")
    with pytest.raises(config.ConfigError) as raised:
        _load(tmp_path)
    assert str(raised.value) == f"not supported by Tessera: {name}"


def test_unknown_keys_are_warnings_naming_them(monkeypatch: Env, tmp_path: Path) -> None:
    monkeypatch.setenv("AUTHENTIK_POSTGRESQL__HOTS", "db")  # a typo
    monkeypatch.setenv("TESSERA_LOGLEVEL", "debug")
    monkeypatch.setenv("AUTHENTIK_HOST", "https://idp.lan")  # the outposts' setting: not a typo
    monkeypatch.setenv("AUTHENTIK_TAG", "2025.2")  # the reference compose file's
    settings = _load(tmp_path)
    assert settings.warnings == [
        "AUTHENTIK_POSTGRESQL__HOTS: unknown setting, ignored (a typo?)",
        "TESSERA_LOGLEVEL: unknown setting, ignored (a typo?)",
    ]


# PostgreSQL TLS ------------------------------------------------------------------------------


def _ca(tmp_path: Path) -> Path:
    """A CA certificate that signed nothing the test servers present."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Unrelated test CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _pg(tmp_path: Path, database: str, **pg: Any) -> config.Settings:
    return config.load(
        data_dir=tmp_path / "data",
        secret_key=SECRET_KEY,
        postgresql={"host": PG_HOST, "user": PG_USER, "name": database, **pg},
    )


def test_ssl_argument_per_mode(tmp_path: Path) -> None:
    ca = _ca(tmp_path)
    pg = config.PostgreSQL
    assert tls.ssl_argument(pg(sslmode="disable")) is False
    assert tls.ssl_argument(pg(sslmode="prefer")) == "prefer"
    assert tls.ssl_argument(pg(sslmode="allow")) == "allow"
    require = tls.ssl_argument(pg(sslmode="require"))
    assert require.verify_mode == ssl.CERT_NONE and not require.check_hostname
    require_ca = tls.ssl_argument(pg(sslmode="require", sslrootcert=str(ca)))
    assert require_ca.verify_mode == ssl.CERT_REQUIRED  # libpq checks the chain then too
    verify_ca = tls.ssl_argument(pg(sslmode="verify-ca", sslrootcert=str(ca)))
    assert verify_ca.verify_mode == ssl.CERT_REQUIRED and not verify_ca.check_hostname
    full = tls.ssl_argument(pg(sslmode="verify-full", sslrootcert=str(ca)))
    assert full.verify_mode == ssl.CERT_REQUIRED and full.check_hostname
    with pytest.raises(config.ConfigError, match="AUTHENTIK_POSTGRESQL__SSLROOTCERT"):
        tls.ssl_argument(pg(sslmode="verify-full", sslrootcert=str(tmp_path / "none.pem")))
    with pytest.raises(config.ConfigError, match="AUTHENTIK_POSTGRESQL__SSLCERT"):
        tls.ssl_argument(pg(sslmode="require", sslcert=str(ca)))  # no key for it
    with pytest.raises(config.ConfigError, match="SSLKEY: given without SSLCERT"):
        tls.ssl_argument(pg(sslmode="require", sslkey=str(ca)))


@pytest.mark.parametrize("mode", ["disable", "prefer", "allow"])
async def test_local_postgresql_with_plain_modes(
    mode: str, tmp_path: Path, pg_database: str
) -> None:
    db = Store(_pg(tmp_path, pg_database, sslmode=mode))
    await db.open()
    try:
        await db.ping()
    finally:
        await db.close()


@pytest.mark.parametrize("mode", ["require", "verify-ca", "verify-full"])
async def test_verified_modes_fail_clearly_without_a_matching_server(
    mode: str, tmp_path: Path, pg_database: str
) -> None:
    """The local server offers no TLS (or a certificate this CA did not sign): no connection,
    and the one-line error names the host setting and the mode, never falling back to plain."""
    db = Store(_pg(tmp_path, pg_database, sslmode=mode, sslrootcert=str(_ca(tmp_path))))
    with pytest.raises(StoreUnavailable) as raised:
        await db.open()
    await db.close()
    assert f"AUTHENTIK_POSTGRESQL__HOST (sslmode {mode}): cannot reach the database" in str(
        raised.value
    )


# Redis TLS -----------------------------------------------------------------------------------


async def test_redis_tls_settings_reach_the_client(tmp_path: Path, redis_prefix: str) -> None:
    ca = _ca(tmp_path)
    backend: Any = cache.from_settings(
        REDIS_HOST, 6379, 0, "", redis_prefix, tls=True, tls_reqs="required", tls_ca_cert=str(ca)
    )
    kwargs = backend._client.connection_pool.connection_kwargs
    assert kwargs["ssl_cert_reqs"] == "required" and kwargs["ssl_ca_certs"] == str(ca)
    assert kwargs["ssl_check_hostname"] is True
    # The local Redis speaks no TLS: the client must fail, not fall back to plain text.
    with pytest.raises(cache.CacheUnavailable):
        await backend.get("k")
    await backend.close()
    plain: Any = cache.from_settings(REDIS_HOST, 6379, 0, "", redis_prefix)
    assert plain._client.connection_pool.connection_kwargs.get("ssl_cert_reqs") is None
    await plain.set("k", 1, 5)
    assert await plain.get("k") == 1
    await plain.close()


# The command ---------------------------------------------------------------------------------


def test_version(tmp_path: Path) -> None:
    result = run_cli("--version", env=base_env(), cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("tessera ")
    assert "authentik 20" in result.stdout


def test_dump_config_masks_secrets_and_names_sources(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("very-secret-db-password")
    env = base_env(
        AUTHENTIK_SECRET_KEY=SECRET_KEY,
        AUTHENTIK_POSTGRESQL__PASSWORD=f"file://{tmp_path}/pw",
        AUTHENTIK_LISTEN__TRUSTED_PROXY_CIDRS="10.0.0.0/8,192.168.0.0/16",
        TESSERA_DATA_DIR=str(tmp_path / "data"),
        AUTHENTIK_REDIS__HOTS="typo",
    )
    result = run_cli("dump-config", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert SECRET_KEY not in result.stdout and "very-secret-db-password" not in result.stdout
    lines = dict(line.split(" = ", 1) for line in result.stdout.splitlines())
    assert lines["secret_key"] == "********  # AUTHENTIK_SECRET_KEY"
    assert lines["postgresql.password"] == (
        f"********  # AUTHENTIK_POSTGRESQL__PASSWORD (file://{tmp_path}/pw)"
    )
    assert lines["listen.trusted_proxy_cidrs"] == (
        '["10.0.0.0/8", "192.168.0.0/16"]  # AUTHENTIK_LISTEN__TRUSTED_PROXY_CIDRS'
    )
    assert lines["postgresql.sslmode"] == '"prefer"  # default'
    assert "AUTHENTIK_REDIS__HOTS: unknown setting" in result.stderr


def test_refused_key_stops_the_server_with_one_line(tmp_path: Path) -> None:
    env = base_env(AUTHENTIK_POSTGRESQL__USE_PGBOUNCER="true", TESSERA_DATA_DIR=str(tmp_path))
    result = run_cli("migrate", env=env, cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "tessera: configuration error: not supported by Tessera: "
        "AUTHENTIK_POSTGRESQL__USE_PGBOUNCER"
    ]


def test_admin_test_email(tmp_path: Path, inbox: Any) -> None:
    box, port = inbox
    env = base_env(
        TESSERA_DATA_DIR=str(tmp_path / "data"),
        AUTHENTIK_EMAIL__HOST="127.0.0.1",
        AUTHENTIK_EMAIL__PORT=str(port),
        AUTHENTIK_EMAIL__FROM="idp@home.arpa",
    )
    result = run_cli("admin", "test-email", "admin@nas.lan", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Sent a test email to admin@nas.lan through 127.0.0.1:{port}."
    assert "through 127.0.0.1" in box.text()
    assert box.messages[-1]["To"] == "admin@nas.lan" and box.messages[-1]["From"] == "idp@home.arpa"
    bad = run_cli("admin", "test-email", "admin@nas", env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "Enter a valid email address." in bad.stderr
    env["AUTHENTIK_EMAIL__PORT"] = str(free_port())  # nothing listens there
    down = run_cli("admin", "test-email", "admin@nas.lan", env=env, cwd=tmp_path)
    assert down.returncode == 1
    assert "the email could not be sent through 127.0.0.1" in down.stderr


def test_config_file_keys_are_checked_too(tmp_path: Path) -> None:
    config_file = tmp_path / "tessera.yaml"
    config_file.write_text(
        "postgresql:\n  hots: db\nlisten:\n  trusted_proxy_cidrs: [10.0.0.0/8]\n"
    )
    settings = config.load(config_file, data_dir=tmp_path / "data")
    assert settings.warnings == ["--config: postgresql.hots: unknown setting, ignored (a typo?)"]
    assert settings.listen.trusted_proxy_cidrs == ["10.0.0.0/8"]
    config_file.write_text("postgresql:\n  use_pgbouncer: true\n")
    with pytest.raises(config.ConfigError) as raised:
        config.load(config_file, data_dir=tmp_path / "data")
    assert str(raised.value) == "not supported by Tessera: --config: postgresql.use_pgbouncer"
