"""`/api/v3/core/applications/`: slugs, lookup by slug, provider references, launch URLs."""

from __future__ import annotations

from typing import Any

API = Any


async def test_crud_and_lookup_by_slug(api: API) -> None:
    status, app = await api(
        "POST",
        "core/applications/",
        json={
            "name": "Grafana",
            "slug": "grafana",
            "meta_launch_url": "https://grafana.example.com",
            "group": "Monitoring",
        },
    )
    assert status == 201, app
    assert app["launch_url"] == "https://grafana.example.com" and app["policy_engine_mode"] == "any"
    status, by_slug = await api("GET", "core/applications/grafana/")
    assert status == 200 and by_slug["pk"] == app["pk"]
    status, by_pk = await api("GET", f"core/applications/{app['pk']}/")
    assert status == 200 and by_pk == by_slug
    status, patched = await api(
        "PATCH", "core/applications/grafana/", json={"policy_engine_mode": "all"}
    )
    assert status == 200 and patched["policy_engine_mode"] == "all"
    status, _ = await api("DELETE", "core/applications/grafana/")
    assert status == 204


async def test_invalid_and_duplicate_slugs(api: API) -> None:
    status, body = await api("POST", "core/applications/", json={"name": "A", "slug": "not a slug"})
    assert status == 400 and "slug" in body
    status, body = await api("POST", "core/applications/", json={"name": "A", "slug": "a" * 51})
    assert status == 400 and "slug" in body
    await api("POST", "core/applications/", json={"name": "A", "slug": "same"})
    status, body = await api("POST", "core/applications/", json={"name": "B", "slug": "same"})
    assert status == 400 and "slug" in body


async def test_dangling_provider_is_400(api: API) -> None:
    status, body = await api(
        "POST", "core/applications/", json={"name": "A", "slug": "a", "provider": 12345}
    )
    assert status == 400 and "provider" in body


async def test_javascript_launch_url_is_refused(api: API) -> None:
    status, body = await api(
        "POST",
        "core/applications/",
        json={"name": "X", "slug": "x", "meta_launch_url": "javascript:alert(1)"},
    )
    assert status == 400 and "meta_launch_url" in body


async def test_policy_engine_mode_enum(api: API) -> None:
    status, body = await api(
        "POST", "core/applications/", json={"name": "A", "slug": "a", "policy_engine_mode": "some"}
    )
    assert status == 400 and "policy_engine_mode" in body


async def test_deleting_an_application_removes_its_policy_bindings(
    api: API, make_group: Any
) -> None:
    group = await make_group("app-users")
    _, app = await api("POST", "core/applications/", json={"name": "B", "slug": "b"})
    status, binding = await api(
        "POST", "policies/bindings/", json={"target": app["pk"], "group": group["pk"], "order": 0}
    )
    assert status == 201, binding
    await api("DELETE", "core/applications/b/")
    _, left = await api("GET", f"policies/bindings/?target={app['pk']}")
    assert left["pagination"]["count"] == 0
