"""Client addresses in events: X-Forwarded-For is believed only from trusted proxies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from tessera.core import app, config, store


async def _created_ip(client: Any, headers: dict[str, str], name: str) -> str:
    response = await client.post("/api/v3/core/groups/", json={"name": name}, headers=headers)
    assert response.status == 201
    events = await client.get("/api/v3/events/events/?action=model_created", headers=headers)
    body = await events.json()
    return next(e["client_ip"] for e in body["results"] if e["context"]["model"]["name"] == name)


async def test_forwarded_for_spoofed_prefix_is_ignored(
    client: Any, admin_headers: dict[str, str]
) -> None:
    headers = {**admin_headers, "X-Forwarded-For": "6.6.6.6, 203.0.113.9"}
    assert await _created_ip(client, headers, "via-proxy") == "203.0.113.9"


async def test_forwarded_for_from_untrusted_peer_is_ignored(
    aiohttp_client: Callable[..., Awaitable[Any]],
    make_settings: Callable[..., config.Settings],
    bootstrapped: store.Store,
    admin_headers: dict[str, str],
) -> None:
    settings = make_settings(listen={"trusted_proxy_cidrs": ["10.0.0.0/8"]})
    client = await aiohttp_client(app.create_app(settings, bootstrapped, run_tasks=False))
    headers = {**admin_headers, "X-Forwarded-For": "203.0.113.9"}
    assert await _created_ip(client, headers, "direct") == "127.0.0.1"
