"""An outpost's settings, read once at start from the environment.

Names as authentik's outposts read them, `TESSERA_*` first, then `AUTHENTIK_*`: `HOST` (the
core's URL, required), `TOKEN` (the outpost's API token, required), `INSECURE` (skip TLS
verification towards the core), `HOST_BROWSER` (the core's URL as browsers reach it; the
token and introspection calls send its host as `Host`, so the issuer matches),
`LISTEN__HTTP|HTTPS|METRICS` (default `0.0.0.0:9000`, `0.0.0.0:9443`, `0.0.0.0:9300`),
`LISTEN__LDAP|LDAPS` (the LDAP outpost's; default `0.0.0.0:3389`, `0.0.0.0:6636`),
`LOG_LEVEL`, and Tessera's own `STATE_DIR` (where the last good configuration is kept; the
outpost's Deployment has a read-only root filesystem, so it defaults under the system's
temporary directory, which is a writable volume there). A value `file://<path>` is read from
that file (a mounted Secret), `env://<NAME>` from that variable, as in authentik.

`entry.main` calls `load()`; an invalid value raises `SettingsError` naming the key.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pydantic
from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

ENV_PREFIXES = ("TESSERA_", "AUTHENTIK_")
DEFAULT_STATE_DIR = Path(tempfile.gettempdir()) / "tessera-outpost"


class SettingsError(Exception):
    """Settings that cannot be used; `str()` is one line naming the key."""


def _address(value: str) -> str:
    _host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be host:port, e.g. 0.0.0.0:9000")
    return value


class Listen(BaseModel):
    http: str = "0.0.0.0:9000"
    https: str = "0.0.0.0:9443"
    metrics: str = "0.0.0.0:9300"
    ldap: str = "0.0.0.0:3389"
    ldaps: str = "0.0.0.0:6636"

    _check = field_validator("http", "https", "metrics", "ldap", "ldaps")(_address)


def split_address(value: str) -> tuple[str, int]:
    """`("0.0.0.0", 9000)` from `"0.0.0.0:9000"`; `[::]:9000` gives `("::", 9000)`."""
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def _url(value: str) -> str:
    value = value.strip()
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query or fragment")
    return value.rstrip("/")


class OutpostSettings(BaseSettings):
    """Everything an outpost process is told by its environment."""

    model_config = SettingsConfigDict(
        env_nested_delimiter="__", extra="ignore", case_sensitive=False
    )

    host: str
    token: SecretStr
    insecure: bool = False
    host_browser: str = ""
    listen: Listen = Listen()
    log_level: Literal["trace", "debug", "info", "warning", "error"] = "info"
    state_dir: Path = DEFAULT_STATE_DIR
    refresh_jitter_seconds: float = Field(default=2.0, ge=0, le=60)
    backoff_max_seconds: float = Field(default=300.0, ge=1, le=3600)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        return _url(value)

    @field_validator("host_browser")
    @classmethod
    def _host_browser(cls, value: str) -> str:
        return _url(value) if value.strip() else ""

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value().strip()
        if not text:
            raise ValueError("must not be empty")
        if any(ch in text for ch in "\r\n\x00") or not text.isprintable():
            raise ValueError("must be one line of printable characters")
        return SecretStr(text)

    @pydantic.model_validator(mode="before")
    @classmethod
    def _indirect(cls, data: Any) -> Any:
        """`file://<path>` and `env://<NAME>` values, resolved before validation."""
        return _resolve(data) if isinstance(data, dict) else data

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        envs = tuple(
            EnvSettingsSource(settings_cls, env_prefix=prefix, env_nested_delimiter="__")
            for prefix in ENV_PREFIXES
        )
        return (init_settings, *envs)

    @property
    def browser_url(self) -> str:
        """The core's URL as browsers reach it: `host_browser`, else `host`."""
        return self.host_browser or self.host


def _resolve(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out[key] = _resolve(value)
        elif isinstance(value, str) and value.startswith("file://"):
            try:
                out[key] = Path(value.removeprefix("file://")).read_text().strip()
            except OSError as exc:
                raise ValueError(f"{key}: cannot read {value}: {exc.strerror}") from None
        elif isinstance(value, str) and value.startswith("env://"):
            out[key] = os.environ.get(value.removeprefix("env://"), "")
        else:
            out[key] = value
    return out


def _key_name(loc: tuple[str | int, ...]) -> str:
    return "AUTHENTIK_" + "__".join(str(part).upper() for part in loc)


def load(**overrides: Any) -> OutpostSettings:
    """Read and check the settings; raise `SettingsError` naming the first bad key."""
    try:
        return OutpostSettings(**overrides)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "missing":
            raise SettingsError(f"{_key_name(first['loc'])}: required, but not set") from None
        message = first["msg"].removeprefix("Value error, ")
        where = _key_name(first["loc"]) if first["loc"] else "settings"
        raise SettingsError(f"{where}: {message}") from None
    except ValueError as exc:  # an undecodable JSON value of a nested key
        raise SettingsError(f"settings: {exc}") from None
