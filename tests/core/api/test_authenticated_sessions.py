"""`/api/v3/core/authenticated_sessions/`: a user's own sessions, every session for admins.

Ending one ends it everywhere (the outposts hear SESSION_END) and leaves the user's other
sessions alone; a user can neither see nor end another user's session.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

from tessera.core import outpost_hub, store
from tessera.core.identity import sessions, user_agents

FIREFOX_LINUX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1"
)
CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
CSRF = "csrf-double-submit"


async def _session(db: store.Store, user_pk: int, ua: str, ip: str = "192.0.2.7") -> str:
    async with db.transaction() as tx:
        key, _ = await sessions.create(tx, user_pk, dt.timedelta(hours=1), ip=ip, user_agent=ua)
    return key


async def _as(client: Any, key: str, method: str, path: str = "") -> tuple[int, Any]:
    response = await client.request(
        method,
        f"/api/v3/core/authenticated_sessions/{path}",
        headers={
            "Cookie": f"{sessions.COOKIE}={key}; authentik_csrf={CSRF}",
            "X-authentik-CSRF": CSRF,
        },
    )
    text = await response.text()
    return response.status, json.loads(text) if text else None


class Ended:
    """An in-process watcher of the hub, as the embedded outpost is."""

    def __init__(self) -> None:
        self.digests: list[str] = []
        self.heard = asyncio.Event()

    def outposts_changed(self) -> None:
        pass

    def sessions_ended(self, digests: list[str]) -> None:
        self.digests.extend(digests)
        self.heard.set()

    def resubscribed(self) -> None:
        pass


async def test_a_user_lists_their_own_sessions_with_current_marked(
    client: Any, bootstrapped: store.Store, make_user: Any
) -> None:
    ada = await make_user("ada")
    laptop = await _session(bootstrapped, ada["pk"], FIREFOX_LINUX)
    await _session(bootstrapped, ada["pk"], SAFARI_IPHONE, ip="2001:db8::5")
    bob = await make_user("bob")
    await _session(bootstrapped, bob["pk"], CHROME_WINDOWS)

    status, page = await _as(client, laptop, "GET")
    assert status == 200 and page["pagination"]["count"] == 2
    assert {s["user"] for s in page["results"]} == {ada["pk"]}
    by_agent = {s["last_user_agent"]: s for s in page["results"]}
    assert by_agent[FIREFOX_LINUX]["current"] is True
    phone = by_agent[SAFARI_IPHONE]
    assert phone["current"] is False and phone["last_ip"] == "2001:db8::5"
    assert phone["geo_ip"] is None and phone["asn"] is None
    assert phone["user_agent"]["user_agent"] == {
        "family": "Mobile Safari",
        "major": "17",
        "minor": "1",
        "patch": "2",
    }
    assert phone["user_agent"]["os"]["family"] == "iOS"
    assert phone["user_agent"]["device"] == {
        "brand": "Apple",
        "family": "iPhone",
        "model": "iPhone",
    }


async def test_admin_sees_every_session_and_filters_by_username(
    api: Any, bootstrapped: store.Store, make_user: Any
) -> None:
    ada, bob = await make_user("ada"), await make_user("bob")
    await _session(bootstrapped, ada["pk"], FIREFOX_LINUX)
    await _session(bootstrapped, bob["pk"], CHROME_WINDOWS, ip="198.51.100.4")
    status, page = await api("GET", "core/authenticated_sessions/")
    assert status == 200 and {ada["pk"], bob["pk"]} <= {s["user"] for s in page["results"]}
    assert all(s["current"] is False for s in page["results"])  # a token is no session
    status, page = await api("GET", "core/authenticated_sessions/?user__username=bob")
    assert status == 200 and [s["user"] for s in page["results"]] == [bob["pk"]]
    status, page = await api(
        "GET", "core/authenticated_sessions/?session__last_ip=198.51.100.4&search=Chrome"
    )
    assert status == 200 and page["pagination"]["count"] == 1
    status, page = await api("GET", "core/authenticated_sessions/?user__username=nobody")
    assert status == 200 and page["results"] == []


async def test_deleting_a_session_ends_it_everywhere_and_keeps_the_others(
    client: Any, bootstrapped: store.Store, make_user: Any
) -> None:
    ada = await make_user("ada")
    laptop = await _session(bootstrapped, ada["pk"], FIREFOX_LINUX)
    stolen = await _session(bootstrapped, ada["pk"], SAFARI_IPHONE)
    watcher = Ended()
    client.app[outpost_hub.HUB].watch(watcher)
    _, page = await _as(client, laptop, "GET")
    target = next(s for s in page["results"] if not s["current"])

    status, _ = await _as(client, laptop, "DELETE", f"{target['uuid']}/")
    assert status == 204
    async with asyncio.timeout(2):
        await watcher.heard.wait()
    assert watcher.digests == [sessions.digest(stolen)]
    assert (await _as(client, stolen, "GET"))[0] == 401  # the ended session logs in no more
    status, page = await _as(client, laptop, "GET")
    assert status == 200 and [s["current"] for s in page["results"]] == [True]
    assert (await _as(client, laptop, "GET", f"{target['uuid']}/"))[0] == 404


async def test_attack_a_user_cannot_see_or_end_another_users_session(
    client: Any, bootstrapped: store.Store, make_user: Any, api: Any
) -> None:
    ada, mallory = await make_user("ada"), await make_user("mallory")
    victim = await _session(bootstrapped, ada["pk"], FIREFOX_LINUX)
    attacker = await _session(bootstrapped, mallory["pk"], CHROME_WINDOWS)
    _, page = await api("GET", "core/authenticated_sessions/?user__username=ada")
    uuid = page["results"][0]["uuid"]

    assert (await _as(client, attacker, "GET", f"{uuid}/"))[0] == 404
    assert (await _as(client, attacker, "DELETE", f"{uuid}/"))[0] == 404
    _, mine = await _as(client, attacker, "GET", "?user__username=ada")
    assert mine["results"] == []
    assert (await _as(client, victim, "GET", f"{uuid}/"))[0] == 200  # still alive


async def test_bad_lookups_are_404_and_anonymous_callers_are_refused(client: Any) -> None:
    for lookup in ("not-a-uuid", "00000000-0000-0000-0000-000000000000", "%00"):
        response = await client.get(
            f"/api/v3/core/authenticated_sessions/{lookup}/",
            headers={"Authorization": "Bearer nope"},
        )
        assert response.status in {401, 403}
    response = await client.get("/api/v3/core/authenticated_sessions/")
    assert response.status in {401, 403}


async def test_admin_bad_lookup_is_404(api: Any) -> None:
    for lookup in ("not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        status, body = await api("GET", f"core/authenticated_sessions/{lookup}/")
        assert status == 404 and body is not None


def test_user_agents_are_read_as_authentik_shows_them() -> None:
    chrome = user_agents.parse(CHROME_WINDOWS)
    assert chrome["user_agent"] == {"family": "Chrome", "major": "131", "minor": "0", "patch": "0"}
    assert chrome["os"]["family"] == "Windows" and chrome["os"]["major"] == "10"
    assert chrome["device"]["family"] == "Other"
    firefox = user_agents.parse(FIREFOX_LINUX)
    assert firefox["user_agent"]["family"] == "Firefox" and firefox["os"]["family"] == "Ubuntu"
    odd = user_agents.parse("\x00" * 2000)
    assert odd["user_agent"]["family"] == "Other" and len(odd["string"]) == 512
