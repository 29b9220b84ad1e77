"""The JSON flow executor on the default authentication and invalidation flows."""

from __future__ import annotations

import urllib.parse
import uuid
from typing import Any

from helpers import BOOTSTRAP_PASSWORD, BOOTSTRAP_TOKEN

from tessera.core.identity import util
from tessera.core.store import crud

FLOW = "/api/v3/flows/executor/default-authentication-flow/"


async def _post(client: Any, body: dict[str, Any], path: str = FLOW) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status == 200
    return dict(await response.json())


async def _login(client: Any, username: str, password: str, query: str = "") -> dict[str, Any]:
    response = await client.get(FLOW + (f"?query={urllib.parse.quote(query)}" if query else ""))
    assert response.status == 200
    await _post(client, {"component": "ak-stage-identification", "uid_field": username})
    return await _post(client, {"component": "ak-stage-password", "password": password})


async def test_password_login_sets_a_fresh_session(client: Any) -> None:
    response = await client.get(FLOW)
    body = await response.json()
    assert body["component"] == "ak-stage-identification"
    assert body["user_fields"] == ["username", "email"]
    assert body["flow_info"]["title"] == "Welcome to authentik!"
    anonymous = response.cookies["authentik_session"].value
    body = await _post(client, {"component": "ak-stage-identification", "uid_field": "AKADMIN"})
    assert body["component"] == "ak-stage-password" and body["pending_user"] == "AKADMIN"
    response = await client.post(
        FLOW, json={"component": "ak-stage-password", "password": BOOTSTRAP_PASSWORD}
    )
    body = await response.json()
    assert body == {"component": "xak-flow-redirect", "to": "/if/user/"}
    session = response.cookies["authentik_session"].value
    assert session != anonymous  # no session fixation
    me = await client.get("/api/v3/core/users/me/")
    assert me.status == 200 and (await me.json())["user"]["username"] == "akadmin"


async def test_wrong_password_is_retried_then_cancelled(client: Any, api: Any) -> None:
    await client.get(FLOW)
    await _post(client, {"uid_field": "akadmin"})
    for _ in range(4):
        body = await _post(client, {"password": "wrong"})
        assert body["component"] == "ak-stage-password"
        assert body["response_errors"] == {
            "password": [{"string": "Invalid password", "code": "invalid"}]
        }
    body = await _post(client, {"password": "wrong"})
    assert body["component"] == "ak-stage-access-denied"
    _, events = await api("GET", "events/events/?action=login_failed")
    assert events["pagination"]["count"] == 5
    assert "wrong" not in str(events)


async def test_unknown_user_is_indistinguishable_from_a_wrong_password(
    client: Any, make_user: Any
) -> None:
    await make_user("known")
    real = await _login(client, "known", "not-the-password")
    client.session.cookie_jar.clear()
    fake = await _login(client, "unknown-user", "not-the-password")
    real.pop("pending_user"), fake.pop("pending_user")
    assert real == fake and real["component"] == "ak-stage-password"


async def test_inactive_user_cannot_log_in(client: Any, api: Any, make_user: Any) -> None:
    user = await make_user("sleepy")
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": "pw-sleepy-123"})
    await api("PATCH", f"core/users/{user['pk']}/", json={"is_active": False})
    body = await _login(client, "sleepy", "pw-sleepy-123")
    assert body["component"] == "ak-stage-password" and body["response_errors"]


async def test_login_by_email(client: Any, api: Any, make_user: Any) -> None:
    user = await make_user("mailer", email="Mailer@Example.com")
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": "pw-mailer-123"})
    assert (await _login(client, "mailer@example.com", "pw-mailer-123"))[
        "component"
    ] == "xak-flow-redirect"


async def test_next_is_kept_only_when_safe(client: Any, api: Any) -> None:
    await api(
        "POST",
        "core/applications/",
        json={"name": "G", "slug": "g", "meta_launch_url": "https://grafana.example.com/"},
    )
    await api(
        "POST",
        "core/applications/",
        json={"name": "W", "slug": "w", "meta_launch_url": "https://apps.example.com/wiki"},
    )
    cases = {
        "next=https://apps.example.com/wiki": "https://apps.example.com/wiki",
        "next=https://apps.example.com/wiki/page?x=1": "https://apps.example.com/wiki/page?x=1",
        "next=https://apps.example.com/wikievil": "/if/user/",
        "next=https://apps.example.com/": "/if/user/",
        "next=/application/o/authorize/?client_id=x": "/application/o/authorize/?client_id=x",
        "next=https://grafana.example.com/login": "https://grafana.example.com/login",
        "next=https://evil.example.com/": "/if/user/",
        "next=//evil.example.com/": "/if/user/",
        "next=/\\evil.example.com": "/if/user/",
        "next=https://grafana.example.com@evil.example.com/": "/if/user/",
        "next=javascript:alert(1)": "/if/user/",
    }
    for query, expected in cases.items():
        client.session.cookie_jar.clear()
        body = await _login(client, "akadmin", BOOTSTRAP_PASSWORD, query)
        assert body == {"component": "xak-flow-redirect", "to": expected}, query


async def test_invalid_responses_are_field_errors_not_500(client: Any) -> None:
    await client.get(FLOW)
    body = await _post(client, {"component": "ak-stage-identification"})
    assert body["component"] == "ak-stage-identification"
    assert body["response_errors"]["uid_field"][0]["code"] == "missing"
    body = await _post(client, {"uid_field": "x" * 300})
    assert "uid_field" in body["response_errors"]
    response = await client.post(
        FLOW, data="not json", headers={"Content-Type": "application/json"}
    )
    assert response.status == 400


async def test_unknown_flow_is_404(client: Any) -> None:
    response = await client.get("/api/v3/flows/executor/no-such-flow/")
    assert response.status == 404


async def test_invalidation_flow_logs_out(client: Any) -> None:
    await _login(client, "akadmin", BOOTSTRAP_PASSWORD)
    csrf = next(c.value for c in client.session.cookie_jar if c.key == "authentik_csrf")
    response = await client.get(
        "/api/v3/flows/executor/default-invalidation-flow/", headers={"X-authentik-CSRF": csrf}
    )
    assert (await response.json())["component"] == "xak-flow-redirect"
    me = await client.get("/api/v3/core/users/me/")
    assert me.status == 401


async def test_logged_in_post_without_csrf_is_refused(client: Any) -> None:
    await _login(client, "akadmin", BOOTSTRAP_PASSWORD)
    await client.get(FLOW)
    response = await client.post(FLOW, json={"uid_field": "akadmin"})
    assert response.status == 403


async def _bind_dummy(db: Any, target: str, result: bool, **binding: Any) -> None:
    async with db.transaction() as tx:
        policy = await crud.insert(
            tx,
            "policies",
            {
                "pk": str(uuid.uuid4()),
                "name": f"dummy-{uuid.uuid4().hex[:6]}",
                "kind": "dummy",
                "config": {"result": result, **binding.pop("config", {})},
                "created": util.now(),
            },
        )
        await crud.insert(
            tx,
            "policy_bindings",
            {
                "pk": str(uuid.uuid4()),
                "target": target,
                "policy": policy["pk"],
                "order": 0,
                **binding,
            },
        )


async def test_flow_policy_denies_the_flow(client: Any, bootstrapped: Any) -> None:
    async with bootstrapped.read() as tx:
        flow = await crud.get(tx, "flows", slug="default-authentication-flow")
    await _bind_dummy(bootstrapped, flow["pk"], False)
    body = await (await client.get(FLOW)).json()
    assert body["component"] == "ak-stage-access-denied"


async def test_policy_timeout_on_the_password_binding_denies_instead_of_skipping(
    client: Any, bootstrapped: Any
) -> None:
    async with bootstrapped.read() as tx:
        stage = await crud.get(tx, "stages", name="default-authentication-password")
        binding = await crud.get(tx, "flow_stage_bindings", stage=stage["pk"])
    await _bind_dummy(
        bootstrapped, binding["pk"], True, timeout=1, config={"wait_min": 3, "wait_max": 3}
    )
    await client.get(FLOW)
    body = await _post(client, {"uid_field": "akadmin"})
    assert body["component"] == "ak-stage-access-denied"
    me = await client.get("/api/v3/core/users/me/")
    assert me.status == 401


async def test_skipping_the_password_stage_does_not_log_in_by_name(
    client: Any, bootstrapped: Any
) -> None:
    async with bootstrapped.read() as tx:
        stage = await crud.get(tx, "stages", name="default-authentication-password")
        binding = await crud.get(tx, "flow_stage_bindings", stage=stage["pk"])
    await _bind_dummy(bootstrapped, binding["pk"], False)
    await client.get(FLOW)
    body = await _post(client, {"uid_field": "akadmin"})
    # The binding's policy fails, so the password stage is skipped; user_login must refuse a user
    # whom no stage authenticated.
    assert body["component"] == "ak-stage-access-denied"
    assert (await client.get("/api/v3/core/users/me/")).status == 401


async def _throttled(
    aiohttp_client: Any, make_settings: Any, bootstrapped: Any, per_username: int
) -> Any:
    """A client of a core whose login throttle allows `per_username` attempts per account."""
    from tessera.core import app

    settings = make_settings(
        login_throttle={"per_username": per_username, "per_ip": 100, "window_seconds": 60}
    )
    return await aiohttp_client(app.create_app(settings, bootstrapped, run_tasks=False))


async def test_password_guessing_is_throttled_per_username_across_flows(
    aiohttp_client: Any, make_settings: Any, bootstrapped: Any
) -> None:
    client = await _throttled(aiohttp_client, make_settings, bootstrapped, 3)
    for _ in range(3):
        client.session.cookie_jar.clear()
        body = await _login(client, "akadmin", "guess")
        assert body["component"] == "ak-stage-password"
    client.session.cookie_jar.clear()
    body = await _login(client, "akadmin", BOOTSTRAP_PASSWORD)  # even the right password now
    assert body["component"] == "ak-stage-access-denied"
    assert "Too many" in body["error_message"]
    response = await client.get(
        "/api/v3/events/events/?action=suspicious_request",
        headers={"Authorization": "Bearer " + BOOTSTRAP_TOKEN},
    )
    (event,) = (await response.json())["results"]
    assert event["context"]["reason"] == "too many failed logins"
    assert event["context"]["username"] == "akadmin"


async def test_typing_the_email_or_another_case_does_not_add_attempts(
    aiohttp_client: Any, make_settings: Any, bootstrapped: Any
) -> None:
    client = await _throttled(aiohttp_client, make_settings, bootstrapped, 3)
    for uid in ("akadmin", "root@example.com", "AKADMIN"):
        client.session.cookie_jar.clear()
        body = await _login(client, uid, "guess")
        assert body["component"] == "ak-stage-password"
    client.session.cookie_jar.clear()
    body = await _login(client, "ROOT@example.com", BOOTSTRAP_PASSWORD)
    assert body["component"] == "ak-stage-access-denied"
    assert "Too many" in body["error_message"]


async def test_parallel_password_guesses_are_all_counted(
    aiohttp_client: Any, make_settings: Any, bootstrapped: Any
) -> None:
    """A burst of guesses sent at once: no more than the limit are checked, the rest refused."""
    import asyncio

    import aiohttp

    client = await _throttled(aiohttp_client, make_settings, bootstrapped, 3)
    url = str(client.make_url(FLOW))

    async def guess() -> str:
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as session:
            await (await session.get(url)).read()
            await (await session.post(url, json={"uid_field": "akadmin"})).read()
            response = await session.post(url, json={"password": "guess"})
            return str((await response.json())["component"])

    outcomes = await asyncio.gather(*(guess() for _ in range(12)))
    assert outcomes.count("ak-stage-password") == 3  # checked, wrong, may retry
    assert outcomes.count("ak-stage-access-denied") == 9  # refused unchecked
    response = await client.get(
        "/api/v3/events/events/?action=login_failed",
        headers={"Authorization": "Bearer " + BOOTSTRAP_TOKEN},
    )
    assert (await response.json())["pagination"]["count"] == 3
    client.session.cookie_jar.clear()
    body = await _login(client, "akadmin", BOOTSTRAP_PASSWORD)
    assert body["component"] == "ak-stage-access-denied"  # the window is used up


async def test_a_successful_login_does_not_use_up_attempts(
    aiohttp_client: Any, make_settings: Any, bootstrapped: Any
) -> None:
    client = await _throttled(aiohttp_client, make_settings, bootstrapped, 2)
    for _ in range(5):
        client.session.cookie_jar.clear()
        body = await _login(client, "akadmin", BOOTSTRAP_PASSWORD)
        assert body["component"] == "xak-flow-redirect", body


async def test_a_broken_stored_stage_denies_instead_of_500(client: Any, bootstrapped: Any) -> None:
    async with bootstrapped.transaction() as tx:
        stage = await crud.get(tx, "stages", name="default-authentication-password")
        await crud.update(
            tx, "stages", {"pk": stage["pk"]}, {"config": {"failed_attempts_before_cancel": "lots"}}
        )
    await client.get(FLOW)
    body = await _post(client, {"uid_field": "akadmin"})
    assert body["component"] == "ak-stage-access-denied"
    response = await client.get(
        "/api/v3/events/events/?action=configuration_error",
        headers={"Authorization": "Bearer " + BOOTSTRAP_TOKEN},
    )
    (event,) = (await response.json())["results"]
    assert event["context"]["stage"]["name"] == "default-authentication-password"


async def test_a_broken_stored_policy_fails_closed(client: Any, bootstrapped: Any) -> None:
    async with bootstrapped.read() as tx:
        flow = await crud.get(tx, "flows", slug="default-authentication-flow")
    await _bind_dummy(bootstrapped, flow["pk"], True, config={"wait_min": "forever"})
    body = await (await client.get(FLOW)).json()
    assert body["component"] == "ak-stage-access-denied"
    response = await client.get(
        "/api/v3/events/events/?action=policy_exception",
        headers={"Authorization": "Bearer " + BOOTSTRAP_TOKEN},
    )
    assert (await response.json())["pagination"]["count"] == 1


async def test_a_sandbox_escape_denies_and_records_a_policy_exception(
    client: Any, bootstrapped: Any
) -> None:
    async with bootstrapped.transaction() as tx:
        flow = await crud.get(tx, "flows", slug="default-authentication-flow")
        policy = await crud.insert(
            tx,
            "policies",
            {
                "pk": str(uuid.uuid4()),
                "name": "escape-attempt",
                "kind": "expression",
                "config": {"expression": "return ().__class__.__mro__[1].__subclasses__()"},
                "created": util.now(),
            },
        )
        await crud.insert(
            tx,
            "policy_bindings",
            {"pk": str(uuid.uuid4()), "target": flow["pk"], "policy": policy["pk"], "order": 0},
        )
    body = await (await client.get(FLOW)).json()
    assert body["component"] == "ak-stage-access-denied"
    response = await client.get(
        "/api/v3/events/events/?action=policy_exception",
        headers={"Authorization": "Bearer " + BOOTSTRAP_TOKEN},
    )
    (event,) = (await response.json())["results"]
    assert event["context"]["policy"]["name"] == "escape-attempt"
    assert event["context"]["policy"]["kind"] == "expression"
    assert event["context"]["message"]


async def test_defaults_recreate_a_deleted_enrollment_flow(bootstrapped: Any) -> None:
    from tessera.core import flows

    async with bootstrapped.transaction() as tx:
        await crud.delete(tx, "flows", slug="default-enrollment-flow")
    async with bootstrapped.transaction() as tx:
        assert await flows.defaults.ensure(tx) == ["default-enrollment-flow"]
