"""The identity headers a protected application receives (authentik's `mode_common.go` set).

The twelve `X-authentik-*` headers from the access token's claims and the provider, the
`additionalHeaders` that user or group attributes name (through the `ak_proxy` claim), and
`Authorization: Basic` when the provider passes credentials from attributes. Built once per
session and kept on it. `handlers` (forward auth) and `reverse` (proxy mode) call `headers`;
`reverse` calls `strip` on what a client sent.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from typing import Any

from tessera.outposts.proxy.providers import Provider
from tessera.outposts.proxy.sessions import Session

NAMES = (
    "X-authentik-username",
    "X-authentik-groups",
    "X-authentik-entitlements",
    "X-authentik-email",
    "X-authentik-name",
    "X-authentik-uid",
    "X-authentik-jwt",
    "X-authentik-meta-jwks",
    "X-authentik-meta-outpost",
    "X-authentik-meta-provider",
    "X-authentik-meta-app",
    "X-authentik-meta-version",
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_VALUE = 8192
# Headers an attribute may never set: the identity headers themselves, and what frames or
# routes the request.
_RESERVED = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer"}
    | {"keep-alive", "proxy-authorization", "proxy-connection", "cookie", "set-cookie"}
)


def clean(value: Any) -> str:
    """A header value: text without control characters (a CR/LF would split the header)."""
    if isinstance(value, list | tuple):
        value = "|".join(str(v) for v in value)
    elif isinstance(value, bool):
        value = "true" if value else "false"
    elif value is None:
        value = ""
    return _CONTROL.sub("", str(value))[:MAX_VALUE]


def _forged(name: str) -> bool:
    return name.lower().replace("_", "-").startswith("x-authentik-")


def _attributes(claims: Mapping[str, Any]) -> Mapping[str, Any]:
    proxy = claims.get("ak_proxy")
    attributes = proxy.get("user_attributes") if isinstance(proxy, Mapping) else None
    return attributes if isinstance(attributes, Mapping) else {}


def additional(claims: Mapping[str, Any]) -> dict[str, str]:
    """`additionalHeaders` of the user's (group-merged) attributes, valid names only."""
    extra = _attributes(claims).get("additionalHeaders")
    if not isinstance(extra, Mapping):
        return {}
    out: dict[str, str] = {}
    for name, value in extra.items():
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            continue
        if _forged(name) or name.lower() in _RESERVED:
            continue
        out[name] = clean(value)
    return out


def basic_auth(provider: Provider, claims: Mapping[str, Any]) -> str | None:
    """`Authorization: Basic` from attributes: only with a non-empty password; the user is the
    user attribute, else the email (authentik's rule)."""
    if provider.basic_auth is None:
        return None
    user_attr, password_attr = provider.basic_auth
    attributes = _attributes(claims)
    password = attributes.get(password_attr) if password_attr else None
    if password in (None, ""):
        return None
    user = attributes.get(user_attr) if user_attr else None
    if user in (None, ""):
        user = claims.get("email", "")
    raw = f"{clean(user)}:{clean(password)}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def headers(provider: Provider, session: Session, outpost: str, version: str) -> dict[str, str]:
    if session.headers is not None:
        return session.headers
    claims = session.claims
    built = additional(claims)
    built.update(
        {
            "X-authentik-username": clean(claims.get("preferred_username")),
            "X-authentik-groups": clean(_strings(claims.get("groups"))),
            "X-authentik-entitlements": clean(_strings(claims.get("entitlements"))),
            "X-authentik-email": clean(claims.get("email")),
            "X-authentik-name": clean(claims.get("name")),
            "X-authentik-uid": clean(claims.get("sub")),
            "X-authentik-jwt": clean(session.token),
            "X-authentik-meta-jwks": clean(provider.endpoints.jwks),
            "X-authentik-meta-outpost": clean(outpost),
            "X-authentik-meta-provider": clean(provider.name),
            "X-authentik-meta-app": clean(provider.app_slug),
            "X-authentik-meta-version": clean(f"goauthentik.io/outpost/{version}"),
        }
    )
    credentials = basic_auth(provider, claims)
    if credentials is not None:
        built["Authorization"] = credentials
    session.headers = built
    return built


def _strings(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(v) for v in value if isinstance(v, str | int)]
    return []


def strip(names: Iterable[str]) -> list[str]:
    """The header names a client sent that claim to be identity headers (`X-authentik-*`, with
    dashes or underscores, any case): removed before a request reaches an upstream."""
    return [name for name in names if _forged(name)]
