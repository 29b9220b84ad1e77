"""A real core for the outpost tests: the app factory on a bootstrapped store, served on a fixed
loopback port so that it can be stopped and started again (a core restart), with helpers that
make proxy providers and outposts through the admin API."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from helpers import BOOTSTRAP_TOKEN, free_port

from tessera.core import app, config, store
from tessera.outposts.common import settings as outpost_settings

ADMIN = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}
IMPLICIT = "default-provider-authorization-implicit-consent"


class Core:
    """The core's app on 127.0.0.1:`port`; `stop()` and `start()` again restart it."""

    def __init__(
        self, settings: config.Settings, db: store.Store, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.settings, self.db, self.ssl_context = settings, db, ssl_context
        self.port = free_port()
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        self.runner: web.AppRunner | None = None

    @property
    def app(self) -> web.Application:
        assert self.runner is not None
        return self.runner.app

    async def start(self) -> None:
        application = app.create_app(self.settings, self.db, run_tasks=False)
        self.runner = web.AppRunner(application, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(
            self.runner, "127.0.0.1", self.port, reuse_address=True, ssl_context=self.ssl_context
        )
        await site.start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def api(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, f"{self.url}/api/v3/{path}", headers=ADMIN, **kwargs) as r,
        ):
            body = await r.json() if r.content_type == "application/json" else None
            return r.status, body

    async def flow_pk(self, slug: str) -> str:
        status, body = await self.api("GET", f"flows/instances/{slug}/")
        assert status == 200, body
        return str(body["pk"])

    async def proxy_provider(self, name: str) -> dict[str, Any]:
        body = {
            "name": name,
            "authorization_flow": await self.flow_pk(IMPLICIT),
            "invalidation_flow": await self.flow_pk("default-invalidation-flow"),
            "external_host": f"https://{name}.example.com",
            "internal_host": "http://127.0.0.1:8080",
            "mode": "forward_single",
        }
        status, provider = await self.api("POST", "providers/proxy/", json=body)
        assert status == 201, provider
        status, application = await self.api(
            "POST",
            "core/applications/",
            json={"name": name, "slug": name, "provider": provider["pk"]},
        )
        assert status == 201, application
        return dict(provider)

    async def outpost(
        self, name: str, providers: list[int], type: str = "proxy", **config: Any
    ) -> tuple[dict[str, Any], str]:
        """An outpost and its API token's key (read back as an admin would)."""
        body = {"name": name, "type": type, "providers": providers, "config": config}
        status, outpost = await self.api("POST", "outposts/instances/", json=body)
        assert status == 201, outpost
        status, key = await self.api("GET", f"core/tokens/{outpost['token_identifier']}/view_key/")
        assert status == 200, key
        return dict(outpost), str(key["key"])


@dataclass
class Deployed:
    """A proxy outpost with one provider, and the settings an outpost process of it reads."""

    outpost: dict[str, Any]
    provider: dict[str, Any]
    key: str
    state_dir: Path

    def settings(self, core: Core, **overrides: Any) -> outpost_settings.OutpostSettings:
        values: dict[str, Any] = {
            "host": core.url,
            "token": self.key,
            "state_dir": self.state_dir,
            "refresh_jitter_seconds": 0.2,
            **overrides,
        }
        return outpost_settings.load(**values)
