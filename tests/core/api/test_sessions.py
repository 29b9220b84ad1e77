"""API sessions: recovery links log in once; unsafe calls need the CSRF cookie and header."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from helpers import SECRET_KEY

from tessera.core import identity
from tessera.core.crypto import Keyring
from tessera.core.store import crud


async def _recovery_link(db: Any, username: str, minutes: int = 5) -> str:
    async with db.transaction() as tx:
        key = await identity.bootstrap.recovery_key(tx, Keyring(SECRET_KEY), username, minutes)
    assert key is not None
    return f"/recovery/use-token/{key}/"


async def test_recovery_link_logs_in_once(client: Any, bootstrapped: Any) -> None:
    link = await _recovery_link(bootstrapped, "akadmin")
    response = await client.get(link, allow_redirects=False)
    assert response.status == 302 and response.headers["Location"] == "/if/user/"
    assert "authentik_session" in response.cookies and "authentik_csrf" in response.cookies
    assert "HttpOnly" in response.headers.getall("Set-Cookie")[0]
    me = await client.get("/api/v3/core/users/me/")
    assert me.status == 200 and (await me.json())["user"]["username"] == "akadmin"
    client.session.cookie_jar.clear()
    again = await client.get(link, allow_redirects=False)
    assert again.status == 404


async def test_expired_recovery_link_is_refused(client: Any, bootstrapped: Any) -> None:
    async with bootstrapped.transaction() as tx:
        key = await identity.bootstrap.recovery_key(tx, Keyring(SECRET_KEY), "akadmin", 1)
    assert key is not None
    async with bootstrapped.transaction() as tx:
        row = await crud.find(tx, "tokens", intent="recovery")
        assert row is not None
        await crud.update(
            tx,
            "tokens",
            {"pk": row["pk"]},
            {"expires": dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)},
        )
    response = await client.get(f"/recovery/use-token/{key}/", allow_redirects=False)
    assert response.status == 404


async def test_session_write_without_csrf_header_is_403(client: Any, bootstrapped: Any) -> None:
    await client.get(await _recovery_link(bootstrapped, "akadmin"), allow_redirects=False)
    response = await client.post("/api/v3/core/groups/", json={"name": "csrf-victim"})
    assert response.status == 403
    response = await client.post(
        "/api/v3/core/groups/", json={"name": "csrf-victim"}, headers={"X-authentik-CSRF": "forged"}
    )
    assert response.status == 403
    csrf = next(c.value for c in client.session.cookie_jar if c.key == "authentik_csrf")
    response = await client.post(
        "/api/v3/core/groups/", json={"name": "csrf-ok"}, headers={"X-authentik-CSRF": csrf}
    )
    assert response.status == 201


async def test_forged_session_cookie_is_401(client: Any) -> None:
    client.session.cookie_jar.update_cookies({"authentik_session": "forged-session-key"})
    response = await client.get("/api/v3/core/users/me/")
    assert response.status == 401


async def test_recovery_link_used_concurrently_logs_in_only_once(
    client: Any, bootstrapped: Any
) -> None:
    link = await _recovery_link(bootstrapped, "akadmin")
    responses = await asyncio.gather(*(client.get(link, allow_redirects=False) for _ in range(8)))
    assert sorted(r.status for r in responses) == [302] + [404] * 7


async def test_cookies_are_secure_behind_a_trusted_https_proxy(
    client: Any, bootstrapped: Any
) -> None:
    link = await _recovery_link(bootstrapped, "akadmin")
    response = await client.get(link, allow_redirects=False, headers={"X-Forwarded-Proto": "https"})
    assert all("Secure" in c for c in response.headers.getall("Set-Cookie"))
    plain = await client.get("/api/v3/flows/executor/default-authentication-flow/")
    assert "Secure" not in plain.headers["Set-Cookie"]
