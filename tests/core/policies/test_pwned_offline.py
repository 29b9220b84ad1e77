"""With outbound calls off (an offline install, and the test suite's default), the breach check
is refused at the API when asked for, off when only defaulted, and a stored one fails: never a
check that silently passes."""

from __future__ import annotations

from typing import Any

from tessera.core import store
from tessera.core.policies import checks, engine, kinds
from tessera.core.store import crud


async def test_asking_for_the_check_is_a_400_naming_the_field(api: Any) -> None:
    body = {"name": "pw", "check_have_i_been_pwned": True}
    status, problem = await api("POST", "policies/password/", json=body)
    assert status == 400, problem
    assert problem == {"check_have_i_been_pwned": [checks.HIBP_OFF]}
    status, made = await api("POST", "policies/password/", json={"name": "pw"})
    assert status == 201 and made["check_have_i_been_pwned"] is False, made
    status, problem = await api(
        "PATCH", f"policies/password/{made['pk']}/", json={"check_have_i_been_pwned": True}
    )
    assert status == 400 and "check_have_i_been_pwned" in problem, problem


async def test_a_stored_check_fails_closed_when_outbound_calls_are_off(
    db: store.Store, api: Any
) -> None:
    status, made = await api("POST", "policies/password/", json={"name": "pw"})
    assert status == 201
    async with db.transaction() as tx:  # stored while the server still made outbound calls
        row = await crud.get(tx, "policies", pk=made["pk"])
        config = {**row["config"], "check_have_i_been_pwned": True, "check_zxcvbn": False}
        await crud.update(tx, "policies", {"pk": made["pk"]}, {"config": config})
    kind = kinds.build("password", config)
    request = engine.Request(user=None, context={"prompt_data": {"password": "x" * 20}}, db=db)
    verdict = await kind.evaluate(request)
    assert not verdict.passing and verdict.messages == [checks.HIBP_OFF]
