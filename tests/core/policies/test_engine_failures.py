"""A policy that fails to evaluate: the binding's failure result stands as set (negate does not
flip it, as in authentik's `PolicyProcess`), the error goes to a `policy_exception` event and never
to the user, and an unexpected exception from a kind is a policy error, not a 500."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tessera.core import store
from tessera.core.identity import util
from tessera.core.policies import engine, kinds
from tessera.core.store import crud

FLOW = "/api/v3/flows/executor/default-authentication-flow/"
SECRET_DETAIL = "hunter2-internal-detail"
RAISES = f'raise ValueError("{SECRET_DETAIL}")'


class Exploding(kinds.Kind):
    """A kind with a bug: it raises what no kind should (as zxcvbn's ValueError once did)."""

    kind = "exploding"
    cacheable = False

    async def evaluate(self, request: engine.Request) -> kinds.Verdict:
        raise ValueError(SECRET_DETAIL)


@pytest.fixture(autouse=True)
def _register() -> Iterator[None]:
    kinds.KINDS["exploding"] = Exploding
    yield
    kinds.KINDS.pop("exploding", None)


async def _bind(
    db: store.Store,
    target: str,
    *,
    kind: str = "expression",
    config: dict[str, Any] | None = None,
    negate: bool = False,
    failure_result: bool = False,
    order: int = 0,
) -> str:
    pk = str(uuid.uuid4())
    async with db.transaction() as tx:
        await crud.insert(
            tx,
            "policies",
            {
                "pk": pk,
                "name": f"p-{pk[:8]}",
                "kind": kind,
                "config": {"expression": RAISES} if config is None else config,
                "created": util.now(),
            },
        )
        await crud.insert(
            tx,
            "policy_bindings",
            {
                "pk": str(uuid.uuid4()),
                "target": target,
                "policy": pk,
                "order": order,
                "negate": negate,
                "failure_result": failure_result,
            },
        )
    return pk


async def _exception_events(db: store.Store) -> list[dict[str, Any]]:
    async with db.read() as tx:
        return await crud.rows(tx, "events", [crud.Filter("action", "eq", "policy_exception")])


@pytest.mark.parametrize("negate", [False, True])
@pytest.mark.parametrize("failure_result", [False, True])
async def test_failure_result_stands_as_set_whatever_negate(
    bootstrapped: store.Store, negate: bool, failure_result: bool
) -> None:
    target = str(uuid.uuid4())
    pk = await _bind(bootstrapped, target, negate=negate, failure_result=failure_result)
    result = await engine.evaluate(bootstrapped, target, "all", engine.Request(user=None))
    assert result.passing is failure_result
    assert result.error is (not failure_result)
    assert result.messages == []  # SECURITY: the error's text is not for the user
    [event] = await _exception_events(bootstrapped)
    assert event["context"]["policy"]["pk"] == pk
    assert SECRET_DETAIL in event["context"]["message"]


async def test_negate_still_flips_a_policy_that_evaluates(bootstrapped: store.Store) -> None:
    target = str(uuid.uuid4())
    await _bind(bootstrapped, target, config={"expression": "return False"}, negate=True)
    result = await engine.evaluate(bootstrapped, target, "all", engine.Request(user=None))
    assert result.passing and not result.error
    assert await _exception_events(bootstrapped) == []


@pytest.mark.parametrize("failure_result", [False, True])
async def test_unexpected_exception_from_a_kind_is_a_policy_error(
    bootstrapped: store.Store, failure_result: bool
) -> None:
    target = str(uuid.uuid4())
    pk = await _bind(
        bootstrapped, target, kind="exploding", config={}, failure_result=failure_result
    )
    result = await engine.evaluate(bootstrapped, target, "all", engine.Request(user=None))
    assert result.passing is failure_result and result.error is (not failure_result)
    assert result.messages == []
    [event] = await _exception_events(bootstrapped)
    assert event["context"]["policy"] == {
        "pk": pk,
        "name": f"p-{pk[:8]}",
        "kind": "exploding",
        "message": f"ValueError: {SECRET_DETAIL}",
    }


async def test_access_denied_page_hides_the_error_text(
    client: Any, bootstrapped: store.Store
) -> None:
    async with bootstrapped.read() as tx:
        flow = await crud.get(tx, "flows", slug="default-authentication-flow")
    await _bind(bootstrapped, flow["pk"])
    body = await (await client.get(FLOW)).json()
    assert body["component"] == "ak-stage-access-denied"
    assert SECRET_DETAIL not in str(body)
    assert body["error_message"] == "A policy could not be evaluated; access denied."


async def test_error_with_passing_failure_result_shows_no_error_text_when_denied(
    client: Any, bootstrapped: store.Store
) -> None:
    """failure_result=true lets the erroring binding pass; a second binding denies in mode
    `all`: the page shows that binding's message, never the first one's error."""
    async with bootstrapped.transaction() as tx:
        flow = await crud.get(tx, "flows", slug="default-authentication-flow")
        await crud.update(tx, "flows", {"pk": flow["pk"]}, {"policy_engine_mode": "all"})
    await _bind(bootstrapped, flow["pk"], negate=True, failure_result=True)
    await _bind(bootstrapped, flow["pk"], kind="dummy", config={"result": False}, order=1)
    body = await (await client.get(FLOW)).json()
    assert body["component"] == "ak-stage-access-denied"
    assert SECRET_DETAIL not in str(body)
    assert body["error_message"] == "Dummy policy failed."


async def test_flow_passes_with_negate_and_passing_failure_result(
    client: Any, bootstrapped: store.Store
) -> None:
    async with bootstrapped.read() as tx:
        flow = await crud.get(tx, "flows", slug="default-authentication-flow")
    await _bind(bootstrapped, flow["pk"], negate=True, failure_result=True)
    body = await (await client.get(FLOW)).json()
    assert body["component"] == "ak-stage-identification", body
