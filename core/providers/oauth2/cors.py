"""CORS for the endpoints a browser single-page app calls: discovery, JWKS, token, userinfo,
introspection, revocation and device authorization.

As in authentik, the origins a provider allows are those of its redirect URIs (scheme, host and
port of each); the response to a request from an allowed origin carries
`Access-Control-Allow-Origin: <that origin>` and `Access-Control-Allow-Credentials: true`, and an
origin not allowed gets no CORS header at all (the browser then hides the response from the
page). Whose redirect URIs count:

- discovery and JWKS: the provider named by the path's application slug;
- token, introspection, revocation, device: the client named by `client_id` (form or Basic);
- userinfo: the client the (already verified) access token was issued to;
- a request that names no known client (an error answer, a preflight, which carries neither
  body nor credentials): any OAuth2 provider's.

The JWKS document stays readable by any page (`Access-Control-Allow-Origin: *`, no credentials),
as authentik serves it: it holds public keys only; its preflight follows the provider's origins.
authentik answers every preflight with the caller's origin; Tessera answers it only for an origin
some provider allows. A regex redirect URI contributes its origin when the pattern's scheme, host
and port are literal (`https://app\\.example\\.com/.*`); a pattern with a wildcard host does
not open CORS to every host it could match.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web

from tessera.core.providers.oauth2.clients import Client, Snapshot

ALLOW_METHODS = "GET, POST, OPTIONS, HEAD"
MAX_AGE = "600"
_DEFAULT_PORTS = {"http": 80, "https": 443}
# The literal scheme://host[:port] at the start of a regex redirect URI (`\.` for dots).
_LITERAL_ORIGIN = re.compile(r"^\^?(https?)://((?:[A-Za-z0-9-]|\\\.)+)(:\d{1,5})?(?:/|\\/|\$?$)")
# Header values echoed in Access-Control-Allow-Headers: header names and commas only.
_HEADER_LIST = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+(?:\s*,\s*[A-Za-z0-9!#$%&'*+.^_`|~-]+)*$")

Origins = frozenset[str]
OriginsOf = Callable[[web.Request, web.StreamResponse], Awaitable[Origins]]


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of an http(s) URL, lower case, the default port left out."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:  # IPv6
        host = f"[{host}]"
    suffix = "" if port in (None, _DEFAULT_PORTS[scheme]) else f":{port}"
    return f"{scheme}://{host}{suffix}"


def _regex_origin(pattern: str) -> str | None:
    match = _LITERAL_ORIGIN.match(pattern)
    if match is None:
        return None
    scheme, host, port = match.group(1), match.group(2).replace("\\.", "."), match.group(3) or ""
    return origin_of(f"{scheme}://{host}{port}/")


def client_origins(client: Client) -> Origins:
    """The origins of `client`'s redirect URIs (authorization and post-logout ones)."""
    found: set[str] = set()
    for entry in client.redirect_uris:
        one = origin_of(entry.url) if entry.matching_mode == "strict" else _regex_origin(entry.url)
        if one is not None:
            found.add(one)
    return frozenset(found)


_last: tuple[Snapshot, Origins] | None = None


def all_origins(snapshot: Snapshot) -> Origins:
    """Every provider's origins (computed once per snapshot of the providers)."""
    global _last
    if _last is not None and _last[0] is snapshot:
        return _last[1]
    found: set[str] = set()
    for client in snapshot.by_client_id.values():
        found |= client_origins(client)
    _last = (snapshot, frozenset(found))
    return _last[1]


def allowed(request: web.Request, origins: Iterable[str]) -> str | None:
    """The request's `Origin` when `origins` allow it, else None."""
    header = request.headers.get("Origin", "")
    wanted = origin_of(header)
    if wanted is None or wanted not in origins:
        return None
    return header


def decorate(request: web.Request, response: web.StreamResponse, origins: Origins) -> None:
    """CORS headers on `response` for an allowed origin; nothing for any other."""
    if "Origin" not in request.headers:
        return
    if response.headers.get("Access-Control-Allow-Origin") == "*":
        return  # a public document (JWKS, as in authentik): any page may read it, no credentials
    response.headers.add("Vary", "Origin")
    origin = allowed(request, origins)
    if origin is None:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Allow-Credentials"] = "true"
    response.headers["Access-Control-Expose-Headers"] = "WWW-Authenticate"


def preflight(request: web.Request, origins: Origins) -> web.Response:
    """The answer to an OPTIONS request: 204, with CORS headers for an allowed origin only."""
    response = web.Response(status=204)
    decorate(request, response, origins)
    if "Access-Control-Allow-Origin" in response.headers:
        response.headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
        wanted = request.headers.get("Access-Control-Request-Headers", "").strip()
        if wanted and _HEADER_LIST.match(wanted):
            response.headers["Access-Control-Allow-Headers"] = wanted
        response.headers["Access-Control-Max-Age"] = MAX_AGE
    response.headers["Allow"] = ALLOW_METHODS
    return response


async def client_id_of(request: web.Request) -> str | None:
    """The client a token-style request names: Basic credentials' user, else the form's
    `client_id` (the body was read by the handler already; aiohttp keeps it)."""
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        return urllib.parse.unquote_plus(decoded.partition(":")[0]) or None
    if request.content_type != "application/x-www-form-urlencoded" or request.method != "POST":
        return None
    try:
        form = await request.post()
    except ValueError:
        return None
    value = form.get("client_id")
    return value if isinstance(value, str) and value else None


async def audience_of(request: web.Request) -> str | None:
    """The `aud` of the access token (bearer header or form), unverified: used only after the
    handler accepted the token, to pick the client whose origins apply."""
    header = request.headers.get("Authorization", "")
    raw = ""
    if header.lower().startswith("bearer "):
        raw = header[7:].strip()
    elif request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        try:
            value = (await request.post()).get("access_token")
        except ValueError:
            value = None
        raw = value if isinstance(value, str) else ""
    parts = raw.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    aud = payload.get("aud") if isinstance(payload, dict) else None
    if isinstance(aud, list):
        aud = aud[0] if len(aud) == 1 else None
    return aud if isinstance(aud, str) else None


def wrap(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], origins_of: OriginsOf
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """`handler` with CORS: OPTIONS answered here, other answers decorated."""

    async def with_cors(request: web.Request) -> web.StreamResponse:
        if request.method == "OPTIONS":
            empty = web.Response(status=204)
            return preflight(request, await origins_of(request, empty))
        response = await handler(request)
        if "Origin" in request.headers:
            decorate(request, response, await origins_of(request, response))
        return response

    return with_cors
