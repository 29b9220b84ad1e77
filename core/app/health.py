"""`/-/health/live/` (the process answers) and `/-/health/ready/` (the store and cache answer)."""

from __future__ import annotations

import structlog
from aiohttp import web

from tessera.core import cache, store
from tessera.core.api import http, state

log = structlog.get_logger(__name__)


async def live(_request: web.Request) -> web.Response:
    return http.respond({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    try:
        await request.app[state.STORE].ping()
    except store.StoreUnavailable as exc:
        log.warning("not ready: store unavailable", reason=str(exc))
        return _unavailable("store", "the database does not answer")
    try:
        await request.app[state.CACHE].ping()
    except cache.CacheUnavailable as exc:
        log.warning("not ready: cache unavailable", reason=str(exc))
        return _unavailable("cache", "the cache does not answer")
    return http.respond({"status": "ok"})


def _unavailable(component: str, reason: str) -> web.Response:
    # SECURITY: anonymous callers learn which component is down, not its address or error text.
    return http.respond({"status": "unavailable", "component": component, "reason": reason}, 503)
