"""Callback and logout on any path: the query-string signatures of authentik's proxy outpost.

A request on any path of a protected host whose query carries `X-authentik-auth-callback=true`
is the end of a login (the core sent the browser back to a redirect URI such as
`<external_host>?X-authentik-auth-callback=true`, which every proxy provider registers), and one
carrying `X-authentik-logout=true` is a sign-out (authentik's `CallbackSignature` and
`LogoutSignature`: the key as written, the value `true` in any case; the callback wins).

`signature` says which a query is; `callback_hop` is where such a callback is completed: the
outpost's own `callback` endpoint on the host where the login started, with the authorization
response's parameters and the redirect URI the code was issued for (the core's token endpoint
wants it repeated exactly). The hop, not an in-place exchange, because the browser's login
binding cookie lives under `/outpost.goauthentik.io/` and is sent only there.
`handlers` (checks, `start`) and `reverse` (proxy mode) call these; `app` uses `marked`.
"""

from __future__ import annotations

import urllib.parse

from tessera.core.wire import outpost_proxy as wire
from tessera.outposts.proxy.providers import PREFIX, Provider

CALLBACK = "callback"
LOGOUT = "logout"
LOGOUT_SIGNATURE = "X-authentik-logout"
MAX_FIELDS = 64
# RFC 6749 §4.1.2 and §4.1.2.1, RFC 9207 (`iss`), OIDC session management (`session_state`):
# what the core adds to a redirect URI; the rest of the URL is the redirect URI itself.
RESPONSE_PARAMS = frozenset(
    {"code", "state", "error", "error_description", "error_uri", "iss", "session_state"}
)
_MARK = "X-authentik-"


def marked(raw_query: str) -> bool:
    """Whether a raw query string may carry a signature (a cheap test before parsing)."""
    return _MARK in raw_query


def _params(query: str) -> list[tuple[str, str]]:
    try:
        return urllib.parse.parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except ValueError:  # more fields than any callback has: not one
        return []


def signature(query: str) -> str | None:
    """CALLBACK, LOGOUT or None for a query string (raw, without the `?`)."""
    if not marked(query):
        return None
    values = dict(reversed(_params(query)))  # the first of a repeated key, as Go's Get
    if values.get(wire.CALLBACK_SIGNATURE, "").lower() == "true":
        return CALLBACK
    if values.get(LOGOUT_SIGNATURE, "").lower() == "true":
        return LOGOUT
    return None


def callback_hop(provider: Provider, url: str) -> str:
    """The provider's callback endpoint, for a callback that arrived at `url`."""
    parts = urllib.parse.urlsplit(url)
    params = _params(parts.query)
    response = [(k, v) for k, v in params if k in RESPONSE_PARAMS]
    rest = [(k, v) for k, v in params if k not in RESPONSE_PARAMS]
    query = [(wire.CALLBACK_SIGNATURE, "true"), *response]
    at_root = parts.path.rstrip("/") == provider.external.path.rstrip("/")
    if at_root and rest == [(wire.CALLBACK_SIGNATURE, "true")]:
        query.append(("redirect_uri", provider.root_redirect_uri))
    return f"{provider.base_url}{PREFIX}/callback?" + urllib.parse.urlencode(query)
