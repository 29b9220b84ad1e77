"""Token identifiers the system uses (issue 22, item 11) and the portal's token list (item 12):
`authentik-*` and `ak-*` are the system's, the bootstrap takes its identifier back from whoever
holds it, a conflict answers alike whoever owns the token, and managed tokens stay hidden."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flowkit import log_in_as
from helpers import BOOTSTRAP_TOKEN, SECRET_KEY

from tessera.core import app, config, identity, store, wire
from tessera.core.crypto import Keyring
from tessera.core.identity import bootstrap
from tessera.core.store import crud

BOOTSTRAP_ID = bootstrap.BOOTSTRAP_TOKEN_ID
RESERVED = {"identifier": ["This identifier is reserved for the system."]}


async def _as(client: Any, key: str, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    response = await client.request(
        method, f"/api/v3/{path}", headers={"Authorization": f"Bearer {key}"}, **kwargs
    )
    body = await response.json() if response.content_type == "application/json" else None
    return response.status, body


async def test_a_user_cannot_squat_the_bootstrap_token_identifier_after_its_deletion(
    client: Any, make_user: Any, make_token: Any
) -> None:
    await make_user("mallory")
    mallory = await make_token("mallory")
    admin_key = await make_token("akadmin")
    assert (await _as(client, admin_key, "DELETE", f"core/tokens/{BOOTSTRAP_ID}/"))[0] == 204
    for identifier in (BOOTSTRAP_ID, "Authentik-Bootstrap-Token", "ak-outpost-1-api", "AK-x"):
        status, body = await _as(
            client, mallory, "POST", "core/tokens/", json={"identifier": identifier}
        )
        assert (status, body) == (400, RESERVED), identifier
    # Superusers go through the same API: the identifiers are the system's, not an admin's.
    status, body = await _as(
        client, admin_key, "POST", "core/tokens/", json={"identifier": BOOTSTRAP_ID}
    )
    assert (status, body) == (400, RESERVED)


async def test_a_token_cannot_be_renamed_to_a_reserved_identifier(
    client: Any, api: Any, make_user: Any, make_token: Any
) -> None:
    await make_user("rhea")
    key = await make_token("rhea")
    created = await _as(client, key, "POST", "core/tokens/", json={"identifier": "rhea-ci"})
    assert created[0] == 201
    for method in ("PATCH", "PUT"):
        status, body = await _as(
            client, key, method, "core/tokens/rhea-ci/", json={"identifier": "ak-rhea"}
        )
        assert (status, body) == (400, RESERVED)
    # The system's own token keeps its identifier when an admin edits it.
    status, body = await api(
        "PATCH", f"core/tokens/{BOOTSTRAP_ID}/", json={"description": "kept by the admin"}
    )
    assert status == 200, body


async def test_a_conflicting_identifier_answers_alike_whoever_owns_the_token(
    client: Any, api: Any, make_user: Any, make_token: Any
) -> None:
    """No existence oracle: a reserved identifier is refused the same way whether or not the
    system's token exists, and a taken identifier the same way whether it is the caller's own
    token or another user's."""
    await make_user("mallory")
    await make_user("victim")
    mallory, victim = await make_token("mallory"), await make_token("victim")
    reserved_answers = [
        await _as(client, mallory, "POST", "core/tokens/", json={"identifier": BOOTSTRAP_ID})
    ]
    assert (await api("DELETE", f"core/tokens/{BOOTSTRAP_ID}/"))[0] == 204
    reserved_answers.append(
        await _as(client, mallory, "POST", "core/tokens/", json={"identifier": BOOTSTRAP_ID})
    )
    assert reserved_answers == [(400, RESERVED)] * 2
    await _as(client, victim, "POST", "core/tokens/", json={"identifier": "victim-ci"})
    await _as(client, mallory, "POST", "core/tokens/", json={"identifier": "mallory-ci"})
    taken = [
        await _as(client, mallory, "POST", "core/tokens/", json={"identifier": name})
        for name in ("victim-ci", "mallory-ci")
    ]
    assert taken[0] == taken[1] and taken[0][0] == 400


@pytest.fixture
def restart(
    make_settings: Callable[..., config.Settings],
) -> Callable[[], Any]:
    """Run the server's start-up (migrations and bootstrap) again on the test's database."""

    async def again() -> None:
        db = await app.prepare(make_settings(bootstrap_token=BOOTSTRAP_TOKEN))
        await db.close()

    return again


async def test_bootstrap_replaces_a_squatted_token_and_records_it(
    api: Any, make_user: Any, bootstrapped: store.Store, restart: Callable[[], Any]
) -> None:
    mallory = await make_user("mallory")
    keyring = Keyring(SECRET_KEY)
    assert (await api("DELETE", f"core/tokens/{BOOTSTRAP_ID}/"))[0] == 204
    # A token under the identifier that is not the bootstrap's (left by an earlier version, or
    # written by anything but the API): Mallory's, with a key she knows.
    async with bootstrapped.transaction() as tx:
        body = wire.core.TokenRequest(identifier="mallory-ci", intent="api", expiring=False)
        row, squatted = await identity.tokens.create(tx, keyring, body, user_pk=mallory["pk"])
        await crud.update(tx, "tokens", {"pk": row["pk"]}, {"identifier": BOOTSTRAP_ID})
    await restart()
    async with bootstrapped.read() as tx:
        assert await identity.tokens.authenticate(tx, keyring, squatted) is None
        found = await identity.tokens.authenticate(tx, keyring, BOOTSTRAP_TOKEN)
        assert found is not None and found[1]["username"] == "akadmin"
        events = await crud.rows(tx, "events", [crud.Filter("action", "eq", "suspicious_request")])
    (event,) = events
    assert event["context"]["identifier"] == BOOTSTRAP_ID
    assert event["context"]["replaced"]["user_pk"] == mallory["pk"]
    assert squatted not in str(event["context"])
    # The bootstrap's own token, edited by the admin since, is kept as it is.
    status, _ = await api("PATCH", f"core/tokens/{BOOTSTRAP_ID}/", json={"description": "mine"})
    assert status == 200
    await restart()
    _, token = await api("GET", f"core/tokens/{BOOTSTRAP_ID}/")
    assert token["description"] == "mine"


def _form_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None, html
    return match[1]


async def test_the_portal_neither_lists_nor_deletes_managed_tokens(
    client: Any, make_user: Any, bootstrapped: store.Store
) -> None:
    erin = await make_user("erin")
    async with bootstrapped.transaction() as tx:
        for identifier, managed in (("erin-own", None), ("erin-managed", "goauthentik.io/x")):
            body = wire.core.TokenRequest(identifier=identifier, intent="api", expiring=False)
            await identity.tokens.create(
                tx, Keyring(SECRET_KEY), body, user_pk=erin["pk"], managed=managed
            )
    await log_in_as(client, bootstrapped, "erin")
    html = await (await client.get("/if/user/")).text()
    assert "erin-own" in html and "erin-managed" not in html
    deleted = await client.post(
        "/if/user/tokens/delete/",
        data={"csrf_token": _form_token(html), "identifier": "erin-managed"},
        allow_redirects=False,
    )
    assert deleted.status == 404
    async with bootstrapped.read() as tx:
        assert await crud.find(tx, "tokens", identifier="erin-managed") is not None


async def test_the_portal_refuses_reserved_identifiers(
    client: Any, make_user: Any, bootstrapped: store.Store
) -> None:
    await make_user("fay")
    await log_in_as(client, bootstrapped, "fay")
    html = await (await client.get("/if/user/")).text()
    answer = await client.post(
        "/if/user/tokens/create/",
        data={"csrf_token": _form_token(html), "identifier": "ak-fay", "intent": "api"},
    )
    assert answer.status == 200 and "reserved for the system" in await answer.text()
    async with bootstrapped.read() as tx:
        assert await crud.find(tx, "tokens", identifier="ak-fay") is None
