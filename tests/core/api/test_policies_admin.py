"""`/api/v3/policies/<kind>/` (one resource per registered kind), `/api/v3/policies/all/` and its
`test` action (one policy, one user, authentik's result shape)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest

from tessera.core import store
from tessera.core.api import state
from tessera.core.identity import util
from tessera.core.policies import engine, kinds, reputation
from tessera.core.store import crud

API = Any
MISSING = "00000000-0000-4000-8000-000000000000"


async def _akadmin(api: API) -> int:
    _, page = await api("GET", "core/users/?username=akadmin")
    return int(page["results"][0]["pk"])


async def test_dummy_policy_crud(api: API) -> None:
    status, policy = await api("POST", "policies/dummy/", json={"name": "yes", "result": True})
    assert status == 201, policy
    assert policy["execution_logging"] is False and policy["bound_to"] == 0
    assert policy["wait_min"] == 0 and policy["wait_max"] == 0 and policy["result"] is True
    assert policy["component"] == "ak-policy-dummy-form"
    assert policy["meta_model_name"] == "authentik_policies_dummy.dummypolicy"
    assert policy["verbose_name"] == "Dummy Policy"
    status, patched = await api(
        "PATCH", f"policies/dummy/{policy['pk']}/", json={"execution_logging": True}
    )
    assert status == 200 and patched["execution_logging"] is True and patched["result"] is True
    status, put = await api("PUT", f"policies/dummy/{policy['pk']}/", json={"name": "reset"})
    assert status == 200 and put["result"] is False and put["execution_logging"] is False
    status, page = await api("GET", "policies/dummy/?search=RES")
    assert status == 200 and [p["pk"] for p in page["results"]] == [policy["pk"]]
    assert (await api("DELETE", f"policies/dummy/{policy['pk']}/"))[0] == 204
    assert (await api("GET", f"policies/all/{policy['pk']}/"))[0] == 404


async def test_every_registered_kind_is_in_the_schema(client: Any) -> None:
    document = await (await client.get("/api/v3/schema/")).json()
    for kind in kinds.KINDS:
        assert f"/policies/{kind}/" in document["paths"], kind
        assert f"/policies/{kind}/{{pk}}/" in document["paths"], kind
    assert "/policies/all/{pk}/test/" in document["paths"]
    request = document["components"]["schemas"]["DummyPolicyRequest"]
    assert request["additionalProperties"] is False
    assert set(request["properties"]) >= {"name", "execution_logging", "result", "wait_max"}


async def test_bad_policy_input(api: API) -> None:
    await api("POST", "policies/dummy/", json={"name": "taken"})
    for body, field in (
        ({"name": "x", "color": "red"}, "color"),
        ({"name": "x", "wait_max": 61}, "wait_max"),
        ({"name": "x", "result": "perhaps"}, "result"),
        ({"result": True}, "name"),
        ({"name": "taken"}, "name"),
    ):
        status, problem = await api("POST", "policies/dummy/", json=body)
        assert status == 400 and field in problem, (body, problem)


async def test_all_policies_counts_bindings(api: API) -> None:
    _, policy = await api("POST", "policies/dummy/", json={"name": "counted"})
    _, flow = await api("GET", "flows/instances/default-invalidation-flow/")
    for order in (1, 2):
        body = {"target": flow["pk"], "policy": policy["pk"], "order": order}
        assert (await api("POST", "policies/bindings/", json=body))[0] == 201
    status, page = await api("GET", "policies/all/?name=counted")
    assert status == 200
    (listed,) = page["results"]
    assert listed["bound_to"] == 2 and "result" not in listed and "kind" not in listed
    assert listed["meta_model_name"] == "authentik_policies_dummy.dummypolicy"
    assert (await api("POST", "policies/all/", json={"name": "x"}))[0] == 405


async def test_test_action_returns_the_verdict(api: API) -> None:
    user = await _akadmin(api)
    _, yes = await api("POST", "policies/dummy/", json={"name": "yes", "result": True})
    _, no = await api("POST", "policies/dummy/", json={"name": "no"})
    status, result = await api(
        "POST", f"policies/all/{yes['pk']}/test/", json={"user": user, "context": {"a": 1}}
    )
    assert status == 200 and result == {"passing": True, "messages": [], "log_messages": []}
    status, result = await api("POST", f"policies/all/{no['pk']}/test/", json={"user": user})
    assert status == 200
    assert result == {"passing": False, "messages": ["Dummy policy failed."], "log_messages": []}


async def test_test_action_bad_input(api: API) -> None:
    _, policy = await api("POST", "policies/dummy/", json={"name": "p"})
    status, problem = await api("POST", f"policies/all/{policy['pk']}/test/", json={"user": 99999})
    assert status == 400 and "user" in problem
    status, problem = await api("POST", f"policies/all/{policy['pk']}/test/", json={})
    assert status == 400 and "user" in problem
    user = await _akadmin(api)
    body = {"user": user, "extra": 1}
    status, problem = await api("POST", f"policies/all/{policy['pk']}/test/", json=body)
    assert status == 400 and "extra" in problem
    status, _ = await api("POST", f"policies/all/{MISSING}/test/", json={"user": user})
    assert status == 404


async def test_a_policy_that_cannot_evaluate_fails_the_test(api: API, db: store.Store) -> None:
    async with db.transaction() as tx:
        row = await crud.insert(
            tx,
            "policies",
            {
                "pk": util.new_uuid(),
                "name": "from-the-future",
                "kind": "quantum",
                "config": {},
                "created": util.now(),
            },
        )
    status, listed = await api("GET", f"policies/all/{row['pk']}/")
    assert status == 200 and listed["component"] == "ak-policy-quantum-form"
    user = await _akadmin(api)
    status, result = await api("POST", f"policies/all/{row['pk']}/test/", json={"user": user})
    assert status == 200 and result["passing"] is False
    assert result["messages"] == ["unknown policy kind 'quantum'"]


async def _test(api: API, policy: dict[str, Any], user: int, **body: Any) -> dict[str, Any]:
    status, result = await api(
        "POST", f"policies/all/{policy['pk']}/test/", json={"user": user, **body}
    )
    assert status == 200, result
    return dict(result)


async def _expression(api: API, source: str) -> dict[str, Any]:
    body = {"name": f"e-{uuid.uuid4().hex[:8]}", "expression": source}
    status, policy = await api("POST", "policies/expression/", json=body)
    assert status == 201, policy
    return dict(policy)


async def test_test_action_sees_the_users_groups(api: API, make_group: Any, make_user: Any) -> None:
    admin = await _akadmin(api)
    for source in (
        'return ak_is_group_member(request.user, name="authentik Admins")',
        'return user.groups.filter(name="authentik Admins").exists()',
        "return user.is_superuser",
        "return request.user.is_superuser",
    ):
        result = await _test(api, await _expression(api, source), admin)
        assert result["passing"] is True, (source, result)
    parent = await make_group("Parents")
    child = await make_group("Children", parents=[parent["pk"]])
    member = await make_user("kid", groups=[child["pk"]])
    inherited = await _expression(api, 'return ak_is_group_member(user, name="Parents")')
    assert (await _test(api, inherited, member["pk"]))["passing"] is True
    direct_only = await _expression(api, 'return user.groups.filter(name="Parents").exists()')
    assert (await _test(api, direct_only, member["pk"]))["passing"] is False
    not_admin = await _expression(api, "return user.is_superuser")
    assert (await _test(api, not_admin, member["pk"]))["passing"] is False


async def test_test_action_gives_reputation_the_cache(client: Any, api: API) -> None:
    admin = await _akadmin(api)
    body = {"name": "rep", "check_ip": False, "check_username": True, "threshold": -5}
    status, policy = await api("POST", "policies/reputation/", json=body)
    assert status == 201, policy
    result = await _test(api, policy, admin)
    assert result == {"passing": True, "messages": [], "log_messages": []}
    for _ in range(6):
        await reputation.record(client.app[state.CACHE], "akadmin", "", -1)
    result = await _test(api, policy, admin)
    assert result["passing"] is False
    assert result["messages"] == ["Too many failed logins; try again later."]


async def test_test_action_returns_what_the_expression_logged(api: API) -> None:
    admin = await _akadmin(api)
    source = 'ak_logger.info("hello", who=user.username)\nprint("from", "print")\nreturn True'
    policy = await _expression(api, source)
    result = await _test(api, policy, admin)
    assert result["passing"] is True and result["messages"] == []
    first, second = result["log_messages"]
    assert set(first) == {"timestamp", "log_level", "logger", "event", "attributes"}
    assert first["log_level"] == "info" and first["logger"] == policy["name"]
    assert first["event"] == "hello" and first["attributes"] == {"who": "akadmin"}
    assert second["event"] == "from print" and second["attributes"] == {}
    assert dt.datetime.fromisoformat(first["timestamp"]).tzinfo is not None
    # The log survives a failing verdict and an error alike.
    failing = await _expression(api, 'ak_logger.warning("about to deny")\nreturn False')
    result = await _test(api, failing, admin)
    assert result["passing"] is False
    assert [(e["log_level"], e["event"]) for e in result["log_messages"]] == [
        ("warning", "about to deny")
    ]


class Exploding(kinds.Kind):
    """A kind with a bug: it raises what no kind should."""

    kind = "exploding"
    cacheable = False

    async def evaluate(self, request: engine.Request) -> kinds.Verdict:
        raise ValueError("unexpected")


async def test_test_action_turns_an_unexpected_exception_into_a_failure(
    api: API, db: store.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(kinds.KINDS, "exploding", Exploding)
    async with db.transaction() as tx:
        row = await crud.insert(
            tx,
            "policies",
            {
                "pk": util.new_uuid(),
                "name": "buggy",
                "kind": "exploding",
                "config": {},
                "created": util.now(),
            },
        )
    result = await _test(api, row, await _akadmin(api))
    assert result == {"passing": False, "messages": ["ValueError: unexpected"], "log_messages": []}
    async with db.read() as tx:
        [event] = await crud.rows(tx, "events", [crud.Filter("action", "eq", "policy_exception")])
    assert event["context"]["policy"]["pk"] == row["pk"]


async def test_test_action_shows_the_expression_error_to_the_admin(api: API) -> None:
    policy = await _expression(api, 'raise ValueError("bad input")')
    result = await _test(api, policy, await _akadmin(api))
    assert result["passing"] is False
    [message] = result["messages"]
    assert "bad input" in message
