"""Flows started by a provider (`Executor.start`): the plan carries the provider's context, runs
for the logged-in user, and its decision is handed back once, to the same browser only."""

from __future__ import annotations

from typing import Any

from helpers import BOOTSTRAP_PASSWORD

from tessera.core.api import flows as flows_api
from tessera.core.flows import executor

CONSENT = "default-provider-authorization-explicit-consent"
LOGIN = "/api/v3/flows/executor/default-authentication-flow/"


async def _login(client: Any) -> None:
    await client.get(LOGIN)
    await client.post(LOGIN, json={"uid_field": "akadmin"})
    body = await (await client.post(LOGIN, json={"password": BOOTSTRAP_PASSWORD})).json()
    assert body["component"] == "xak-flow-redirect"


def _csrf(client: Any) -> dict[str, str]:
    token = next(c.value for c in client.session.cookie_jar if c.key == "authentik_csrf")
    return {"X-authentik-CSRF": token}


def _browser(client: Any, user: dict[str, Any] | None) -> executor.Browser:
    key = next(c.value for c in client.session.cookie_jar if c.key == "authentik_session")
    return executor.Browser(key=key, user=user, client_ip="127.0.0.1", user_agent="", secure=False)


async def test_consent_runs_for_the_logged_in_user_and_reports_once(client: Any, api: Any) -> None:
    status, app = await api("POST", "core/applications/", json={"name": "Wiki", "slug": "wiki"})
    assert status == 201, app
    await _login(client)
    _, me = await api("GET", "core/users/?username=akadmin")
    user = me["results"][0]
    engine = client.app[flows_api.EXECUTOR]
    browser = _browser(client, user)
    refused = await engine.start(
        CONSENT,
        browser,
        context={"application": app["pk"], "consent_permissions": ["openid", "email"]},
        next_path="/application/o/authorize/?continue=1",
        done_key="k-123",
    )
    assert refused == ""
    assert await engine.completed(browser, "k-123") is None  # not finished yet
    page = f"/api/v3/flows/executor/{CONSENT}/"
    body = await (await client.get(page, headers=_csrf(client))).json()
    assert body["component"] == "ak-stage-consent"
    assert "Wiki" in body["header_text"]
    assert [p["id"] for p in body["permissions"]] == ["openid", "email"]
    body = await (
        await client.post(page, headers=_csrf(client), json={"token": body["token"]})
    ).json()
    assert body == {"component": "xak-flow-redirect", "to": "/application/o/authorize/?continue=1"}
    other = executor.Browser(
        key="someone-else-" + "x" * 30, user=None, client_ip="", user_agent="", secure=False
    )
    assert await engine.completed(other, "k-123") is None  # another browser gets nothing ...
    done = await engine.completed(browser, "k-123")  # ... and did not use it up
    assert done is not None and done["user"] == user["pk"]
    assert done["context"]["application"] == app["pk"]
    assert await engine.completed(browser, "k-123") is None  # single use


async def test_an_anonymous_browser_is_refused_an_authorization_flow(client: Any) -> None:
    engine = client.app[flows_api.EXECUTOR]
    await client.get(LOGIN)  # an anonymous key
    browser = _browser(client, None)
    refused = await engine.start(CONSENT, browser, context={}, next_path="/x/", done_key="anon-key")
    assert refused  # the authorization flows require an authenticated user
