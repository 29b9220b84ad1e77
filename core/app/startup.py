"""What a core says when it starts, for the person reading its output.

`app.prepare` calls `announce` once per start (the supervisor's, not each worker's): the version,
where the data lives (the SQLite file, or the PostgreSQL host and database), which cache and bus
backend serves, and the data directory. The listen addresses follow in the `serving` line, and
the initial-setup link when no admin has a usable password yet. Library chatter (Alembic's
plugin set-up and per-revision lines) stays below INFO (`logs.configure`).

# SECURITY: the database is named by host, port, user and name; its password never appears.
"""

from __future__ import annotations

import structlog

from tessera.core import config
from tessera.core.app import backends, metrics

log = structlog.get_logger("tessera.core.app")


def database(settings: config.Settings) -> str:
    """Where the store is, without credentials."""
    if settings.embedded:
        return f"sqlite:{settings.sqlite_path.resolve()}"
    pg = settings.postgresql
    return f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.name}"


def cache(settings: config.Settings) -> str:
    kind = backends.kind(settings)
    if kind == "redis":
        r = settings.redis
        return f"{'rediss' if r.tls else 'redis'}://{r.host}:{r.port}/{r.db}"
    if kind == "postgresql":
        return "postgresql (the store's database)"
    return "in-process (embedded default)"


def announce(settings: config.Settings) -> None:
    log.info(
        "starting",
        version=metrics.VERSION,
        database=database(settings),
        cache=cache(settings),
        data_dir=str(settings.data_dir.resolve()),
    )
