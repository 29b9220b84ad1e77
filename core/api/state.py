"""Typed application and request state shared by the HTTP layers (api, web, outpost hub)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic
from aiohttp import web

from tessera.core import cache, config, crypto, store, wire
from tessera.core.stages import base as stages_base

SETTINGS = web.AppKey("settings", config.Settings)
STORE = web.AppKey("store", store.Store)
CACHE = web.AppKey("cache", cache.Cache)
KEYRING = web.AppKey("keyring", crypto.Keyring)
# The wire form of providers of any kind (as `/providers/all/` shows them), given their rows in
# the `providers` table: set by the provider slices, which the API layer cannot import, and read
# where another object names a provider (an application's `provider_obj`).
ProviderObjects = Callable[[store.Tx, list[dict[str, Any]]], Awaitable[list[wire.oauth2.Provider]]]
PROVIDER_OBJECTS = web.AppKey[ProviderObjects]("provider_objects")
# The launch URL an application takes from its provider when it has none of its own (authentik's
# guess from the provider's settings), by provider pk; set by the provider slices too.
ProviderLaunchUrls = Callable[[store.Tx, list[int]], Awaitable[dict[int, str]]]
PROVIDER_LAUNCH_URLS = web.AppKey[ProviderLaunchUrls]("provider_launch_urls")
# What an outpost of one type reads of its providers (every page of `/api/v3/outposts/<type>/`),
# given the outpost's pk and the base URL of the core's endpoints: each outpost type's provider
# slice adds its own, by outpost type; the outpost hub compares them (`outpost_hub.prints`).
OutpostConfigs = Callable[
    [store.Tx, crypto.Keyring, str, str], Awaitable[Sequence[pydantic.BaseModel]]
]
OUTPOST_CONFIGS = web.AppKey[dict[str, OutpostConfigs]]("outpost_configs")
# The passwords of users who came from a directory (checked at login, written back when set):
# set by the LDAP source slice, read by the flow executor's stages and the users API.
DIRECTORIES = web.AppKey("directories", stages_base.Directories)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a user, through an API token or a session."""

    user: dict[str, Any]
    is_superuser: bool
    via: str  # "token" or "session"
    # The outpost whose service account the user is (its pk): such a caller may read only what
    # that outpost needs (`auth.OUTPOST_ROUTES`, and each resource's own narrowing).
    outpost: str | None = None


PRINCIPAL = web.RequestKey("principal", Principal)


def retention(request: web.Request) -> dt.timedelta:
    return dt.timedelta(days=request.app[SETTINGS].events.retention_days)
