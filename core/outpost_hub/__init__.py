"""The core side of the outposts' control channel (`/ws/outpost/<uuid>/`).

- `channel`: the websocket endpoint, its handshake checks and frame handling;
- `hub`: this process's connections, and the fan-out of TRIGGER_UPDATE (a committed change to
  what an outpost reads, to that outpost's instances) and SESSION_END (a session ended) to every
  process and replica, through the bus;
- `prints`: the digest of what an outpost fetches, which the hub compares;
- `instances`: each instance's state in the shared cache (15 s after its last HELLO);
- `health`: `/api/v3/outposts/instances/<uuid>/health/`.

`setup(app, registry)` adds the routes, the hub's cleanup context (after the cache's) and its
gauge; the app factory calls it. Frames and `OutpostHealth` are `wire.outpost_channel`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from tessera.core.api import state
from tessera.core.outpost_hub import channel, health, hub, instances, prints

__all__ = [
    "HUB",
    "MODELS",
    "channel",
    "health",
    "hub",
    "instances",
    "openapi_paths",
    "prints",
    "setup",
]

HUB = channel.HUB
MODELS = health.MODELS
openapi_paths = health.openapi_paths


def setup(app: web.Application, registry: CollectorRegistry | None = None) -> None:
    """Serve the control channel and the health operation from `app`."""

    async def running(app: web.Application) -> AsyncIterator[None]:
        async with hub.running(app[state.STORE], app[state.CACHE], _reading(app)) as h:
            app[HUB] = h
            collector = hub.ConnectedCollector(h)
            if registry is not None:
                registry.register(collector)
            try:
                yield
            finally:
                if registry is not None:
                    registry.unregister(collector)

    async def close_channels(app: web.Application) -> None:
        if HUB in app:
            await app[HUB].close_all()

    app.cleanup_ctx.append(running)
    app.on_shutdown.append(close_channels)
    app.router.add_get("/ws/outpost/{uuid}/", channel.handle, allow_head=False)
    app.router.add_get(health.PATH, health.handle, allow_head=False)


def _reading(app: web.Application) -> prints.Reading | None:
    """What the provider slices registered (by the time the app starts); None without the
    OAuth2 slice's provider objects (every outpost is then told of every change)."""
    provider_objects = app.get(state.PROVIDER_OBJECTS)
    if provider_objects is None:
        return None
    configs: dict[str, state.OutpostConfigs] = {}
    if state.OUTPOST_CONFIGS in app:
        configs = app[state.OUTPOST_CONFIGS]
    return prints.Reading(app[state.KEYRING], provider_objects, dict(configs))
