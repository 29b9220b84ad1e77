"""`/-/health/live/` (the process answers) and `/-/health/ready/` (the store and cache answer)."""

from __future__ import annotations

from aiohttp import web

from tessera.core import cache, store
from tessera.core.api import http, state


async def live(_request: web.Request) -> web.Response:
    return http.respond({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    try:
        await request.app[state.STORE].ping()
    except store.StoreUnavailable as exc:
        return http.respond(
            {"status": "unavailable", "component": "store", "reason": str(exc)}, 503
        )
    try:
        await request.app[state.CACHE].ping()
    except cache.CacheUnavailable as exc:
        return http.respond(
            {"status": "unavailable", "component": "cache", "reason": str(exc)}, 503
        )
    return http.respond({"status": "ok"})
