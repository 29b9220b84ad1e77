"""Password, password expiry and event matcher policies, also as stage-binding policies."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from flowkit import make_flow

from tessera.core.identity import util
from tessera.core.policies import engine, kinds
from tessera.core.store import crud


async def _verdict(kind: str, config: dict[str, Any], **request: Any) -> kinds.Verdict:
    return await kinds.build(kind, config).evaluate(engine.Request(**{"user": None, **request}))


async def test_a_long_passphrase_is_scored_not_an_error() -> None:
    long = "correct horse battery staple " * 10  # 290 characters; zxcvbn takes at most 72
    verdict = await _verdict("password", {}, context={"prompt_data": {"password": long}})
    assert verdict.passing
    weak = await _verdict("password", {}, context={"prompt_data": {"password": "a" * 300}})
    assert not weak.passing and any("weak" in m for m in weak.messages)


async def test_the_policy_test_endpoint_scores_a_long_password(api: Any) -> None:
    status, policy = await api("POST", "policies/password/", json={"name": "pw"})
    assert status == 201, policy
    for password, passing in (("a" * 300, False), ("correct horse battery staple " * 3, True)):
        context = {"prompt_data": {"password": password}}
        status, result = await api(
            "POST", f"policies/all/{policy['pk']}/test/", json={"user": 1, "context": context}
        )
        assert status == 200, result
        assert result["passing"] is passing


async def test_password_policy_rules() -> None:
    weak = await _verdict("password", {}, context={"prompt_data": {"password": "password1"}})
    assert not weak.passing and any("weak" in m for m in weak.messages)
    short = await _verdict(
        "password",
        {"length_min": 20, "check_zxcvbn": False},
        context={"prompt_data": {"password": "Tr0ub4dor&3"}},
    )
    assert not short.passing
    classes = await _verdict(
        "password",
        {"amount_digits": 2, "amount_symbols": 1, "check_zxcvbn": False},
        context={"prompt_data": {"password": "abcdefgh1"}},
    )
    assert not classes.passing and len(classes.messages) == 2
    good = await _verdict(
        "password", {}, context={"prompt_data": {"password": "correct horse battery staple"}}
    )
    assert good.passing
    own = await _verdict(
        "password",
        {"zxcvbn_score_threshold": 3},
        user={"username": "margaretthatcher"},
        context={"prompt_data": {"password": "margaretthatcher1"}},
    )
    assert not own.passing


async def test_password_expiry() -> None:
    old = {"password_change_date": dt.datetime.now(dt.UTC) - dt.timedelta(days=100)}
    assert not (await _verdict("password_expiry", {"days": 90}, user=old)).passing
    assert (await _verdict("password_expiry", {"days": 120}, user=old)).passing


async def test_event_matcher() -> None:
    event = {"action": "login_failed", "app": "tessera", "client_ip": "10.0.0.1"}
    assert (
        await _verdict("event_matcher", {"action": "login_failed"}, context={"event": event})
    ).passing
    assert not (
        await _verdict("event_matcher", {"action": "login"}, context={"event": event})
    ).passing
    assert not (await _verdict("event_matcher", {}, context={})).passing


async def test_weak_password_is_refused_in_the_enrollment_prompt(
    client: Any, bootstrapped: Any
) -> None:
    fields = [
        {"field_key": "username", "type": "username"},
        {"field_key": "password", "type": "password", "order": 1},
    ]
    flow_pk = await make_flow(
        bootstrapped,
        "strong-enrol",
        [("prompt", {"fields": fields}), ("user_write", {}), ("user_login", {})],
        designation="enrollment",
    )
    async with bootstrapped.transaction() as tx:
        prompt_stage = await crud.get(tx, "stages", name="strong-enrol-0-prompt")
        write_stage = await crud.get(tx, "stages", name="strong-enrol-1-user_write")
        binding = await crud.get(tx, "flow_stage_bindings", stage=write_stage["pk"])
        policy = await crud.insert(
            tx,
            "policies",
            {
                "pk": str(uuid.uuid4()),
                "name": "strong",
                "kind": "password",
                "config": {},
                "created": util.now(),
            },
        )
        await crud.insert(
            tx,
            "policy_bindings",
            {"pk": str(uuid.uuid4()), "target": binding["pk"], "policy": policy["pk"], "order": 0},
        )
    assert prompt_stage and flow_pk
    path = "/api/v3/flows/executor/strong-enrol/"
    await client.get(path)
    body = await (
        await client.post(path, json={"username": "weakling", "password": "password1"})
    ).json()
    # The write stage's policy fails: the stage is skipped, so no user exists and no login happens.
    assert body["component"] == "ak-stage-access-denied"
    assert (await client.get("/api/v3/core/users/me/")).status == 401
