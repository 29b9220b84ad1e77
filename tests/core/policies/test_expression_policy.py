"""Expression policies bound to flows: authentik's examples, and escapes failing closed."""

from __future__ import annotations

import uuid
from typing import Any

from tessera.core.identity import util
from tessera.core.policies import engine, kinds
from tessera.core.store import crud

FLOW = "/api/v3/flows/executor/default-authentication-flow/"


async def _bind_expression(db: Any, source: str) -> None:
    async with db.transaction() as tx:
        flow = await crud.get(tx, "flows", slug="default-authentication-flow")
        policy = await crud.insert(
            tx,
            "policies",
            {
                "pk": str(uuid.uuid4()),
                "name": f"expr-{uuid.uuid4().hex[:6]}",
                "kind": "expression",
                "config": {"expression": source},
                "created": util.now(),
            },
        )
        await crud.insert(
            tx,
            "policy_bindings",
            {"pk": str(uuid.uuid4()), "target": flow["pk"], "policy": policy["pk"], "order": 0},
        )


async def test_group_membership_examples(
    api: Any, make_group: Any, make_user: Any, bootstrapped: Any
) -> None:
    staff = await make_group("Staff")
    parent = await make_group("Admins")
    child = await make_group("Ops", parents=[staff["pk"], parent["pk"]])  # two parents
    user = await make_user("opsie", groups=[child["pk"]])
    async with bootstrapped.read() as tx:
        row = await crud.get(tx, "users", pk=user["pk"])
    for source in (
        'return ak_is_group_member(request.user, name="Admins")',
        'return ak_is_group_member(request.user, name="Staff")',
        'return user.groups.filter(name="Ops").exists()',
    ):
        policy_pk = str(uuid.uuid4())
        async with bootstrapped.transaction() as tx:
            await crud.insert(
                tx,
                "policies",
                {
                    "pk": policy_pk,
                    "name": policy_pk[:8],
                    "kind": "expression",
                    "config": {"expression": source},
                    "created": util.now(),
                },
            )
            await crud.insert(
                tx,
                "policy_bindings",
                {"pk": str(uuid.uuid4()), "target": policy_pk, "policy": policy_pk, "order": 0},
            )
        result = await engine.evaluate(bootstrapped, policy_pk, "all", engine.Request(user=row))
        assert result.passing, (source, result)


async def test_time_and_context_examples() -> None:
    office = "import datetime\nnow = datetime.datetime.now()\nreturn 0 <= now.hour < 24"
    verdict = await kinds.build("expression", {"expression": office}).evaluate(
        engine.Request(user=None)
    )
    assert verdict.passing
    blocked = 'return request.context.get("ip") not in ["10.0.0.1"]'
    verdict = await kinds.build("expression", {"expression": blocked}).evaluate(
        engine.Request(user=None, context={"ip": "10.0.0.1"})
    )
    assert not verdict.passing
    message = 'ak_message("not today")\nreturn False'
    verdict = await kinds.build("expression", {"expression": message}).evaluate(
        engine.Request(user=None)
    )
    assert verdict.messages == ["not today"]


async def test_escape_attempt_in_a_bound_policy_denies_the_flow(
    client: Any, bootstrapped: Any
) -> None:
    async with bootstrapped.transaction() as tx:
        flow = await crud.get(tx, "flows", slug="default-authentication-flow")
        pk = str(uuid.uuid4())
        # Stored directly, past the API's compile check, as a corrupted or old row would be.
        await crud.insert(
            tx,
            "policies",
            {
                "pk": pk,
                "name": "escape",
                "kind": "expression",
                "config": {"expression": "return ().__class__.__mro__[1].__subclasses__()"},
                "created": util.now(),
            },
        )
        await crud.insert(
            tx,
            "policy_bindings",
            {"pk": str(uuid.uuid4()), "target": flow["pk"], "policy": pk, "order": 0},
        )
    body = await (await client.get(FLOW)).json()
    assert body["component"] == "ak-stage-access-denied"


async def test_runaway_expression_is_stopped_and_denies(client: Any, bootstrapped: Any) -> None:
    await _bind_expression(bootstrapped, "while True:\n    pass")
    body = await (await client.get(FLOW)).json()
    assert body["component"] == "ak-stage-access-denied"


async def test_api_refuses_an_expression_that_does_not_compile(api: Any) -> None:
    status, body = await api(
        "POST", "policies/expression/", json={"name": "bad", "expression": "import os"}
    )
    assert status == 400 and "expression" in body
    status, body = await api(
        "POST", "policies/expression/", json={"name": "ok", "expression": "return True"}
    )
    assert status == 201, body
