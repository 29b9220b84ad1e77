"""Invitation stage: enrollment only with a valid, unexpired, (single-use) invitation."""

from __future__ import annotations

import datetime as dt
import urllib.parse
import uuid
from typing import Any

from flowkit import make_flow

from tessera.core.identity import util
from tessera.core.store import crud

PATH = "/api/v3/flows/executor/invite-only/"
FIELDS = [
    {"field_key": "username", "type": "username"},
    {"field_key": "password", "type": "password", "order": 1},
]


async def _setup(db: Any, **invitation: Any) -> str:
    flow_pk = await make_flow(
        db,
        "invite-only",
        [
            ("invitation", {}),
            ("prompt", {"fields": FIELDS}),
            ("user_write", {"user_creation_mode": "always_create"}),
            ("user_login", {}),
        ],
        designation="enrollment",
    )
    pk = str(uuid.uuid4())
    async with db.transaction() as tx:
        admin = await crud.get(tx, "users", username="akadmin")
        await crud.insert(
            tx,
            "invitations",
            {
                "pk": pk,
                "created_by": admin["pk"],
                "name": f"inv-{pk[:6]}",
                "flow": flow_pk,
                "fixed_data": {"email": "invited@example.com"},
                "created": util.now(),
                **invitation,
            },
        )
    return pk


async def _enrol(client: Any, token: str | None, username: str) -> dict[str, Any]:
    client.session.cookie_jar.clear()
    query = f"?query={urllib.parse.quote('itoken=' + token)}" if token else ""
    body = await (await client.get(PATH + query)).json()
    if body["component"] != "ak-stage-prompt":
        return dict(body)
    return dict(
        await (
            await client.post(PATH, json={"username": username, "password": "a-long-password"})
        ).json()
    )


async def test_invitation_admits_once_with_fixed_data(
    client: Any, bootstrapped: Any, api: Any
) -> None:
    token = await _setup(bootstrapped, single_use=True)
    assert (await _enrol(client, token, "guest"))["component"] == "xak-flow-redirect"
    _, users = await api("GET", "core/users/?username=guest")
    assert users["results"][0]["email"] == "invited@example.com"
    assert (await _enrol(client, token, "guest2"))["component"] == "ak-stage-access-denied"
    _, events = await api("GET", "events/events/?action=invitation_used")
    assert events["pagination"]["count"] == 1


async def test_without_or_with_a_bad_invitation_is_denied(client: Any, bootstrapped: Any) -> None:
    await _setup(bootstrapped)
    assert (await _enrol(client, None, "x"))["component"] == "ak-stage-access-denied"
    assert (await _enrol(client, str(uuid.uuid4()), "x"))["component"] == "ak-stage-access-denied"
    assert (await _enrol(client, "not-a-uuid", "x"))["component"] == "ak-stage-access-denied"


async def test_expired_invitation_is_denied(client: Any, bootstrapped: Any) -> None:
    token = await _setup(bootstrapped, expires=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    assert (await _enrol(client, token, "late"))["component"] == "ak-stage-access-denied"
