"""The prompt stage's validation policies: a password policy bound to the enrollment prompt
refuses a weak password with its own message, and a strong one passes."""

from __future__ import annotations

import uuid
from typing import Any

from flowkit import log_in_as, make_flow

from tessera.core.store import crud

ENROLL = "/api/v3/flows/executor/default-enrollment-flow/"
FORM = {
    "username": "newbie",
    "name": "New Bie",
    "email": "newbie@example.com",
}


async def _enable_with_policy(db: Any, api: Any) -> str:
    status, policy = await api(
        "POST",
        "policies/password/",
        json={"name": "strong-passwords", "length_min": 12, "check_zxcvbn": False},
    )
    assert status == 201, policy
    async with db.transaction() as tx:
        disabled = await crud.get(tx, "policies", name="default-enrollment-flow-disabled")
        await crud.delete(tx, "policy_bindings", policy=disabled["pk"])
    status, page = await api("GET", "stages/prompt/stages/?name=default-enrollment-prompt")
    (stage,) = page["results"]
    status, patched = await api(
        "PATCH",
        f"stages/prompt/stages/{stage['pk']}/",
        json={"validation_policies": [policy["pk"]]},
    )
    assert status == 200, patched
    assert patched["validation_policies"] == [policy["pk"]]
    return str(policy["pk"])


async def test_a_weak_password_is_refused_by_the_bound_policy(
    client: Any, bootstrapped: Any, api: Any
) -> None:
    await _enable_with_policy(bootstrapped, api)
    await client.get(ENROLL)
    weak = {**FORM, "password": "short1", "password_repeat": "short1"}
    body = await (await client.post(ENROLL, json=weak)).json()
    assert body["component"] == "ak-stage-prompt"
    (error,) = body["response_errors"]["non_field_errors"]
    assert "12" in error["string"]  # the policy's own message
    _, users = await api("GET", "core/users/?username=newbie")
    assert users["pagination"]["count"] == 0  # nothing written
    strong = {**FORM, "password": "a-long-enough-one", "password_repeat": "a-long-enough-one"}
    body = await (await client.post(ENROLL, json=strong)).json()
    assert body["component"] == "xak-flow-redirect"
    _, users = await api("GET", "core/users/?username=newbie")
    assert users["pagination"]["count"] == 1


async def test_a_missing_validation_policy_refuses(
    client: Any, bootstrapped: Any, api: Any
) -> None:
    pk = await _enable_with_policy(bootstrapped, api)
    async with bootstrapped.transaction() as tx:
        await crud.delete(tx, "policy_bindings", policy=pk)
        await crud.delete(tx, "policies", pk=pk)
    await client.get(ENROLL)
    strong = {**FORM, "password": "a-long-enough-one", "password_repeat": "a-long-enough-one"}
    body = await (await client.post(ENROLL, json=strong)).json()
    assert body["component"] == "ak-stage-prompt"
    assert "misconfigured" in body["response_errors"]["non_field_errors"][0]["string"]


async def test_validation_policies_must_be_existing_policies_pks(api: Any) -> None:
    status, problem = await api(
        "POST",
        "stages/prompt/stages/",
        json={"name": "p", "fields": [], "validation_policies": ["not-a-uuid"]},
    )
    assert status == 400 and "validation_policies.0" in problem, problem
    status, problem = await api(
        "POST",
        "stages/prompt/stages/",
        json={"name": "p2", "fields": [], "validation_policies": [str(uuid.uuid4())]},
    )
    assert status == 400 and "does not exist" in problem["validation_policies"][0], problem
    _, policy = await api("POST", "policies/dummy/", json={"name": "passes"})
    status, _ = await api(
        "POST",
        "stages/prompt/stages/",
        json={"name": "p3", "fields": [], "validation_policies": [policy["pk"]]},
    )
    assert status == 201


SETTINGS = "/api/v3/flows/executor/default-user-settings-flow/"
MEMBERS_ONLY = (
    'ak_message("editors only")\n'
    'return ak_is_group_member(request.user, name="Editors")'
    ' and "Ops" in [g.name for g in request.user.ak_groups.all()]'
)


async def _settings_with_group_policy(api: Any) -> None:
    status, policy = await api(
        "POST", "policies/expression/", json={"name": "editors-only", "expression": MEMBERS_ONLY}
    )
    assert status == 201, policy
    _, page = await api("GET", "stages/prompt/stages/?search=default-user-settings-prompt")
    (stage,) = page["results"]
    status, _ = await api(
        "PATCH",
        f"stages/prompt/stages/{stage['pk']}/",
        json={"validation_policies": [policy["pk"]]},
    )
    assert status == 200


async def _submit_settings(client: Any, username: str) -> dict[str, Any]:
    csrf = next(c.value for c in client.session.cookie_jar if c.key == "authentik_csrf")
    await client.get(SETTINGS)
    form = {"username": username, "name": "Renamed", "email": f"{username}@example.com"}
    response = await client.post(SETTINGS, json=form, headers={"X-authentik-CSRF": csrf})
    body: dict[str, Any] = await response.json()
    return body


async def test_validation_policies_see_the_users_groups_and_their_parents(
    client: Any, bootstrapped: Any, api: Any, make_group: Any, make_user: Any
) -> None:
    editors = await make_group("Editors")
    ops = await make_group("Ops", parents=[editors["pk"]])
    await make_user("member", groups=[ops["pk"]])
    await _settings_with_group_policy(api)
    await log_in_as(client, bootstrapped, "member")
    body = await _submit_settings(client, "member")
    assert body["component"] == "xak-flow-redirect", body
    _, users = await api("GET", "core/users/?username=member")
    assert users["results"][0]["name"] == "Renamed"


async def test_validation_policies_refuse_a_user_outside_the_group(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    await make_user("outsider")
    await _settings_with_group_policy(api)
    await log_in_as(client, bootstrapped, "outsider")
    body = await _submit_settings(client, "outsider")
    assert body["component"] == "ak-stage-prompt"
    assert body["response_errors"]["non_field_errors"][0]["string"] == "editors only"
    _, users = await api("GET", "core/users/?username=outsider")
    assert users["results"][0]["name"] != "Renamed"


async def test_number_fields_take_finite_numbers_only(
    client: Any, bootstrapped: Any, api: Any
) -> None:
    fields = [
        {"field_key": "username", "type": "username"},
        {"field_key": "attributes.size", "type": "number", "order": 1},
    ]
    await make_flow(
        bootstrapped,
        "numbers",
        [("prompt", {"fields": fields}), ("user_write", {}), ("user_login", {})],
        designation="enrollment",
    )
    path = "/api/v3/flows/executor/numbers/"
    for value in ("1.5e999", "-inf", "nan", "12abc", "0x10"):
        client.session.cookie_jar.clear()
        await client.get(path)
        body = await (
            await client.post(path, json={"username": "n", "attributes.size": value})
        ).json()
        assert body["component"] == "ak-stage-prompt", value
        assert body["response_errors"]["attributes.size"][0]["string"] == "Enter a number."
    for name, value, stored in (("int", "42", 42), ("exp", "2e3", 2000.0), ("dec", "-0.5", -0.5)):
        client.session.cookie_jar.clear()
        await client.get(path)
        body = await (
            await client.post(path, json={"username": name, "attributes.size": value})
        ).json()
        assert body["component"] == "xak-flow-redirect", body
        _, found = await api("GET", f"core/users/?username={name}")
        assert found["results"][0]["attributes"] == {"size": stored}
