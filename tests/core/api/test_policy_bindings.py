"""`/api/v3/policies/bindings/`: one subject (policy, group or user) bound to a flow, a flow-stage
binding or an application; references must exist; bindings change what the executor does."""

from __future__ import annotations

from typing import Any

API = Any
MISSING = "00000000-0000-4000-8000-000000000000"
EXECUTOR = "/api/v3/flows/executor/default-authentication-flow/"


async def _flow(api: API, slug: str = "default-authentication-flow") -> dict[str, Any]:
    status, flow = await api("GET", f"flows/instances/{slug}/")
    assert status == 200
    return dict(flow)


async def _policy(api: API, name: str, result: bool) -> dict[str, Any]:
    status, policy = await api("POST", "policies/dummy/", json={"name": name, "result": result})
    assert status == 201
    return dict(policy)


async def _bind(api: API, **body: Any) -> dict[str, Any]:
    status, binding = await api("POST", "policies/bindings/", json={"order": 0, **body})
    assert status == 201, binding
    return dict(binding)


async def test_binding_crud_with_each_subject(api: API, make_user: Any, make_group: Any) -> None:
    flow = await _flow(api)
    policy = await _policy(api, "p", True)
    group = await make_group("staff")
    user = await make_user("alice", email="alice@example.com")
    by_policy = await _bind(api, target=flow["pk"], policy=policy["pk"])
    assert by_policy["enabled"] is True and by_policy["negate"] is False
    assert by_policy["timeout"] == 30 and by_policy["failure_result"] is False
    assert by_policy["policy_obj"]["name"] == "p" and by_policy["policy_obj"]["bound_to"] == 1
    assert by_policy["group_obj"] is None and by_policy["user_obj"] is None
    by_group = await _bind(api, target=flow["pk"], group=group["pk"], order=1)
    assert by_group["group_obj"]["name"] == "staff" and by_group["policy"] is None
    by_user = await _bind(api, target=flow["pk"], user=user["pk"], order=2, negate=True)
    assert by_user["user_obj"]["username"] == "alice" and by_user["user_obj"]["uid"] == user["uid"]
    status, page = await api("GET", f"policies/bindings/?target={flow['pk']}&ordering=-order")
    assert status == 200
    assert [b["pk"] for b in page["results"]] == [by_user["pk"], by_group["pk"], by_policy["pk"]]
    status, page = await api("GET", f"policies/bindings/?user={user['pk']}")
    assert [b["pk"] for b in page["results"]] == [by_user["pk"]]
    status, patched = await api(
        "PATCH", f"policies/bindings/{by_group['pk']}/", json={"enabled": False, "timeout": 5}
    )
    assert status == 200 and patched["enabled"] is False and patched["timeout"] == 5
    status, page = await api("GET", "policies/bindings/?enabled=false")
    assert [b["pk"] for b in page["results"]] == [by_group["pk"]]
    assert (await api("DELETE", f"policies/bindings/{by_group['pk']}/"))[0] == 204
    _, flow = await api("GET", "flows/instances/default-authentication-flow/")
    assert flow["policies"] == [policy["pk"]]


async def test_targets_may_be_applications_and_stage_bindings(api: API, make_group: Any) -> None:
    group = await make_group("staff")
    _, app = await api("POST", "core/applications/", json={"name": "App", "slug": "app"})
    await _bind(api, target=app["pk"], group=group["pk"])
    _, page = await api("GET", "flows/bindings/?order=10")
    await _bind(api, target=page["results"][0]["pk"], group=group["pk"])


async def test_subjects_must_be_exactly_one(api: API, make_group: Any) -> None:
    flow = await _flow(api)
    policy = await _policy(api, "p", True)
    group = await make_group("staff")
    body = {"target": flow["pk"], "order": 0, "policy": policy["pk"], "group": group["pk"]}
    status, problem = await api("POST", "policies/bindings/", json=body)
    assert status == 400
    assert problem == {"non_field_errors": ["Only one of 'policy', 'group' or 'user' can be set."]}
    status, problem = await api(
        "POST", "policies/bindings/", json={"target": flow["pk"], "order": 0}
    )
    assert status == 400
    assert problem == {"non_field_errors": ["One of 'policy', 'group' or 'user' must be set."]}
    binding = await _bind(api, target=flow["pk"], policy=policy["pk"])
    status, problem = await api(
        "PATCH", f"policies/bindings/{binding['pk']}/", json={"group": group["pk"]}
    )
    assert status == 400 and "non_field_errors" in problem
    status, moved = await api(
        "PATCH", f"policies/bindings/{binding['pk']}/", json={"group": group["pk"], "policy": None}
    )
    assert status == 200 and moved["group"] == group["pk"] and moved["policy_obj"] is None
    # authentik's client sends the subjects a PATCH leaves alone as null: the subject stays.
    nulls = {"policy": None, "group": None, "user": None, "negate": True}
    status, kept = await api("PATCH", f"policies/bindings/{binding['pk']}/", json=nulls)
    assert status == 200 and kept["group"] == group["pk"] and kept["negate"] is True


async def test_bindings_never_expire_and_name_groups_as_partial_groups(
    api: API, make_group: Any
) -> None:
    group = await make_group("readers", attributes={"floor": 2})
    binding = await _bind(api, target=(await _flow(api))["pk"], group=group["pk"])
    assert binding["expires"] is None and binding["expiring"] is False
    assert binding["group_obj"] == {
        "pk": group["pk"],
        "num_pk": group["num_pk"],
        "name": "readers",
        "is_superuser": False,
        "attributes": {"floor": 2},
    }
    # Read-only in authentik's schema too: sent back, they are ignored.
    body = {"target": binding["target"], "group": group["pk"], "order": 1, "expiring": True}
    status, other = await api("POST", "policies/bindings/", json=body)
    assert status == 201 and other["expiring"] is False and other["expires"] is None


async def test_dangling_references_are_400_naming_the_field(api: API) -> None:
    flow = await _flow(api)
    policy = await _policy(api, "p", True)
    for body, field in (
        ({"target": MISSING, "policy": policy["pk"]}, "target"),
        ({"target": flow["pk"], "policy": MISSING}, "policy"),
        ({"target": flow["pk"], "group": MISSING}, "group"),
        ({"target": flow["pk"], "user": 987654}, "user"),
    ):
        status, problem = await api("POST", "policies/bindings/", json={"order": 0, **body})
        assert status == 400 and list(problem) == [field], (body, problem)


async def test_bad_binding_input(api: API) -> None:
    flow = await _flow(api)
    policy = await _policy(api, "p", True)
    body = {"target": flow["pk"], "policy": policy["pk"], "order": 0}
    for bad, field in (
        ({"timeout": 3601}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"order": -(2**31) - 1}, "order"),
        ({"target": "flow"}, "target"),
        ({"weight": 3}, "weight"),
    ):
        status, problem = await api("POST", "policies/bindings/", json={**body, **bad})
        assert status == 400 and field in problem, (bad, problem)
    await _bind(api, **body)
    status, problem = await api("POST", "policies/bindings/", json=body)
    assert status == 400
    assert problem == {
        "non_field_errors": ["The fields policy, target, order must make a unique set."]
    }
    status, problem = await api("GET", "policies/bindings/?timeout=4294967296")
    assert status == 400 and "timeout" in problem


async def test_a_failing_policy_bound_to_the_flow_denies_it(client: Any, api: API) -> None:
    flow = await _flow(api)
    binding = await _bind(api, target=flow["pk"], policy=(await _policy(api, "no", False))["pk"])
    body = await (await client.get(EXECUTOR)).json()
    assert body["component"] == "ak-stage-access-denied"
    assert body["error_message"] == "Dummy policy failed."
    status, _ = await api("PATCH", f"policies/bindings/{binding['pk']}/", json={"negate": True})
    assert status == 200
    client.session.cookie_jar.clear()
    body = await (await client.get(EXECUTOR)).json()
    assert body["component"] == "ak-stage-identification"


async def test_a_policy_on_a_stage_binding_skips_that_stage(client: Any, api: API) -> None:
    flow = await _flow(api)
    _, deny = await api("POST", "stages/deny/", json={"name": "closed"})
    status, stage_binding = await api(
        "POST", "flows/bindings/", json={"target": flow["pk"], "stage": deny["pk"], "order": 5}
    )
    assert status == 201
    body = await (await client.get(EXECUTOR)).json()
    assert body["component"] == "ak-stage-access-denied"
    await _bind(api, target=stage_binding["pk"], policy=(await _policy(api, "no", False))["pk"])
    client.session.cookie_jar.clear()
    body = await (await client.get(EXECUTOR)).json()
    assert body["component"] == "ak-stage-identification"
