"""Password, password expiry and event matcher policies, also as stage-binding policies."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from flowkit import make_flow

from tessera.core.identity import users, util
from tessera.core.policies import engine, kinds
from tessera.core.store import crud


async def _verdict(kind: str, config: dict[str, Any], **request: Any) -> kinds.Verdict:
    if kind == "password":  # the breach check has tests of its own (test_pwned.py)
        config = {"check_have_i_been_pwned": False, **config}
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
    denied = await _verdict("password_expiry", {"days": 90, "deny_only": True}, user=old)
    assert not denied.passing and denied.messages == ["Password has expired."]
    assert (await _verdict("password_expiry", {"days": 120}, user=old)).passing


async def test_password_expiry_without_deny_only_makes_the_password_unusable(
    bootstrapped: Any, make_user: Any
) -> None:
    made = await make_user("expired")
    ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=100)
    async with bootstrapped.transaction() as tx:
        await users.set_password(tx, made["pk"], "a long enough secret 1")
        await crud.update(tx, "users", {"pk": made["pk"]}, {"password_change_date": ago})
        user = await crud.get(tx, "users", pk=made["pk"])
    assert user["password"]
    kind = kinds.build("password_expiry", {"days": 90, "deny_only": True})
    assert not (await kind.evaluate(engine.Request(user=user, db=bootstrapped))).passing
    async with bootstrapped.read() as tx:
        assert (await crud.get(tx, "users", pk=made["pk"]))["password"] == user["password"]
    kind = kinds.build("password_expiry", {"days": 90})
    verdict = await kind.evaluate(engine.Request(user=user, db=bootstrapped))
    assert not verdict.passing
    assert verdict.messages == ["Password expired 10 days ago. Please update your password."]
    async with bootstrapped.read() as tx:
        assert (await crud.get(tx, "users", pk=made["pk"]))["password"] == ""


async def test_password_static_rules_and_symbol_charset() -> None:
    def ctx(password: str) -> dict[str, Any]:
        return {"prompt_data": {"password": password}}

    base = {"check_zxcvbn": False, "check_have_i_been_pwned": False}
    rules = {**base, "length_min": 30, "amount_symbols": 1}
    assert not (await _verdict("password", rules, context=ctx("short!"))).passing
    off = await _verdict("password", {**rules, "check_static_rules": False}, context=ctx("x"))
    assert off.passing
    # Symbols are the characters of symbol_charset, not anything but letters and digits.
    only_hash = {**base, "length_min": 0, "amount_symbols": 2, "symbol_charset": "#"}
    assert not (await _verdict("password", only_hash, context=ctx("a!b?c#"))).passing
    assert (await _verdict("password", only_hash, context=ctx("a#b#"))).passing
    default = {**base, "length_min": 0, "amount_symbols": 3}
    assert (await _verdict("password", default, context=ctx('a\\"b c'))).passing
    assert not (await _verdict("password", default, context=ctx("aé€b"))).passing


async def test_password_hibp_without_the_servers_settings_fails_closed() -> None:
    config = {"check_zxcvbn": False, "check_have_i_been_pwned": True, "hibp_allowed_count": 5}
    verdict = await _verdict("password", config, context={"prompt_data": {"password": "password"}})
    assert not verdict.passing  # no store, so no outbound settings: never a silent pass
    [entry] = verdict.log
    assert "no outbound calls" in entry["event"] and entry["log_level"] == "warning"


async def test_password_policy_api_takes_authentiks_fields(api: Any) -> None:
    status, policy = await api("POST", "policies/password/", json={"name": "pw"})
    assert status == 201, policy
    assert policy["symbol_charset"] == "!\\\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ "
    assert policy["check_static_rules"] is True
    # Off by default here: the tests' server makes no outbound calls (test_pwned_offline.py).
    assert policy["check_have_i_been_pwned"] is False and policy["hibp_allowed_count"] == 0
    body = {
        "name": "pw2",
        "symbol_charset": "#",
        "check_static_rules": False,
        "check_have_i_been_pwned": False,
        "hibp_allowed_count": 3,
    }
    status, policy = await api("POST", "policies/password/", json=body)
    assert status == 201, policy
    assert {k: policy[k] for k in body} == body
    for bad in ({"hibp_allowed_count": -1}, {"symbol_charset": "x" * 2000}):
        status, problem = await api("POST", "policies/password/", json={"name": "b", **bad})
        assert status == 400 and set(bad) <= set(problem), problem
    status, matcher = await api(
        "POST", "policies/event_matcher/", json={"name": "m", "model": "authentik_core.user"}
    )
    assert status == 201 and matcher["model"] == "authentik_core.user"
    status, expiry = await api(
        "POST", "policies/password_expiry/", json={"name": "x", "days": 3, "deny_only": True}
    )
    assert status == 201 and expiry["deny_only"] is True


async def test_password_over_72_characters_never_gives_a_500(api: Any) -> None:
    """Whatever the kind raises, the test action answers 200 with a verdict."""
    _, policy = await api("POST", "policies/password/", json={"name": "long"})
    _, page = await api("GET", "core/users/?username=akadmin")
    body = {"user": page["results"][0]["pk"], "context": {"password": "Zq9!" * 30}}
    status, result = await api("POST", f"policies/all/{policy['pk']}/test/", json=body)
    assert status == 200 and isinstance(result["passing"], bool), result


async def test_event_matcher() -> None:
    event = {"action": "login_failed", "app": "tessera", "client_ip": "10.0.0.1"}
    assert (
        await _verdict("event_matcher", {"action": "login_failed"}, context={"event": event})
    ).passing
    assert not (
        await _verdict("event_matcher", {"action": "login"}, context={"event": event})
    ).passing
    assert not (await _verdict("event_matcher", {}, context={})).passing


async def test_event_matcher_takes_authentiks_names_only(api: Any) -> None:
    """action, app and model are enums in authentik's schema; its client refuses other values."""
    for bad in ({"action": "logged_in"}, {"app": "tessera"}, {"model": "users"}):
        status, problem = await api("POST", "policies/event_matcher/", json={"name": "b", **bad})
        assert status == 400 and set(bad) <= set(problem), problem
    body = {"name": "q", "action": "login", "app": "authentik.core", "query": None}
    status, matcher = await api("POST", "policies/event_matcher/", json=body)
    assert status == 201 and matcher["query"] is None and matcher["app"] == "authentik.core"
    # An event search Tessera does not run is refused rather than ignored.
    body = {"name": "q2", "query": 'action = "login"'}
    status, problem = await api("POST", "policies/event_matcher/", json=body)
    assert status == 400 and "query" in problem


async def test_event_matcher_model() -> None:
    model = {"app": "authentik_core", "model_name": "user", "pk": 1}
    event = {"action": "model_updated", "app": "tessera", "context": {"model": model}}
    for wanted, passing in (("authentik_core.user", True), ("authentik_core.group", False)):
        config = {"model": wanted, "action": "model_updated"}
        verdict = await _verdict("event_matcher", config, context={"event": event})
        assert verdict.passing is passing
    plain = {"action": "login", "context": {}}
    config = {"model": "authentik_core.user"}
    assert not (await _verdict("event_matcher", config, context={"event": plain})).passing
    odd = {"action": "login", "context": {"model": "not a mapping"}}
    assert not (await _verdict("event_matcher", config, context={"event": odd})).passing


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


async def test_event_matcher_app_is_authentiks_label_of_the_recording_module() -> None:
    """An event's `app` is the Tessera module that recorded it; the matcher's `app` (authentik's
    label) matches the modules that do what that authentik app does, and nothing else."""
    cases = {
        "tessera.core.stages.password": "authentik.stages.password",
        "tessera.core.stages.attempts": "authentik.stages.authenticator_validate",
        "tessera.core.flows.executor": "authentik.flows",
        "tessera.core.providers.oauth2.grants": "authentik.providers.oauth2",
        "tessera.core.identity.bootstrap": "authentik.core",
        "tessera.core.api.resource": "authentik.events",
        "authentik.stages.password.stage": "authentik.stages.password",  # authentik's own log
    }
    for origin, app in cases.items():
        event = {"action": "login_failed", "app": origin}
        matched = await _verdict("event_matcher", {"app": app}, context={"event": event})
        assert matched.passing, (origin, app)
        other = await _verdict("event_matcher", {"app": "authentik.core"}, context={"event": event})
        assert other.passing is (app == "authentik.core"), origin
    stranger = {"action": "login", "app": "somewhere.else"}
    verdict = await _verdict(
        "event_matcher", {"app": "authentik.core"}, context={"event": stranger}
    )
    assert not verdict.passing


async def test_a_failed_login_event_matches_the_password_stages_app(
    client: Any, api: Any, make_user: Any
) -> None:
    """The event a real failed password records carries its module, which the matcher names as
    authentik does (`authentik.stages.password`)."""
    from flowkit import call

    await make_user("matched")
    login = "/api/v3/flows/executor/default-authentication-flow/"
    await call(client, login)
    await call(client, login, {"uid_field": "matched"})
    await call(client, login, {"password": "wrong"})
    _, page = await api("GET", "events/events/?action=login_failed")
    (event,) = page["results"]
    assert event["app"] == "tessera.core.stages.password"
    for app, passing in (("authentik.stages.password", True), ("authentik.flows", False)):
        config = {"app": app, "action": "login_failed"}
        verdict = await _verdict("event_matcher", config, context={"event": event})
        assert verdict.passing is passing, app
