"""Client addresses: X-Forwarded-For is believed only from trusted proxies."""

from __future__ import annotations

import functools
import ipaddress

from aiohttp import web

from tessera.core import config
from tessera.core.api import state


@functools.lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def client_ip(request: web.Request) -> str | None:
    remote = request.remote
    if remote is None:
        return None
    cidrs = tuple(request.app[state.SETTINGS].listen.trusted_proxy_cidrs)
    return _resolve(remote, request.headers.get("X-Forwarded-For", ""), cidrs)


@functools.lru_cache(maxsize=4096)  # hot paths see the same few peers and proxy chains
def _resolve(remote: str, forwarded_for: str, cidrs: tuple[str, ...]) -> str:
    trusted = _networks(cidrs)
    try:
        peer = ipaddress.ip_address(remote)
    except ValueError:
        return remote[:45]
    # SECURITY: walk X-Forwarded-For from the right, through trusted proxies only: the first hop
    # that is not a trusted proxy is the client. Entries left of it are the client's own words.
    address = peer
    hops = forwarded_for.split(",")
    while _trusted(address, trusted) and hops:
        hop = hops.pop().strip()
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            break
    return str(address)


def is_secure(request: web.Request) -> bool:
    """HTTPS, directly or as reported by a trusted proxy (`X-Forwarded-Proto: https`)."""
    return secure_with(request.app[state.SETTINGS], request)


def secure_with(settings: config.Settings, request: web.BaseRequest) -> bool:
    """`is_secure` under `settings`: for a request no route has matched yet (no `app`)."""
    if request.secure:
        return True
    remote = request.remote
    if remote is None or request.headers.get("X-Forwarded-Proto", "").lower() != "https":
        return False
    trusted = _networks(tuple(settings.listen.trusted_proxy_cidrs))
    try:
        return _trusted(ipaddress.ip_address(remote), trusted)
    except ValueError:
        return False


def _trusted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
) -> bool:
    return any(address in net for net in trusted)


def public_base(request: web.Request) -> str:
    """This server's external URL: the configured public URL, else what the request says."""
    return public_base_with(request.app[state.SETTINGS], request)


def public_base_with(settings: config.Settings, request: web.BaseRequest) -> str:
    """`public_base` under `settings`: for a request no route has matched yet (no `app`)."""
    configured = settings.web.public_url.rstrip("/")
    if configured:
        return configured
    scheme = "https" if secure_with(settings, request) else "http"
    return f"{scheme}://{request.host}"
