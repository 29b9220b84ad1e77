"""The LDAP provider's core side: its admin API, what LDAP outposts read and call, and the
pushes that tell them their directory changed.

`RESOURCES` (`/api/v3/providers/ldap/`, `/api/v3/outposts/ldap/` with the outpost's calls) are
registered with the admin API by the app; `setup(app, channels)` starts the directory
`push.Pusher` once the outpost hub runs (the app hands the hub in: the two are siblings) and
registers what an LDAP outpost reads (`configs.for_outpost`) as
`api.state.OUTPOST_CONFIGS["ldap"]`, which the hub compares. The
parts: `records` (providers), `grants` ("search full directory"), `configs` (what outposts
read), `directory` (users and groups as the outposts see them, the journal), `filters`
(RFC 4515), `bind` (the one-call bind), `passwords` (RFC 3062 through the password policies),
`calls` (the HTTP handlers), `push`.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from tessera.core.api import state
from tessera.core.providers.ldap import (
    bind,
    calls,
    configs,
    directory,
    filters,
    grants,
    passwords,
    push,
    records,
    resources,
)
from tessera.core.providers.ldap.resources import RESOURCES

PUSHER = web.AppKey("ldap_pusher", push.Pusher)
Channels = Callable[[], push.Channels | None]
CHANNELS = web.AppKey[Channels]("ldap_channels")


async def _start(app: web.Application) -> None:
    """After the cleanup contexts (the store's listeners, the outpost hub) have started."""
    pusher = push.Pusher(app[state.STORE], app[CHANNELS])
    await pusher.start()
    app[PUSHER] = pusher


async def _stop(app: web.Application) -> None:
    if PUSHER in app:
        await app[PUSHER].stop()


def setup(app: web.Application, channels: Channels) -> None:
    """`channels`: this process's open control channels (the outpost hub, once it runs)."""
    app[CHANNELS] = channels
    app.setdefault(state.OUTPOST_CONFIGS, {})[records.KIND] = configs.for_outpost
    app.on_startup.append(_start)
    app.on_shutdown.append(_stop)


__all__ = [
    "PUSHER",
    "RESOURCES",
    "bind",
    "calls",
    "configs",
    "directory",
    "filters",
    "grants",
    "passwords",
    "push",
    "records",
    "resources",
    "setup",
]
