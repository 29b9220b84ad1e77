"""`/api/v3/stages/invitation/invitations/`: invitations made through the admin API and used by
the invitation stage through the JSON flow executor (`?itoken=<pk>`)."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
from collections.abc import Awaitable, Callable
from typing import Any

from flowkit import make_flow

from tessera.core import wire

API = Callable[..., Awaitable[tuple[int, Any]]]
BASE = "stages/invitation/invitations/"
EXECUTOR = "/api/v3/flows/executor/{slug}/"
MISSING = "00000000-0000-4000-8000-000000000000"
FIELDS = [
    {"field_key": "username", "type": "username"},
    {"field_key": "password", "type": "password", "order": 1},
]
SHAPE = {"pk", "name", "expires", "fixed_data", "created_by", "single_use", "flow", "flow_obj"}


async def _enrollment_flow(db: Any, slug: str = "invite-only") -> str:
    return await make_flow(
        db,
        slug,
        [
            ("invitation", {}),
            ("prompt", {"fields": FIELDS}),
            ("user_write", {"user_creation_mode": "always_create"}),
            ("user_login", {}),
        ],
        designation="enrollment",
    )


async def _invite(api: API, **fields: Any) -> dict[str, Any]:
    status, body = await api("POST", BASE, json={"name": "welcome", **fields})
    assert status == 201, body
    return dict(body)


async def _enrol(client: Any, token: str | None, username: str, slug: str = "invite-only") -> str:
    """The component the flow ends on for someone following the invitation link."""
    client.session.cookie_jar.clear()
    path = EXECUTOR.format(slug=slug)
    query = f"?query={urllib.parse.quote('itoken=' + token)}" if token else ""
    body = await (await client.get(path + query)).json()
    if body["component"] == "ak-stage-prompt":
        answer = {"username": username, "password": "a-long-password"}
        body = await (await client.post(path, json=answer)).json()
    return str(body["component"])


def _iso(delta: dt.timedelta) -> str:
    return (dt.datetime.now(dt.UTC) + delta).isoformat()


async def _errors(api: API, method: str, path: str, body: Any) -> dict[str, Any]:
    status, errors = await api(method, path, json=body)
    assert status == 400, (body, status, errors)
    return dict(errors)


# Use through the flow executor ---------------------------------------------------------------


async def test_api_invitation_admits_one_enrollment_with_its_fixed_data(
    client: Any, bootstrapped: Any, api: API
) -> None:
    flow_pk = await _enrollment_flow(bootstrapped)
    invitation = await _invite(
        api, flow=flow_pk, single_use=True, fixed_data={"email": "invited@example.com"}
    )
    assert set(invitation) == SHAPE
    assert invitation["created_by"]["username"] == "akadmin"
    assert invitation["flow_obj"]["slug"] == "invite-only" and invitation["flow"] == flow_pk
    wire.flows.Invitation.model_validate(invitation)

    assert await _enrol(client, invitation["pk"], "guest") == "xak-flow-redirect"
    _, users = await api("GET", "core/users/?username=guest")
    assert users["results"][0]["email"] == "invited@example.com"
    # single use: the second enrollment is refused and the invitation is gone
    assert await _enrol(client, invitation["pk"], "guest2") == "ak-stage-access-denied"
    assert (await api("GET", f"{BASE}{invitation['pk']}/"))[0] == 404
    _, used = await api("GET", "events/events/?action=invitation_used")
    assert used["pagination"]["count"] == 1


async def test_reusable_invitation_admits_several_enrollments(
    client: Any, bootstrapped: Any, api: API
) -> None:
    await _enrollment_flow(bootstrapped)
    invitation = await _invite(api)  # no flow: any flow with an invitation stage
    assert invitation["flow"] is None and invitation["flow_obj"] is None
    assert invitation["single_use"] is False and invitation["fixed_data"] == {}
    assert await _enrol(client, invitation["pk"], "first") == "xak-flow-redirect"
    assert await _enrol(client, invitation["pk"], "second") == "xak-flow-redirect"
    assert (await api("GET", f"{BASE}{invitation['pk']}/"))[0] == 200


async def test_expired_invitation_is_refused_until_extended(
    client: Any, bootstrapped: Any, api: API
) -> None:
    await _enrollment_flow(bootstrapped)
    invitation = await _invite(api, expires=_iso(-dt.timedelta(minutes=1)))
    assert await _enrol(client, invitation["pk"], "late") == "ak-stage-access-denied"
    status, _ = await api(
        "PATCH", f"{BASE}{invitation['pk']}/", json={"expires": _iso(dt.timedelta(hours=1))}
    )
    assert status == 200
    assert await _enrol(client, invitation["pk"], "late") == "xak-flow-redirect"


async def test_invitation_limited_to_another_flow_is_refused(
    client: Any, bootstrapped: Any, api: API
) -> None:
    await _enrollment_flow(bootstrapped)
    other = await _enrollment_flow(bootstrapped, "other-enrollment")
    invitation = await _invite(api, flow=other)
    assert await _enrol(client, invitation["pk"], "x") == "ak-stage-access-denied"
    assert await _enrol(client, invitation["pk"], "x", "other-enrollment") == "xak-flow-redirect"


# The resource ---------------------------------------------------------------------------------


async def test_crud_filters_and_audit_events(bootstrapped: Any, api: API) -> None:
    flow_pk = await _enrollment_flow(bootstrapped)
    first = await _invite(api, flow=flow_pk, expires="2031-01-02T03:04:05+02:00")
    assert first["expires"].startswith("2031-01-02T01:04:05")  # kept in UTC
    second = await _invite(api, name="second", fixed_data={"name": "Guest"})

    async def names(query: str) -> list[str]:
        status, page = await api("GET", BASE + query)
        assert status == 200, page
        return sorted(r["name"] for r in page["results"])

    assert await names("") == ["second", "welcome"]
    assert await names("?name=second") == ["second"]
    assert await names("?flow__slug=invite-only") == ["welcome"]
    assert await names("?flow__slug=nope") == []
    assert await names("?created_by__username=akadmin") == ["second", "welcome"]
    assert await names("?created_by__username=someone") == []
    assert await names("?search=wel") == ["welcome"]
    assert await names("?expires=2031-01-02T01:04:05Z") == ["welcome"]
    _, ordered = await api("GET", BASE + "?ordering=-name")
    assert [r["name"] for r in ordered["results"]] == ["welcome", "second"]

    status, patched = await api("PATCH", f"{BASE}{second['pk']}/", json={"single_use": True})
    assert status == 200 and patched["single_use"] is True
    assert patched["fixed_data"] == {"name": "Guest"} and patched["created_by"] is not None
    status, put = await api("PUT", f"{BASE}{second['pk']}/", json={"name": "renamed"})
    assert status == 200 and put["single_use"] is False and put["fixed_data"] == {}
    assert (await api("DELETE", f"{BASE}{first['pk']}/"))[0] == 204
    assert (await api("GET", f"{BASE}{first['pk']}/"))[0] == 404

    for action in ("model_created", "model_updated", "model_deleted"):
        _, page = await api("GET", f"events/events/?action={action}")
        models = [e["context"]["model"] for e in page["results"]]
        assert any(
            m["app"] == "authentik_stages_invitation" and m["model_name"] == "invitation"
            for m in models
        ), (action, models)


async def test_secret_looking_fixed_data_stays_out_of_the_audit_diff(api: API) -> None:
    invitation = await _invite(api)
    canary = "canary-secret-4711"
    status, _ = await api(
        "PATCH", f"{BASE}{invitation['pk']}/", json={"fixed_data": {"password": canary}}
    )
    assert status == 200
    _, page = await api("GET", "events/events/?action=model_updated")
    assert canary not in json.dumps(page)


async def test_deleting_the_flow_deletes_its_invitations(bootstrapped: Any, api: API) -> None:
    flow_pk = await _enrollment_flow(bootstrapped)
    invitation = await _invite(api, flow=flow_pk)
    assert (await api("DELETE", f"flows/instances/{flow_pk}/"))[0] == 204
    assert (await api("GET", f"{BASE}{invitation['pk']}/"))[0] == 404


async def test_schema_describes_the_resource(api: API) -> None:
    _, document = await api("GET", "schema/")
    assert set(document["paths"]["/stages/invitation/invitations/"]) == {"get", "post"}
    assert set(document["paths"]["/stages/invitation/invitations/{pk}/"]) == {
        "get",
        "put",
        "patch",
        "delete",
    }
    request = document["components"]["schemas"]["InvitationRequest"]
    assert request["additionalProperties"] is False and "created_by" not in request["properties"]
    assert set(document["components"]["schemas"]["Invitation"]["properties"]) == SHAPE
    params = {p["name"] for p in document["paths"][f"/{BASE}"]["get"]["parameters"]}
    assert {"name", "expires", "created_by__username", "flow__slug"} <= params


# Bad input and attacks: 4xx JSON, never 500 -------------------------------------------------


async def test_flow_must_exist(api: API) -> None:
    assert "flow" in await _errors(api, "POST", BASE, {"name": "a", "flow": MISSING})
    assert "flow" in await _errors(api, "POST", BASE, {"name": "a", "flow": "not-a-uuid"})
    assert "flow" in await _errors(api, "POST", BASE, {"name": "a", "flow": 7})


async def test_fixed_data_must_be_a_bounded_json_object(
    client: Any, api: API, admin_headers: dict[str, str]
) -> None:
    for bad in ([1, 2], "text", 3, True, {"big": "x" * 20_000}):
        assert "fixed_data" in await _errors(api, "POST", BASE, {"name": "a", "fixed_data": bad})
    deep: Any = "leaf"
    for _ in range(40):
        deep = {"d": deep}
    errors = await _errors(api, "POST", BASE, {"name": "a", "fixed_data": deep})
    assert errors  # refused whichever check names it
    headers = {**admin_headers, "Content-Type": "application/json"}
    for raw in ('{"n": NaN}', '{"n": Infinity}', '{"n": -1e999}'):
        body = f'{{"name": "a", "fixed_data": {raw}}}'
        response = await client.post(f"/api/v3/{BASE}", data=body, headers=headers)
        assert response.status == 400, (raw, await response.text())
        assert "fixed_data" in await response.json()


async def test_read_only_fields_are_ignored_and_unknown_ones_refused(api: API) -> None:
    assert "color" in await _errors(api, "POST", BASE, {"name": "a", "color": "red"})
    status, made = await api(
        "POST", BASE, json={"name": "a", "created_by": 99, "pk": MISSING, "flow_obj": {}}
    )
    assert status == 201, made
    assert made["pk"] != MISSING and made["created_by"]["username"] == "akadmin"
    status, patched = await api("PATCH", f"{BASE}{made['pk']}/", json={"created_by": 2})
    assert status == 200 and patched["created_by"] == made["created_by"]


async def test_name_is_a_unique_slug(api: API) -> None:
    await _invite(api)
    assert "name" in await _errors(api, "POST", BASE, {"name": "welcome"})
    for bad in ("", "with space", "x" * 51, "slash/es", None, 5):
        assert "name" in await _errors(api, "POST", BASE, {"name": bad})
    assert await _errors(api, "POST", BASE, {"name": "nul\x00"})  # unstorable text, any field
    assert "name" in await _errors(api, "POST", BASE, {})
    other = await _invite(api, name="other")
    assert "name" in await _errors(api, "PATCH", f"{BASE}{other['pk']}/", {"name": "welcome"})


async def test_expires_must_be_iso_8601(api: API) -> None:
    for bad in (
        "tomorrow",
        "2031-13-01T00:00:00Z",
        1_900_000_000,
        True,
        "9999-12-31T23:59:59-05:00",
    ):
        assert "expires" in await _errors(api, "POST", BASE, {"name": "a", "expires": bad}), bad
    naive = await _invite(api, name="naive", expires="2031-01-01T00:00:00")
    assert naive["expires"].startswith("2031-01-01T00:00:00")  # a naive time is UTC


async def test_bad_filters_and_lookups_are_client_errors(
    api: API, admin_headers: dict[str, str]
) -> None:
    for query in (
        "?expires=soon",
        "?expires=9999-12-31T23:59:59-05:00",
        "?created_by__username=%00",
        "?page=0",
        "?page_size=nope",
    ):
        status, body = await api("GET", BASE + query)
        assert 400 <= status < 500 and isinstance(body, dict), (query, status, body)
    for lookup in ("nope", MISSING, "%00"):
        status, body = await api("GET", f"{BASE}{lookup}/")
        assert status == 404 and isinstance(body, dict)
    status, _ = await api("POST", BASE, data="{", headers=admin_headers)
    assert status == 415  # not JSON by its content type
    json_headers = {**admin_headers, "Content-Type": "application/json"}
    assert (await api("POST", BASE, data="{", headers=json_headers))[0] == 400
    assert (await api("POST", BASE, data="[]", headers=json_headers))[0] == 400


async def test_non_superusers_get_403(
    client: Any, api: API, make_user: Any, make_token: Any
) -> None:
    invitation = await _invite(api)
    await make_user("mallory")
    headers = {"Authorization": f"Bearer {await make_token('mallory')}"}
    detail = f"{BASE}{invitation['pk']}/"
    for method, path, body in (
        ("GET", BASE, None),
        ("POST", BASE, {"name": "mine"}),
        ("GET", detail, None),
        ("PATCH", detail, {"single_use": True}),
        ("PUT", detail, {"name": "mine"}),
        ("DELETE", detail, None),
    ):
        status, answer = await api(method, path, json=body, headers=headers)
        assert status == 403 and isinstance(answer, dict), (method, path, status)
        anonymous = await client.request(method, f"/api/v3/{path}", json=body)
        assert anonymous.status in (401, 403), (method, path)
    _, page = await api("GET", BASE)
    assert [r["name"] for r in page["results"]] == ["welcome"]


async def test_creator_is_the_caller_and_the_invitation_goes_with_them(
    api: API, make_group: Any, make_user: Any, make_token: Any
) -> None:
    admins = await make_group("second-admins", is_superuser=True)
    boss = await make_user("boss", groups=[admins["pk"]])
    headers = {"Authorization": f"Bearer {await make_token('boss')}"}
    status, invitation = await api("POST", BASE, json={"name": "by-boss"}, headers=headers)
    assert status == 201 and invitation["created_by"]["pk"] == boss["pk"], invitation
    assert invitation["created_by"]["username"] == "boss"
    status, other = await api("POST", BASE, json={"name": "by-akadmin"})
    assert status == 201
    # authentik's rule (and schema: `created_by` is never null): deleting the creator deletes
    # their invitations, and no other.
    assert (await api("DELETE", f"core/users/{boss['pk']}/"))[0] == 204
    assert (await api("GET", f"{BASE}{invitation['pk']}/"))[0] == 404
    assert (await api("GET", f"{BASE}{other['pk']}/"))[0] == 200
