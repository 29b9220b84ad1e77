"""Audit events: every API write is recorded with user, client IP, time and the changed fields."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tessera.core import wire

API = Any


async def test_create_update_delete_are_recorded(api: API) -> None:
    _, app = await api("POST", "core/applications/", json={"name": "Wiki", "slug": "wiki"})
    await api("PATCH", "core/applications/wiki/", json={"name": "Team wiki"})
    await api("DELETE", "core/applications/wiki/")
    status, body = await api("GET", "events/events/?ordering=created")
    actions = [e["action"] for e in body["results"]]
    assert actions == ["model_created", "model_updated", "model_deleted"]
    created, updated, _ = body["results"]
    assert created["user"]["username"] == "akadmin"
    assert created["client_ip"] == "127.0.0.1"
    assert created["context"]["model"] == {
        "app": "authentik_core",
        "model_name": "application",
        "pk": app["pk"],
        "name": "Wiki",
    }
    assert updated["context"]["diff"] == {
        "name": {"previous_value": "Wiki", "new_value": "Team wiki"}
    }


async def test_failed_write_leaves_no_event_and_no_object(api: API) -> None:
    status, _ = await api(
        "POST",
        "core/users/",
        json={"username": "x", "groups": ["00000000-0000-4000-8000-000000000009"]},
    )
    assert status == 400
    status, body = await api("GET", "events/events/")
    assert body["pagination"]["count"] == 0


async def test_secret_looking_attributes_are_redacted_in_events(api: API) -> None:
    secret = "canary-s3cret-value"
    await api(
        "POST",
        "core/users/",
        json={"username": "svc", "attributes": {"api_token": secret, "team": "a"}},
    )
    user_status, users = await api("GET", "core/users/?username=svc")
    await api(
        "PATCH",
        f"core/users/{users['results'][0]['pk']}/",
        json={"attributes": {"password": secret}},
    )
    _, body = await api("GET", "events/events/")
    assert secret not in str(body)


async def test_events_are_read_only_and_filterable(api: API) -> None:
    await api("POST", "core/groups/", json={"name": "g"})
    _, body = await api("GET", "events/events/?action=model_created")
    pk = body["results"][0]["pk"]
    status, _ = await api("DELETE", f"events/events/{pk}/")
    assert status == 405
    status, _ = await api("PATCH", f"events/events/{pk}/", json={"action": "x"})
    assert status == 405


async def test_every_action_recorded_reads_as_one_of_authentiks(
    api: API, bootstrapped: Any
) -> None:
    """A row under a name outside authentik's vocabulary (none is written today) reads as
    authentik's custom action instead of breaking a client's parse of the whole page."""
    await api("POST", "core/groups/", json={"name": "audited"})
    _, page = await api("GET", "events/events/?action=model_created")
    pk = page["results"][0]["pk"]
    assert page["results"][0]["action"] == "model_created"
    async with bootstrapped.transaction() as tx:
        await tx.conn.execute(
            sa.text("UPDATE events SET action = 'tessera_only' WHERE pk = :pk"), {"pk": pk}
        )
    status, event = await api("GET", f"events/events/{pk}/")
    assert status == 200 and event["action"] == "custom_"
    _, page = await api("GET", "events/events/?page_size=100")
    assert {e["action"] for e in page["results"]} <= set(wire.events.ACTIONS)
