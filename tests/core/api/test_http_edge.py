"""The HTTP edge: malformed JSON, wrong content types, oversized bodies, unknown routes."""

from __future__ import annotations

from typing import Any


async def test_malformed_json_is_400(client: Any, admin_headers: Any) -> None:
    response = await client.post(
        "/api/v3/core/users/",
        data=b'{"username": ',
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert response.status == 400
    assert (await response.json()) == {"detail": "JSON parse error."}


async def test_json_that_is_not_an_object_is_400(client: Any, admin_headers: Any) -> None:
    response = await client.post("/api/v3/core/users/", json=["alice"], headers=admin_headers)
    assert response.status == 400
    assert "non_field_errors" in await response.json()


async def test_wrong_content_type_is_415(client: Any, admin_headers: Any) -> None:
    response = await client.post(
        "/api/v3/core/users/",
        data="username=alice",
        headers={**admin_headers, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 415
    assert "detail" in await response.json()


async def test_oversized_body_is_413(client: Any, admin_headers: Any) -> None:
    big = b'{"username": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    response = await client.post(
        "/api/v3/core/users/",
        data=big,
        headers={**admin_headers, "Content-Type": "application/json"},
    )
    assert response.status == 413
    assert "detail" in await response.json()


async def test_deeply_nested_attributes_are_400(api: Any) -> None:
    nested: Any = "leaf"
    for _ in range(40):
        nested = {"n": nested}
    status, body = await api("POST", "core/users/", json={"username": "deep", "attributes": nested})
    assert status == 400


async def test_attributes_over_the_size_limit_are_400(api: Any) -> None:
    status, body = await api(
        "POST", "core/users/", json={"username": "big", "attributes": {"x": "y" * 70000}}
    )
    assert status == 400 and "attributes" in body


async def test_unknown_api_route_is_json_404(client: Any, admin_headers: Any) -> None:
    response = await client.get("/api/v3/nothing/here/", headers=admin_headers)
    assert response.status == 404
    assert response.content_type == "application/json"


async def test_wrong_method_is_json_405(client: Any, admin_headers: Any) -> None:
    response = await client.put("/api/v3/core/users/", headers=admin_headers, json={})
    assert response.status == 405
    assert response.content_type == "application/json"


async def test_read_only_resource_refuses_writes(client: Any, admin_headers: Any) -> None:
    response = await client.post(
        "/api/v3/events/events/", headers=admin_headers, json={"action": "login"}
    )
    assert response.status == 405
