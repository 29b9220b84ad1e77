"""Tessera's configuration, read once at start.

Sources, strongest first: keyword arguments (tests), `TESSERA_*` environment variables,
`AUTHENTIK_*` environment variables (drop-in compatibility with authentik deployments), then an
optional YAML file given with `--config`. Nested keys use `__` (`AUTHENTIK_POSTGRESQL__HOST`).
As in authentik, any value may be `env://NAME` (another variable) or `file://PATH` (a file's
contents, e.g. a mounted secret), each with an optional `?default`; a list may be given as
comma-separated items (`10.0.0.0/8,192.168.0.0/16`) or as JSON.

Every process calls `load()`; an invalid value raises `ConfigError` naming the key, which the CLI
prints as one line before exiting. So does an authentik key Tessera does not have (`keys`); an
unknown `AUTHENTIK_*` / `TESSERA_*` variable is a warning naming it (`Settings.warnings`).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel, Field, PrivateAttr, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from tessera.core.config import keys
from tessera.core.wire import emails

ENV_PREFIXES = ("TESSERA_", "AUTHENTIK_")
MIN_SECRET_KEY_LENGTH = 32


class ConfigError(Exception):
    """Configuration that cannot be used; `str()` is one line naming the key."""


SslMode = Literal["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]


class PostgreSQL(BaseModel):
    host: str = ""
    port: int = Field(default=5432, ge=1, le=65535)
    name: str = "authentik"
    user: str = "authentik"
    password: SecretStr = SecretStr("")
    # libpq's meanings (`store.tls`). The default is libpq's own, `prefer`: TLS when the server
    # offers it, unverified; set `verify-full` and a root certificate for a verified link.
    sslmode: SslMode = "prefer"
    sslrootcert: str = Field(default="", description="CA certificate(s) (PEM) for verify-*")
    sslcert: str = Field(default="", description="client certificate (PEM)")
    sslkey: str = Field(default="", description="the client certificate's private key (PEM)")
    pool_size: int = Field(default=10, ge=1, le=200)
    connect_timeout: float = Field(default=5.0, gt=0)


class Redis(BaseModel):
    host: str = ""
    port: int = Field(default=6379, ge=1, le=65535)
    db: int = Field(default=0, ge=0)
    username: str = ""
    password: SecretStr = SecretStr("")
    tls: bool = False
    # authentik's names: "none" (no certificate check), "optional", "required" (checked).
    tls_reqs: Literal["none", "optional", "required"] = "none"
    tls_ca_cert: str = Field(default="", description="CA certificate(s) (PEM) for the server's")
    prefix: str = Field(
        default="tessera:", description="key prefix; tests set a unique one per run"
    )


class Email(BaseModel):
    host: str = "localhost"
    port: int = Field(default=25, ge=1, le=65535)
    username: str = ""
    password: SecretStr = SecretStr("")
    use_tls: bool = False
    use_ssl: bool = False
    timeout: int = Field(default=10, ge=1)
    from_: str = Field(default="authentik@localhost", alias="from")
    # Tessera's outbox (`tasks.mail`): a mail the server refuses or cannot be reached for is
    # tried again after `outbox_retry_seconds`, doubling each time up to an hour, at most
    # `outbox_max_attempts` times in all; then it is marked failed.
    outbox_max_attempts: int = Field(default=8, ge=1, le=100)
    outbox_retry_seconds: float = Field(default=30.0, gt=0, le=3600)


class ErrorReporting(BaseModel):
    enabled: bool = False


class Listen(BaseModel):
    http: str = "127.0.0.1:9000"
    metrics: str = "127.0.0.1:9300"
    trusted_proxy_cidrs: list[str] = Field(
        default=[
            "127.0.0.0/8",
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "fe80::/10",
            "::1/128",
        ]
    )


class Web(BaseModel):
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    public_url: str = Field(default="", description="external URL, used in printed links")
    # `AUTHENTIK_WEB__WORKERS`: serving processes of `tessera server` (authentik's default, 2);
    # the embedded default keeps one (`app.serving`).
    workers: int = Field(default=2, ge=1, le=64)


class Worker(BaseModel):
    embedded: bool = Field(default=True, description="servers run maintenance when no worker runs")
    interval_seconds: float = Field(default=60.0, gt=0)


class Events(BaseModel):
    retention_days: int = Field(default=365, ge=1)


class Sessions(BaseModel):
    duration_hours: int = Field(default=24, ge=1)


class LoginThrottle(BaseModel):
    """Failed password attempts allowed per window, per username and per client address."""

    per_username: int = Field(default=10, ge=1)
    per_ip: int = Field(default=50, ge=1)
    window_seconds: int = Field(default=300, ge=1)


class Cache(BaseModel):
    """authentik's `cache.*` keys that Tessera honours."""

    # `AUTHENTIK_CACHE__TIMEOUT_POLICIES`: seconds a policy result is reused for the same user
    # and address (authentik's default is 300; ours is shorter). 0 turns the reuse off.
    timeout_policies: float = Field(default=30.0, ge=0, le=86400)


class PasswordHashing(BaseModel):
    """argon2id cost; OWASP's recommendation by default. Stored hashes made with other
    parameters are rehashed at the user's next login."""

    memory_kib: int = Field(default=19 * 1024, ge=8 * 1024, le=4 * 1024 * 1024)
    time_cost: int = Field(default=2, ge=1, le=20)
    parallelism: int = Field(default=1, ge=1, le=16)


class Expressions(BaseModel):
    """The worker processes that evaluate expressions (`policies.pool`): how many per serving
    process, each one's address space, and how long past a run's deadline before it is killed."""

    workers: int = Field(default=2, ge=1, le=32)
    memory_mib: int = Field(default=512, ge=128, le=64 * 1024)
    grace_seconds: float = Field(default=1.0, ge=0.1, le=60)


class Outbound(BaseModel):
    """Calls this server makes to third-party services on the Internet: today the breached
    password check of the password policy (`check_have_i_been_pwned`, Have I Been Pwned's range
    API). An offline install turns them off (`TESSERA_OUTBOUND__ENABLED=false`); a policy that
    asks for the check is then refused by the API, never silently passed."""

    enabled: bool = True
    pwned_passwords_url: str = Field(
        default="https://api.pwnedpasswords.com",
        pattern=r"^https?://[^\s?#]+$",
        description="base URL of the k-anonymity range API (`<url>/range/<prefix>`)",
    )
    timeout: float = Field(default=8.0, gt=0, le=60)


class Outposts(BaseModel):
    """authentik's `outposts.*` keys that Tessera honours."""

    # `AUTHENTIK_OUTPOSTS__DISABLE_EMBEDDED_OUTPOST`: the core neither keeps the managed
    # "authentik Embedded Outpost" nor serves `/outpost.goauthentik.io/*` (`app.embedded`).
    disable_embedded_outpost: bool = False


class Settings(BaseSettings):
    """Every setting of every Tessera process."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__", extra="ignore", case_sensitive=False, populate_by_name=True
    )

    secret_key: SecretStr | None = None
    data_dir: Path = Path("data")
    log_level: Literal["trace", "debug", "info", "warning", "error"] = "info"
    postgresql: PostgreSQL = PostgreSQL()
    redis: Redis = Redis()
    email: Email = Email()
    error_reporting: ErrorReporting = ErrorReporting()
    listen: Listen = Listen()
    web: Web = Web()
    worker: Worker = Worker()
    events: Events = Events()
    sessions: Sessions = Sessions()
    login_throttle: LoginThrottle = LoginThrottle()
    cache: Cache = Cache()
    password_hashing: PasswordHashing = PasswordHashing()
    expressions: Expressions = Expressions()
    outbound: Outbound = Outbound()
    outposts: Outposts = Outposts()
    bootstrap_password: SecretStr | None = None
    bootstrap_token: SecretStr | None = None
    bootstrap_email: emails.AddressOrEmpty = "root@example.com"
    # Tessera never sends analytics nor looks for updates: accepted so that authentik's
    # settings files work unchanged.
    disable_startup_analytics: bool = True
    disable_update_check: bool = True

    # Not settings: what `load` noticed (unknown keys) and where each value came from.
    _warnings: list[str] = PrivateAttr(default_factory=list)
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)

    @property
    def warnings(self) -> list[str]:
        return self._warnings

    @property
    def origins(self) -> dict[str, str]:
        """Dotted key -> where its value came from ("AUTHENTIK_X", "TESSERA_X (file://…)",
        "config file", "argument"); keys not listed have their default."""
        return self._origins

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        envs = tuple(_Environment(settings_cls, prefix) for prefix in ENV_PREFIXES)
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, *envs)
        yaml_file = os.environ.get("TESSERA_CONFIG_FILE")
        if yaml_file:
            sources += (_Yaml(settings_cls, yaml_file=yaml_file),)
        return sources

    def secret_values(self) -> list[str]:
        """Every configured secret, for the log redactor."""
        candidates = [
            self.secret_key,
            self.bootstrap_password,
            self.bootstrap_token,
            self.postgresql.password,
            self.redis.password,
            self.email.password,
        ]
        return [c.get_secret_value() for c in candidates if c is not None and c.get_secret_value()]

    @property
    def embedded(self) -> bool:
        """True on the embedded default: SQLite under the data directory, in-process cache."""
        return not self.postgresql.host

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "tessera.sqlite3"


# Sources -------------------------------------------------------------------------------------


def _fields(model: type[BaseModel], prefix: str = "") -> dict[str, Any]:
    """Every leaf setting of `model`: dotted key (authentik's spelling, aliases included) -> its
    annotation."""
    found: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key = prefix + (field.alias or name)
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found.update(_fields(annotation, key + "."))
        else:
            found[key] = annotation
    return found


def setting_keys() -> dict[str, Any]:
    """Every leaf key of `Settings`, dotted (`postgresql.sslmode`), with its type."""
    return _fields(Settings)


def _is_list(annotation: Any) -> bool:
    return getattr(annotation, "__origin__", None) is list


def resolve(key: str, raw: str) -> str:
    """authentik's indirections: `env://NAME[?default]` is another variable's value,
    `file://PATH[?default]` a file's contents (surrounding white space removed)."""
    if raw.startswith("env://"):
        name, has_default, default = raw[len("env://") :].partition("?")
        if name in os.environ:
            return os.environ[name]
        if has_default:
            return default
        raise ConfigError(f"{key}: {raw}: no such environment variable")
    if raw.startswith("file://"):
        path, has_default, default = raw[len("file://") :].partition("?")
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            if has_default:
                return default
            raise ConfigError(f"{key}: {raw}: {exc.strerror or exc}") from None
    return raw


def _as_list(key: str, raw: str) -> Any:
    """A list setting: JSON (`["a", "b"]`) or comma-separated items (authentik's form)."""
    text = raw.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ConfigError(f"{key}: not a JSON list: {exc}") from None
    return [item.strip() for item in text.split(",") if item.strip()]


def _nest(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        target = target.setdefault(part, {})
    target[leaf] = value


class _Scan:
    """The `AUTHENTIK_*` and `TESSERA_*` variables, sorted into settings, refused authentik
    keys and unknown names."""

    def __init__(self, environ: os._Environ[str] | dict[str, str]) -> None:
        fields = setting_keys()
        self.values: dict[str, dict[str, tuple[str, str]]] = {p: {} for p in ENV_PREFIXES}
        self.unsupported: list[str] = []
        self.unknown: list[str] = []
        for name in sorted(environ):
            upper = name.upper()
            prefix = next((p for p in ENV_PREFIXES if upper.startswith(p)), None)
            if prefix is None:
                continue
            dotted = upper[len(prefix) :].lower().replace("__", ".")
            if dotted in fields:
                self.values[prefix][dotted] = (name, environ[name])
            elif dotted in keys.NOT_SETTINGS or (
                prefix == "TESSERA_" and dotted.startswith("test_")
            ):
                continue
            elif keys.unsupported(dotted):
                self.unsupported.append(name)
            else:
                self.unknown.append(name)


class _Environment(PydanticBaseSettingsSource):
    """The settings of one prefix's variables, indirections resolved and lists split."""

    def __init__(self, settings_cls: type[BaseSettings], prefix: str) -> None:
        super().__init__(settings_cls)
        self.prefix = prefix

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: `__call__` reads everything at once

    def __call__(self) -> dict[str, Any]:
        fields = setting_keys()
        data: dict[str, Any] = {}
        for dotted, (name, raw) in _Scan(os.environ).values[self.prefix].items():
            value: Any = resolve(name, raw)
            if _is_list(fields[dotted]):
                value = _as_list(name, value)
            _nest(data, dotted, value)
        return data


def _resolve_tree(key: str, value: Any) -> Any:
    if isinstance(value, str):
        return resolve(key, value)
    if isinstance(value, dict):
        return {k: _resolve_tree(f"{key}.{k}", v) for k, v in value.items()}
    return value


class _Yaml(YamlConfigSettingsSource):
    """The `--config` file, with `env://` / `file://` values resolved as in the environment."""

    def __call__(self) -> dict[str, Any]:
        return {k: _resolve_tree(f"--config: {k}", v) for k, v in super().__call__().items()}


def _yaml_keys(data: Any, prefix: str = "") -> list[str]:
    if not isinstance(data, dict):
        return [prefix.rstrip(".")]
    found: list[str] = []
    for key, value in data.items():
        found += _yaml_keys(value, f"{prefix}{key}.")
    return found


def _check_yaml(yaml_file: str | None) -> tuple[list[str], list[str]]:
    """The `--config` file's unknown keys and authentik keys Tessera lacks, as `--config: key`."""
    if not yaml_file:
        return [], []
    try:
        data = YamlConfigSettingsSource(Settings, yaml_file=yaml_file)()
    except (OSError, ValueError):
        return [], []  # reported by the load itself
    fields = setting_keys()
    unknown: list[str] = []
    unsupported: list[str] = []
    for dotted in _yaml_keys(data):
        if dotted in fields or any(dotted.startswith(f + ".") for f in fields):
            continue
        (unsupported if keys.unsupported(dotted) else unknown).append(f"--config: {dotted}")
    return unknown, unsupported


def _origins(scan: _Scan, overrides: dict[str, Any], yaml_file: str | None) -> dict[str, str]:
    origins: dict[str, str] = {}
    if yaml_file:
        try:
            data = YamlConfigSettingsSource(Settings, yaml_file=yaml_file)()
        except (OSError, ValueError):
            data = {}
        for dotted in _yaml_keys(data):
            origins[dotted] = f"config file {yaml_file}"
    for prefix in reversed(ENV_PREFIXES):  # TESSERA_ wins over AUTHENTIK_
        for dotted, (name, raw) in scan.values[prefix].items():
            via = raw.partition("?")[0] if raw.startswith(("env://", "file://")) else ""
            origins[dotted] = f"{name} ({via})" if via else name
    for dotted in _yaml_keys(overrides):
        origins[dotted] = "argument"
    return origins


def _key_name(loc: tuple[str | int, ...]) -> str:
    return "AUTHENTIK_" + "__".join(str(part).upper() for part in loc)


def load(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read and check the settings; raise `ConfigError` naming the first bad key."""
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(f"--config: no such file: {config_file}")
        os.environ["TESSERA_CONFIG_FILE"] = str(config_file)
    scan = _Scan(os.environ)
    yaml_unknown, yaml_unsupported = _check_yaml(os.environ.get("TESSERA_CONFIG_FILE"))
    refused = scan.unsupported + yaml_unsupported
    if refused:
        raise ConfigError(f"not supported by Tessera: {', '.join(refused)}")
    try:
        settings = Settings(**overrides)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{_key_name(first['loc'])}: {first['msg']}") from None
    except (OSError, ValueError) as exc:  # unreadable or malformed YAML, undecodable JSON value
        raise ConfigError(f"configuration: {exc}") from None
    settings._warnings = [
        f"{name}: unknown setting, ignored (a typo?)" for name in scan.unknown + yaml_unknown
    ]
    settings._origins = _origins(scan, overrides, os.environ.get("TESSERA_CONFIG_FILE"))
    return _check_secret_key(settings)


def _check_secret_key(settings: Settings) -> Settings:
    if settings.secret_key is None:
        if not settings.embedded:
            raise ConfigError(
                "AUTHENTIK_SECRET_KEY: required when PostgreSQL is configured "
                "(every replica must share it)"
            )
        settings.secret_key = SecretStr(_persisted_secret_key(settings.data_dir))
    if len(settings.secret_key.get_secret_value()) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(
            f"AUTHENTIK_SECRET_KEY: must be at least {MIN_SECRET_KEY_LENGTH} characters long"
        )
    return settings


def _persisted_secret_key(data_dir: Path) -> str:
    """The embedded default's secret key: generated once, kept in the data directory."""
    path = data_dir / "secret_key"
    if not path.is_file():
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # SECURITY: written to a private temporary file, then linked into place atomically, so a
        # concurrent start reads either nothing or the whole key, never a partial one.
        tmp = data_dir / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"{path}: the secret key file must not be readable by others (chmod 600)")
    return path.read_text().strip()
