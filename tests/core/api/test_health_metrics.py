"""Health endpoints and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client import generate_latest

from tessera.core import app, store


async def test_live_and_ready(client: Any) -> None:
    assert (await client.get("/-/health/live/")).status == 200
    response = await client.get("/-/health/ready/")
    assert response.status == 200 and (await response.json())["status"] == "ok"


async def test_ready_is_503_while_the_store_is_away_and_recovers(client: Any, bootstrapped: store.Store) -> None:
    engine = bootstrapped._engine
    bootstrapped._engine = None  # the store as seen by a process whose database vanished
    try:
        response = await client.get("/-/health/ready/")
        assert response.status == 503
        body = await response.json()
        assert body["component"] == "store" and body["reason"]
        assert (await client.get("/-/health/live/")).status == 200
        api = await client.get("/api/v3/core/users/", headers={"Authorization": "Bearer x"})
        assert api.status == 503
    finally:
        bootstrapped._engine = engine
    assert (await client.get("/-/health/ready/")).status == 200


async def test_metrics_count_requests_by_route_and_status(client: Any, admin_headers: Any) -> None:
    await client.get("/api/v3/core/users/", headers=admin_headers)
    await client.get("/api/v3/core/users/999/", headers=admin_headers)
    text = generate_latest(client.app[app.METRICS].registry).decode()
    assert 'tessera_http_requests_total{method="GET",route="/api/v3/core/users/",status="200"} 1.0' in text
    assert 'route="/api/v3/core/users/{lookup}/",status="404"' in text
    assert "tessera_store_pool_checked_out" in text
    assert "tessera_build_info" in text
