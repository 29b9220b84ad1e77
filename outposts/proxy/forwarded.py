"""What the reverse proxy says about the original request, believed only from trusted peers.

Traefik and Caddy send `X-Forwarded-Proto`, `-Host` and `-Uri`; nginx sends `X-Original-URL`
(or `X-Original-URI` with the host in `Host`); Envoy puts the original path after
`auth/envoy`. `original` builds the one `Original` request a check is about, or raises
`BadForwarding` (a 400 naming the header). `handlers` and `reverse` call it.

# SECURITY: X-Forwarded-* and X-Original-* are believed only when the TCP peer is in
# `AUTHENTIK_LISTEN__TRUSTED_PROXY_CIDRS`; from anyone else they are ignored, so a client that
# reaches the outpost directly cannot claim another host, scheme or path. Every value is checked
# for shape (a host name, a path beginning with `/`, no control characters) before use.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import urllib.parse
from collections.abc import Sequence
from typing import NamedTuple

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_URI = 8192
_HOST = re.compile(
    r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
DEFAULT_PORTS = {"http": "80", "https": "443"}


class BadForwarding(ValueError):
    """The original request cannot be known from what the proxy sent (answered 400)."""


def networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    """Parse trusted proxy CIDRs; an invalid one raises ValueError naming it."""
    out = []
    for cidr in cidrs:
        try:
            out.append(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise ValueError(f"invalid trusted proxy CIDR {cidr!r}") from None
    return tuple(out)


def _peer_trusted(remote: str, trusted: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return False
    return any(address in net for net in trusted)


# Peers seen, by (address, the networks' identity): a check asks on every request, and hashing
# the networks (ipaddress objects, hashed in Python) cost more than the rest of the lookup. The
# value holds the networks themselves, so an identity is never mistaken for a later object's.
_SEEN: dict[tuple[str, int], tuple[tuple[Network, ...], bool]] = {}
_SEEN_MAX = 4096


def trusted(request: web.BaseRequest, cidrs: tuple[Network, ...]) -> bool:
    remote = request.remote
    if remote is None:
        return False
    key = (remote, id(cidrs))
    seen = _SEEN.get(key)
    if seen is not None and seen[0] is cidrs:
        return seen[1]
    if len(_SEEN) >= _SEEN_MAX:
        _SEEN.clear()
    verdict = _peer_trusted(remote, cidrs)
    _SEEN[key] = (cidrs, verdict)
    return verdict


def normal_host(value: str, scheme: str = "http") -> str | None:
    """`host[:port]` lowercased, the scheme's default port dropped; None when not a host."""
    value = value.strip()
    if not value or len(value) > 260:
        return None
    return _normal_host(value, scheme)


# SECURITY: cached only after the length check: at most 1,024 values of 260 characters, however
# many hosts a client makes up.
@functools.lru_cache(maxsize=1024)  # every check normalises its host; a proxy sends few hosts
def _normal_host(value: str, scheme: str) -> str | None:
    if not _HOST.fullmatch(value):
        return None
    value = value.lower()
    name, sep, port = value.rpartition(":")
    if sep and not value.endswith("]") and port == DEFAULT_PORTS.get(scheme):
        return name
    if sep and port and not value.endswith("]") and not 0 < int(port) < 65536:
        return None
    return value


def _first(value: str) -> str:
    """The first of a comma-separated header value (a proxy chain's original)."""
    return value.split(",", 1)[0].strip()


class Original(NamedTuple):
    """The request a forward-auth check (or a proxied request) is about (a tuple: one is made
    for every check, and a frozen dataclass's construction cost a tenth of the check's work)."""

    scheme: str
    host: str  # normalised host[:port]
    path_qs: str  # begins with "/"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}{self.path_qs}"

    @property
    def path(self) -> str:
        return self.path_qs.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.path_qs.partition("?")[2]


def _path(value: str, header: str) -> str:
    if not value.startswith("/") or value.startswith("//") or len(value) > MAX_URI:
        raise BadForwarding(f"{header} must be a path beginning with a single /")
    if _CONTROL.search(value):
        raise BadForwarding(f"{header} holds control characters or spaces")
    return value


def _scheme(request: web.BaseRequest, believe: bool) -> str:
    proto = _first(request.headers.get("X-Forwarded-Proto", "")).lower() if believe else ""
    if proto:
        if proto not in ("http", "https"):
            raise BadForwarding("X-Forwarded-Proto must be http or https")
        return proto
    return "https" if request.secure else "http"


def host_of(request: web.BaseRequest, believe: bool, scheme: str | None = None) -> str:
    """The host the client asked for: X-Forwarded-Host from a trusted proxy, else Host."""
    scheme = scheme or _scheme(request, believe)
    raw = _first(request.headers.get("X-Forwarded-Host", "")) if believe else ""
    header = "X-Forwarded-Host" if raw else "Host"
    raw = raw or request.headers.get("Host", "")
    host = normal_host(raw, scheme)
    if host is None:
        raise BadForwarding(f"{header} is missing or not a host name")
    return host


def original(request: web.BaseRequest, kind: str, believe: bool, tail: str = "") -> Original:
    """The original request of a check by `kind` (traefik, caddy, nginx, envoy) or of a request
    served directly (`direct`: proxy mode and the outpost's own pages)."""
    scheme = _scheme(request, believe)
    if kind == "direct":
        return Original(
            scheme, host_of(request, believe, scheme), _path(request.raw_path, "the path")
        )
    if kind == "envoy":
        path = "/" + tail if not tail.startswith("/") else tail
        query = request.raw_path.partition("?")[2]
        return Original(
            scheme,
            host_of(request, believe, scheme),
            _path(path + ("?" + query if query else ""), "path"),
        )
    if not believe:
        raise BadForwarding(
            "the original request is known only from a trusted proxy's forwarded headers "
            "(AUTHENTIK_LISTEN__TRUSTED_PROXY_CIDRS)"
        )
    if kind == "nginx":
        full = request.headers.get("X-Original-URL", "")
        if full:
            return from_url(full, "X-Original-URL")
        uri = request.headers.get("X-Original-URI", "")
        return Original(scheme, host_of(request, believe, scheme), _path(uri, "X-Original-URI"))
    uri = request.headers.get("X-Forwarded-Uri", "") or "/"
    return Original(scheme, host_of(request, believe, scheme), _path(uri, "X-Forwarded-Uri"))


def from_url(value: str, header: str) -> Original:
    if len(value) > MAX_URI or _CONTROL.search(value):
        raise BadForwarding(f"{header} is too long or holds control characters")
    parts = urllib.parse.urlsplit(value)
    host = normal_host(parts.netloc, parts.scheme) if parts.scheme in ("http", "https") else None
    if host is None:
        raise BadForwarding(f"{header} is not an absolute http(s) URL")
    path = parts.path or "/"
    return Original(
        parts.scheme, host, _path(path + ("?" + parts.query if parts.query else ""), header)
    )
