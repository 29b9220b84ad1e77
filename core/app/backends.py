"""Which Cache and Bus backend a core process uses, from its settings.

Redis when a Redis host is configured (it stays the choice whenever it is there); else, when
PostgreSQL is configured, the PostgreSQL backend in the Store's database (`store.pgcache`), so that
replicas and worker processes share sessions' flow state, throttles and broadcasts without Redis,
as authentik does since 2025.10; else the in-process cache of the embedded default, which is
shared by nothing, so the embedded default serves with one process (`app.serving`).
"""

from __future__ import annotations

from typing import Literal

from tessera.core import cache, config

Kind = Literal["redis", "postgresql", "memory"]


def kind(settings: config.Settings) -> Kind:
    if settings.redis.host:
        return "redis"
    return "memory" if settings.embedded else "postgresql"


def open_cache(settings: config.Settings) -> cache.Cache:
    """A new, unconnected cache of the configured kind (it connects on first use)."""
    r = settings.redis
    if kind(settings) == "postgresql":
        # Imported here: asyncpg is loaded only when PostgreSQL is configured.
        from tessera.core.store import pgcache

        return pgcache.PostgresCache(settings.postgresql)
    return cache.from_settings(
        r.host,
        r.port,
        r.db,
        r.password.get_secret_value(),
        r.prefix,
        username=r.username,
        tls=r.tls,
        tls_reqs=r.tls_reqs,
        tls_ca_cert=r.tls_ca_cert,
    )
