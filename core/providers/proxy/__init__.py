"""The proxy provider: its admin API, what proxy outposts read, and the embedded outpost's record.

`RESOURCES` (`/api/v3/providers/proxy/`, `/api/v3/outposts/proxy/`) are registered with the admin
API by the app; `setup(app)` adds, at start-up, the `ak_proxy` scope mapping and the managed
"authentik Embedded Outpost" when they are missing (removes the latter when
`outposts.disable_embedded_outpost` is set), and registers what a proxy outpost reads
(`configs.for_outpost`) as `api.state.OUTPOST_CONFIGS["proxy"]` for the outpost hub.
`outpost_proxy_configs` is what an outpost reads, for callers in process (the embedded outpost).
"""

from __future__ import annotations

from aiohttp import web

from tessera.core.api import state
from tessera.core.identity import outposts
from tessera.core.providers.proxy import configs, records, resources
from tessera.core.providers.proxy.configs import outpost_proxy_configs
from tessera.core.providers.proxy.resources import RESOURCES


async def _start(app: web.Application) -> None:
    db, settings = app[state.STORE], app[state.SETTINGS]
    await records.ensure_proxy_mapping(db)
    async with db.transaction() as tx:
        if settings.outposts.disable_embedded_outpost:
            await outposts.remove_embedded(tx)  # as authentik: gone while disabled
        else:
            public_url = settings.web.public_url.rstrip("/")
            await outposts.ensure_embedded(tx, app[state.KEYRING], public_url)


def setup(app: web.Application) -> None:
    app.setdefault(state.OUTPOST_CONFIGS, {})[records.KIND] = configs.for_outpost
    app.on_startup.append(_start)


__all__ = ["RESOURCES", "configs", "outpost_proxy_configs", "records", "resources", "setup"]
