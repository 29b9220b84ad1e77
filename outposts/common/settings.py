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

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pydantic
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

ENV_PREFIXES = ("TESSERA_", "AUTHENTIK_")
DEFAULT_STATE_DIR = Path(tempfile.gettempdir()) / "tessera-outpost"
NESTED = frozenset({"listen"})  # settings whose keys nest with `__`


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


class OutpostSettings(BaseModel):
    """Everything an outpost process is told by its environment (read by `from_environment`;
    pydantic-settings, several MiB of sources an outpost never uses, is not needed for ten
    keys)."""

    model_config = ConfigDict(extra="ignore")

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


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The settings' raw values from the environment: names compared without case, `TESSERA_*`
    over `AUTHENTIK_*`, `__` nesting into `listen` (`LISTEN__HTTP`), or all of `listen` as one
    JSON object (`AUTHENTIK_LISTEN`). Names of no setting are passed over. Raises ValueError for
    a `LISTEN` that is not a JSON object."""
    env = os.environ if environ is None else environ
    fields = OutpostSettings.model_fields
    data: dict[str, Any] = {}
    for prefix in reversed(ENV_PREFIXES):  # the first prefix is read last, so it wins
        for key, value in sorted(env.items()):  # `LISTEN` before `LISTEN__HTTP`
            if not key.upper().startswith(prefix):
                continue
            name, sep, sub = key[len(prefix) :].lower().partition("__")
            if name not in fields:
                continue
            if not sep:
                data[name] = _json_object(key, value) if name in NESTED else value
            elif name in NESTED and sub and "__" not in sub:
                current = data.get(name)
                data[name] = {**(current if isinstance(current, dict) else {}), sub: value}
    return data


def _json_object(key: str, value: str) -> dict[str, Any]:
    try:
        decoded = json.loads(value)
    except ValueError:
        raise ValueError(f"{key}: not a JSON object") from None
    if not isinstance(decoded, dict):
        raise ValueError(f"{key}: not a JSON object")
    return decoded


def load(**overrides: Any) -> OutpostSettings:
    """Read and check the settings (`overrides` over the environment); raise `SettingsError`
    naming the first bad key."""
    try:
        data = from_environment()
        for key, value in overrides.items():
            current = data.get(key)
            if isinstance(value, dict) and isinstance(current, dict):
                value = {**current, **value}
            data[key] = value
        return OutpostSettings(**data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "missing":
            raise SettingsError(f"{_key_name(first['loc'])}: required, but not set") from None
        message = first["msg"].removeprefix("Value error, ")
        where = _key_name(first["loc"]) if first["loc"] else "settings"
        raise SettingsError(f"{where}: {message}") from None
    except ValueError as exc:  # an undecodable JSON value of a nested key
        raise SettingsError(f"settings: {exc}") from None
