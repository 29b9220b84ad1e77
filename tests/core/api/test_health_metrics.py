"""Health endpoints and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from prometheus_client import generate_latest

from tessera.core import app


async def test_live_and_ready(client: Any) -> None:
    assert (await client.get("/-/health/live/")).status == 200
    response = await client.get("/-/health/ready/")
    assert response.status == 200 and (await response.json())["status"] == "ok"


async def test_metrics_count_requests_by_route_and_status(client: Any, admin_headers: Any) -> None:
    await client.get("/api/v3/core/users/", headers=admin_headers)
    await client.get("/api/v3/core/users/999/", headers=admin_headers)
    text = generate_latest(client.app[app.METRICS].registry).decode()
    assert (
        'tessera_http_requests_total{method="GET",route="/api/v3/core/users/",status="200"} 1.0'
        in text
    )
    assert 'route="/api/v3/core/users/{lookup}/",status="404"' in text
    assert "tessera_store_pool_checked_out" in text
    assert "tessera_build_info" in text


async def test_metric_labels_stay_bounded(client: Any, admin_headers: Any) -> None:
    for i in range(5):
        await client.get(f"/no/such/path/{i}")
        await client.request("PROPFIND", f"/api/v3/core/users/?i={i}")
    text = generate_latest(client.app[app.METRICS].registry).decode()
    assert "/no/such/path" not in text and "PROPFIND" not in text
    assert 'route="unmatched"' in text and 'method="other"' in text
