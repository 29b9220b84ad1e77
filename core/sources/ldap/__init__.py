"""The LDAP source: users and groups synced in from a directory, which checks their passwords.

`RESOURCES` (`/api/v3/sources/ldap/`, `/api/v3/propertymappings/source/ldap/`,
`/api/v3/sources/all/`) are registered with the admin API by the app; `setup(app)` creates the
system LDAP mappings at start-up and hands the stages and the users API the password backend
(`auth.Passwords`, as `api.state.DIRECTORIES`). `schedule.scheduler` is the worker's loop that
syncs every enabled source every 2 hours; `runner.run` syncs one now.
"""

from __future__ import annotations

from aiohttp import web

from tessera.core.api import state
from tessera.core.sources.ldap import auth, client, mappings, records, runner, schedule, sync
from tessera.core.sources.ldap.resources import RESOURCES
from tessera.core.stages import base as stages_base


async def _start(app: web.Application) -> None:
    await mappings.ensure_defaults(app[state.STORE])


def setup(app: web.Application) -> None:
    passwords = auth.Passwords(app[state.STORE], app[state.KEYRING])
    app[state.DIRECTORIES] = stages_base.Directories(passwords.check, passwords.changed)
    app.on_startup.append(_start)


__all__ = [
    "RESOURCES",
    "auth",
    "client",
    "mappings",
    "records",
    "runner",
    "schedule",
    "setup",
    "sync",
]
