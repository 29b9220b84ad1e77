"""A stage that fails at run time: `ak-stage-flow-error`, a `system_exception` event, a fresh start.

The failing stage is a test-only kind registered for these tests (as the policy tests register
theirs); the executor, the store, the cache and the pages are the real ones.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import pytest
from flowkit import make_flow

from tessera.core import stages, store
from tessera.core.flows import executor
from tessera.core.stages import base

CANARY = "canary-Secret-7f3a9c"
PATH = "/api/v3/flows/executor/crashing/"
PAGE = "/if/flow/crashing/"


class CrashConfig(base.StageConfig):
    where: Literal["challenge", "on_valid"] = "on_valid"
    outage: bool = False


class CrashResponse(base.ChallengeResponse):
    password: str = ""


class Crash(base.Stage):
    """Fails where its settings say: a bug, or (`outage`) the store going away."""

    kind = "test_crash"
    # One of authentik's challenges (every challenge the executor sends is): a page that asks
    # for nothing but a click, as the email stage's.
    component = "ak-stage-email"
    Config = CrashConfig
    Response = CrashResponse

    async def challenge(self, run: base.Run) -> dict[str, Any]:
        assert isinstance(self.config, CrashConfig)
        if self.config.where == "challenge":
            raise KeyError("missing-setting")
        return {}

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        assert isinstance(response, CrashResponse) and isinstance(self.config, CrashConfig)
        if self.config.outage:
            raise store.StoreUnavailable("db.internal:5432: password authentication failed")
        raise ValueError(f"cannot use {response.password} here")


@pytest.fixture(autouse=True)
def _register(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(stages.KINDS, Crash.kind, Crash)


async def _flow(db: Any, **crash: Any) -> None:
    await make_flow(db, "crashing", [("dummy", {}), ("test_crash", crash)])


async def _events(api: Any) -> list[dict[str, Any]]:
    status, body = await api("GET", "events/events/?action=system_exception")
    assert status == 200
    return list(body["results"])


async def test_a_failing_stage_answers_flow_error_and_records_a_system_exception(
    client: Any, bootstrapped: Any, api: Any
) -> None:
    await _flow(bootstrapped)
    assert (await (await client.get(PATH)).json())["component"] == "ak-stage-dummy"
    challenge = await (await client.post(PATH, json={})).json()
    assert challenge["component"] == "ak-stage-email"
    response = await client.post(PATH, json={"password": CANARY})
    assert response.status == 200
    body = await response.json()
    assert body["component"] == "ak-stage-flow-error"
    assert body["error"] == executor.FLOW_ERROR_MESSAGE
    assert re.fullmatch(r"[0-9a-f]{32}", body["request_id"])
    assert body["flow_info"]["title"] == "crashing"
    assert "traceback" not in body and "ValueError" not in str(body) and CANARY not in str(body)
    (event,) = await _events(api)
    context = event["context"]
    assert context["message"] == "System exception during flow execution."
    assert context["flow"] == "crashing" and context["request_id"] == body["request_id"]
    assert context["stage"]["kind"] == "test_crash"
    assert context["stage"]["name"] == "crashing-1-test_crash"
    assert context["exception"]["type"] == "ValueError"
    assert context["exception"]["message"].startswith("cannot use ****")
    assert event["app"] == "tessera.core.flows"


async def test_the_posted_secret_never_reaches_the_event(
    client: Any, bootstrapped: Any, api: Any
) -> None:
    await _flow(bootstrapped)
    await client.get(PATH)
    await client.post(PATH, json={})
    await client.post(PATH, json={"password": CANARY})
    events = await _events(api)
    assert len(events) == 1
    assert CANARY not in str(events) and "Traceback" not in str(events)


async def test_the_flow_state_is_dropped_so_the_next_request_starts_again(
    client: Any, bootstrapped: Any
) -> None:
    await _flow(bootstrapped)
    await client.get(PATH)
    await client.post(PATH, json={})
    await client.post(PATH, json={"password": CANARY})
    again = await (await client.get(PATH)).json()
    assert again["component"] == "ak-stage-dummy"  # the first stage, not the broken one
    # A retried answer for the broken stage is not applied to anything: the flow starts over.
    retried = await (await client.post(PATH, json={"password": CANARY})).json()
    assert retried["component"] == "ak-stage-email"


async def test_a_stage_failing_while_rendering_its_challenge(
    client: Any, bootstrapped: Any, api: Any
) -> None:
    await _flow(bootstrapped, where="challenge")
    await client.get(PATH)
    response = await client.post(PATH, json={})
    assert response.status == 200
    body = await response.json()
    assert body["component"] == "ak-stage-flow-error"
    assert "missing-setting" not in str(body)
    (event,) = await _events(api)
    assert event["context"]["exception"] == {"type": "KeyError", "message": "'missing-setting'"}


async def test_a_store_outage_inside_a_stage_is_still_a_503(
    client: Any, bootstrapped: Any, api: Any
) -> None:
    await _flow(bootstrapped, outage=True)
    await client.get(PATH)
    await client.post(PATH, json={})
    response = await client.post(PATH, json={"password": CANARY})
    assert response.status == 503
    body = await response.json()
    assert body == {"detail": "The store is unavailable; try again shortly."}
    assert await _events(api) == []


async def test_the_flow_page_shows_the_error_and_a_start_again_link(
    client: Any, bootstrapped: Any, api: Any
) -> None:
    await _flow(bootstrapped, where="challenge")
    page = await client.get(PAGE)
    html = await page.text()
    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token is not None and "ak-stage-dummy" in html
    failed = await client.post(PAGE, data={"csrf_token": token[1]}, allow_redirects=False)
    html = await failed.text()
    assert failed.status == 200
    assert executor.FLOW_ERROR_MESSAGE.split(";")[0] in html.replace("&#39;", "'")
    assert 'href="/if/flow/crashing/?restart=1"' in html
    (event,) = await _events(api)
    assert event["context"]["request_id"] in html
    assert "missing-setting" not in html and "KeyError" not in html
    restarted = await client.get("/if/flow/crashing/?restart=1")
    assert "ak-stage-dummy" in await restarted.text()


class Misshapen(base.Stage):
    """A stage whose challenge is not authentik's: the dummy challenge without its `name`."""

    kind = "test_misshapen"
    component = "ak-stage-dummy"

    async def challenge(self, run: base.Run) -> dict[str, Any]:
        return {"title": "not a field of authentik's dummy challenge"}


async def test_a_challenge_not_of_authentiks_shape_is_a_flow_error(
    client: Any, bootstrapped: Any, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every reply goes through the challenge models: a stage that answers with another shape
    is a stage bug, shown as authentik's flow error (never sent on to break a client)."""
    monkeypatch.setitem(stages.KINDS, Misshapen.kind, Misshapen)
    await make_flow(bootstrapped, "misshapen", [("test_misshapen", {})])
    body = await (await client.get("/api/v3/flows/executor/misshapen/")).json()
    assert body["component"] == "ak-stage-flow-error" and "title" not in body
    (event,) = await _events(api)
    assert event["context"]["exception"]["type"] == "ValidationError"
