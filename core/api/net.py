"""Client addresses: X-Forwarded-For is believed only from trusted proxies."""

from __future__ import annotations

import functools
import ipaddress

from aiohttp import web

from tessera.core.api import state


@functools.lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def client_ip(request: web.Request) -> str | None:
    remote = request.remote
    if remote is None:
        return None
    trusted = _networks(tuple(request.app[state.SETTINGS].listen.trusted_proxy_cidrs))
    try:
        peer = ipaddress.ip_address(remote)
    except ValueError:
        return remote[:45]
    forwarded = request.headers.get("X-Forwarded-For")
    # SECURITY: a client outside the trusted CIDRs cannot choose the address we log and rate-limit.
    if forwarded and any(peer in net for net in trusted):
        first = forwarded.split(",")[0].strip()
        try:
            return str(ipaddress.ip_address(first))
        except ValueError:
            return str(peer)
    return str(peer)
