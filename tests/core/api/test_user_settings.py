"""`GET /api/v3/stages/all/user_settings/`: the stages the caller may configure (the password
stage and the setup stages), in authentik's `UserSetting` shape with its `configure_url`
(`/flows/-/configure/<stage pk>/`); only stages whose configure flow exists and admits the caller
(authentication requirement, the flow's policies); any authenticated user, nobody else."""

from __future__ import annotations

import json
from typing import Any

from flowkit import log_in_as

API = Any
PATH = "/api/v3/stages/all/user_settings/"
# component -> the API path of the default stage's kind, in the list's order.
DEFAULT_STAGES = {
    "ak-user-settings-password": "password",
    "ak-user-settings-authenticator-totp": "authenticator/totp",
    "ak-user-settings-authenticator-webauthn": "authenticator/webauthn",
    "ak-user-settings-authenticator-static": "authenticator/static",
}
COMPONENTS = list(DEFAULT_STAGES)


async def _settings(client: Any, key: str) -> tuple[int, Any]:
    response = await client.get(PATH, headers={"Authorization": f"Bearer {key}"})
    return response.status, json.loads(await response.text())


async def _flow_pk(api: API, slug: str) -> str:
    status, flow = await api("GET", f"flows/instances/{slug}/")
    assert status == 200, flow
    return str(flow["pk"])


async def _stage(api: API, kind: str) -> dict[str, Any]:
    _, found = await api("GET", f"stages/{kind}/")
    (stage,) = found["results"]
    return dict(stage)


async def test_a_plain_user_gets_the_default_stages_in_authentiks_shape(
    client: Any, api: API, make_user: Any, make_token: Any
) -> None:
    await make_user("alice")
    status, body = await _settings(client, await make_token("alice", expiring=False))
    assert status == 200 and isinstance(body, list)
    assert [s["component"] for s in body] == COMPONENTS
    password = await _stage(api, "password")
    assert password["configure_flow"] == await _flow_pk(api, "default-password-change")
    assert body[0] == {
        "object_uid": password["pk"],
        "component": "ak-user-settings-password",
        "title": password["name"],
        "configure_url": f"/flows/-/configure/{password['pk']}/",
        "icon_url": None,
    }
    for setting, kind in zip(body, DEFAULT_STAGES.values(), strict=True):
        stage = await _stage(api, kind)
        assert setting["object_uid"] == stage["pk"]
        assert setting["configure_url"] == f"/flows/-/configure/{stage['pk']}/"
    # The action is not mistaken for a stage pk, and the detail route still works.
    status, one = await api("GET", f"stages/all/{password['pk']}/")
    assert status == 200 and one["pk"] == password["pk"]


async def test_password_stage_without_configure_flow_is_not_listed(
    client: Any, api: API, make_user: Any, make_token: Any
) -> None:
    await make_user("ivan")
    key = await make_token("ivan", expiring=False)
    password = await _stage(api, "password")
    status, _ = await api(
        "PATCH", f"stages/password/{password['pk']}/", json={"configure_flow": None}
    )
    assert status == 200
    _, body = await _settings(client, key)
    assert [s["component"] for s in body] == COMPONENTS[1:]
    # A new password stage of an admin's, pointing at the default change flow, is listed.
    status, mine = await api(
        "POST",
        "stages/password/",
        json={
            "name": "company-password",
            "configure_flow": await _flow_pk(api, "default-password-change"),
        },
    )
    assert status == 201
    _, body = await _settings(client, key)
    assert body[0]["object_uid"] == mine["pk"] and body[0]["title"] == "company-password"


async def test_password_configure_flow_must_be_a_flows_pk(api: API) -> None:
    password = await _stage(api, "password")
    missing = "00000000-0000-4000-8000-000000000000"
    for bad in ("../../evil", "https://evil.example.com/", "x" * 300, 7, missing):
        status, problem = await api(
            "PATCH", f"stages/password/{password['pk']}/", json={"configure_flow": bad}
        )
        assert status == 400 and "configure_flow" in problem
    expected = await _flow_pk(api, "default-password-change")
    assert (await _stage(api, "password"))["configure_flow"] == expected


async def test_friendly_name_is_the_title_when_set(
    client: Any, api: API, make_user: Any, make_token: Any
) -> None:
    await make_user("bob")
    totp = await _stage(api, "authenticator/totp")
    status, _ = await api(
        "PATCH", f"stages/authenticator/totp/{totp['pk']}/", json={"friendly_name": "Phone app"}
    )
    assert status == 200
    _, body = await _settings(client, await make_token("bob", expiring=False))
    assert body[1]["title"] == "Phone app"


async def test_stage_without_configure_flow_or_with_a_missing_flow_is_not_listed(
    client: Any, api: API, make_user: Any, make_token: Any
) -> None:
    await make_user("carol")
    key = await make_token("carol", expiring=False)
    static = await _stage(api, "authenticator/static")
    totp = await _stage(api, "authenticator/totp")
    await api(
        "PATCH", f"stages/authenticator/static/{static['pk']}/", json={"configure_flow": None}
    )
    status, flow = await api(
        "POST",
        "flows/instances/",
        json={
            "name": "Company TOTP",
            "slug": "company-totp",
            "title": "Company TOTP",
            "designation": "stage_configuration",
            "authentication": "require_authenticated",
        },
    )
    assert status == 201
    status, _ = await api(
        "PATCH", f"stages/authenticator/totp/{totp['pk']}/", json={"configure_flow": flow["pk"]}
    )
    assert status == 200
    _, body = await _settings(client, key)
    assert body[1]["object_uid"] == totp["pk"]
    assert body[1]["configure_url"] == f"/flows/-/configure/{totp['pk']}/"
    # Once the flow is gone (its pk stays in the setting), the stage is not offered.
    assert (await api("DELETE", "flows/instances/company-totp/"))[0] == 204
    _, body = await _settings(client, key)
    assert [s["component"] for s in body] == [COMPONENTS[0], COMPONENTS[2]]


async def test_flow_policies_decide_who_sees_a_stage(
    client: Any, api: API, make_user: Any, make_group: Any, make_token: Any
) -> None:
    """A configure flow bound to a group: only its members are offered that stage."""
    member = await make_user("dave")
    await make_user("erin")
    group = await make_group("totp-users")
    status, _ = await api("POST", f"core/groups/{group['pk']}/add_user/", json={"pk": member["pk"]})
    assert status == 204
    _, flow = await api("GET", "flows/instances/default-authenticator-totp-setup/")
    status, _ = await api(
        "POST", "policies/bindings/", json={"target": flow["pk"], "group": group["pk"], "order": 0}
    )
    assert status == 201
    _, dave = await _settings(client, await make_token("dave", expiring=False))
    _, erin = await _settings(client, await make_token("erin", expiring=False))
    assert "ak-user-settings-authenticator-totp" in [s["component"] for s in dave]
    assert [s["component"] for s in erin] == [c for c in COMPONENTS if c != COMPONENTS[1]]


async def test_flow_requiring_unauthenticated_or_superuser_is_not_offered(
    client: Any, api: API, make_user: Any, make_token: Any
) -> None:
    await make_user("frank")
    key = await make_token("frank", expiring=False)
    for slug, requirement in (
        ("default-authenticator-totp-setup", "require_unauthenticated"),
        ("default-authenticator-static-setup", "require_superuser"),
    ):
        status, _ = await api(
            "PATCH", f"flows/instances/{slug}/", json={"authentication": requirement}
        )
        assert status == 200
    _, body = await _settings(client, key)
    assert [s["component"] for s in body] == [COMPONENTS[0], COMPONENTS[2]]
    # akadmin is a superuser: the superuser-only flow is offered to them.
    _, admin = await api("GET", "stages/all/user_settings/")
    assert [s["component"] for s in admin] == [COMPONENTS[0], COMPONENTS[2], COMPONENTS[3]]


async def test_anonymous_and_forged_token_are_refused_with_json(
    client: Any, make_user: Any
) -> None:
    await make_user("grace")
    response = await client.get(PATH)
    assert response.status == 401 and "detail" in await response.json()
    status, body = await _settings(client, "not-a-token")
    assert status in (401, 403) and "detail" in body


async def test_session_user_gets_their_list_without_csrf_on_get(
    client: Any, bootstrapped: Any, make_user: Any
) -> None:
    await make_user("heidi")
    await log_in_as(client, bootstrapped, "heidi")
    response = await client.get(PATH)
    assert response.status == 200
    assert [s["component"] for s in await response.json()] == COMPONENTS
    # Only GET: the listing cannot be written to.
    assert (await client.post(PATH, json={})).status in (403, 405)


async def test_openapi_describes_a_plain_list_of_user_settings(client: Any) -> None:
    schema = await (await client.get("/api/v3/schema/")).json()
    op = schema["paths"]["/stages/all/user_settings/"]["get"]
    ok = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"type": "array", "items": {"$ref": "#/components/schemas/UserSetting"}}
    props = schema["components"]["schemas"]["UserSetting"]["properties"]
    assert set(props) == {"object_uid", "component", "title", "configure_url", "icon_url"}
