"""The OpenAPI document: valid OpenAPI 3.1, generated from the models that validate requests."""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import validate


async def test_schema_validates_against_openapi_3(client: Any) -> None:
    response = await client.get("/api/v3/schema/")
    assert response.status == 200
    document = await response.json()
    validate(document)
    for path in (
        "/core/users/",
        "/core/users/{pk}/",
        "/core/users/me/",
        "/core/users/{pk}/set_password/",
        "/core/groups/",
        "/core/applications/{pk}/",
        "/core/tokens/{identifier}/view_key/",
        "/crypto/certificatekeypairs/generate/",
        "/events/events/",
        "/root/config/",
        "/authenticators/all/",
        "/authenticators/totp/{pk}/",
        "/authenticators/admin/webauthn/",
    ):
        assert path in document["paths"], path


async def test_request_schemas_forbid_unknown_fields(client: Any) -> None:
    document = await (await client.get("/api/v3/schema/")).json()
    user_request = document["components"]["schemas"]["UserRequest"]
    assert user_request["additionalProperties"] is False
    assert user_request["properties"]["username"]["maxLength"] == 150
    assert "required" not in document["components"]["schemas"]["PatchedUserRequest"]


async def test_root_config_is_public(client: Any) -> None:
    response = await client.get("/api/v3/root/config/")
    assert response.status == 200
    body = await response.json()
    assert body["error_reporting"]["enabled"] is False and "capabilities" in body


async def test_authenticator_operations_are_only_those_offered(client: Any) -> None:
    paths = (await (await client.get("/api/v3/schema/")).json())["paths"]
    assert set(paths["/authenticators/totp/{pk}/"]) == {"get", "patch", "delete"}
    assert set(paths["/authenticators/totp/"]) == {"get"}
    assert set(paths["/authenticators/admin/static/{pk}/"]) == {"get", "delete"}
    assert paths["/authenticators/all/"]["get"]["responses"]["200"]
