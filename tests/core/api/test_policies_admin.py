"""`/api/v3/policies/<kind>/` (one resource per registered kind), `/api/v3/policies/all/` and its
`test` action (one policy, one user, authentik's result shape)."""

from __future__ import annotations

from typing import Any

from tessera.core import store
from tessera.core.identity import util
from tessera.core.policies import kinds
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
    assert listed["bound_to"] == 2 and listed["kind"] == "dummy" and "result" not in listed
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
    assert status == 200 and listed["kind"] == "quantum"
    user = await _akadmin(api)
    status, result = await api("POST", f"policies/all/{row['pk']}/test/", json={"user": user})
    assert status == 200 and result["passing"] is False
    assert result["messages"] == ["unknown policy kind 'quantum'"]
