"""The `login` and `login_failed` events carry `http_request` (method, path, user agent) as
authentik's do, with the client's address in `client_ip`; never the query string."""

from __future__ import annotations

import urllib.parse
from typing import Any

from flowkit import log_in_as
from helpers import BOOTSTRAP_PASSWORD

FLOW = "/api/v3/flows/executor/default-authentication-flow/"
AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SECRET_QUERY = "client_id=app&code_challenge=not-for-the-log&state=also-not"


async def _post(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    url = FLOW + "?query=" + urllib.parse.quote(SECRET_QUERY)
    response = await client.post(url, json=body, headers={"User-Agent": AGENT})
    assert response.status == 200
    return dict(await response.json())


async def _latest(api: Any, action: str) -> dict[str, Any]:
    status, page = await api("GET", f"events/events/?action={action}&ordering=-created")
    assert status == 200 and page["results"], page
    return dict(page["results"][0])


async def test_login_event_has_http_request(client: Any, api: Any) -> None:
    await client.get(FLOW, headers={"User-Agent": AGENT})
    await _post(client, {"component": "ak-stage-identification", "uid_field": "akadmin"})
    body = await _post(client, {"component": "ak-stage-password", "password": BOOTSTRAP_PASSWORD})
    assert body["component"] == "xak-flow-redirect"
    event = await _latest(api, "login")
    described = event["context"]["http_request"]
    assert described["method"] == "POST" and described["path"] == FLOW
    assert described["user_agent"] == AGENT
    assert event["client_ip"] == "127.0.0.1"
    assert "not-for-the-log" not in str(event) and "also-not" not in str(event)


async def test_login_failed_event_has_http_request(client: Any, api: Any) -> None:
    await client.get(FLOW, headers={"User-Agent": AGENT})
    await _post(client, {"component": "ak-stage-identification", "uid_field": "akadmin"})
    await _post(client, {"component": "ak-stage-password", "password": "wrong"})
    event = await _latest(api, "login_failed")
    described = event["context"]["http_request"]
    assert (described["method"], described["path"], described["user_agent"]) == (
        "POST",
        FLOW,
        AGENT,
    )
    assert event["client_ip"] == "127.0.0.1" and "not-for-the-log" not in str(event)


async def test_recovery_login_event_has_http_request(
    client: Any, api: Any, bootstrapped: Any
) -> None:
    await log_in_as(client, bootstrapped, "akadmin")
    event = await _latest(api, "login")
    described = event["context"]["http_request"]
    # The route's pattern: the path itself holds the recovery key.
    assert (described["method"], described["path"]) == ("GET", "/recovery/use-token/{key}/")
