"""`/api/v3/admin/version/`, `system/` and `settings/`, called through authentik's own client.

Version: any authenticated caller. System and settings: superusers only (others get the client's
ForbiddenException). Settings Tessera's behaviour reads (`avatars`, `event_retention`) are stored
and take effect; a value Tessera would ignore is refused with a 400 naming the field, and nothing
is stored.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import akclientkit
import pytest
from authentik_client import exceptions
from authentik_client.api.admin_api import AdminApi
from authentik_client.models.patched_settings_request import PatchedSettingsRequest
from authentik_client.models.settings_request import SettingsRequest
from helpers import BOOTSTRAP_TOKEN

from tessera.core.api import admin
from tessera.core.identity import avatars
from tessera.core.store import system_settings

API = Any


def _admin_api(client: Any, token: str = BOOTSTRAP_TOKEN) -> AdminApi:
    return AdminApi(akclientkit.Driver(str(client.make_url("/")), token).client)


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """The client is synchronous: run it beside the test's server."""
    return await asyncio.to_thread(fn, *args, **kwargs)


async def test_version_names_the_authentik_release_tessera_follows(client: Any) -> None:
    version = await _call(_admin_api(client).admin_version_retrieve)
    assert version.version_current == admin.AUTHENTIK_VERSION == "2026.8.5"
    assert version.outdated is False and version.version_latest_valid is False


async def test_version_needs_a_caller(client: Any) -> None:
    with pytest.raises(exceptions.UnauthorizedException):
        await _call(_admin_api(client, "not-a-token").admin_version_retrieve)


async def test_system_info_leaves_out_credentials(client: Any) -> None:
    info = await _call(_admin_api(client).admin_system_retrieve)
    assert info.runtime.authentik_version == admin.AUTHENTIK_VERSION
    assert info.runtime.python_version.startswith("3.")
    assert abs(info.server_time - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    assert info.embedded_outpost_disabled is False
    assert info.embedded_outpost_host.startswith("http://")
    headers = {k.lower() for k in info.http_headers}
    assert "authorization" not in headers and BOOTSTRAP_TOKEN not in str(info.http_headers)


async def test_non_superusers_are_refused_system_and_settings_but_read_the_version(
    client: Any, make_user: Any, make_token: Any
) -> None:
    await make_user("nina")
    key = await make_token("nina", expiring=False)
    api = _admin_api(client, key)
    assert (await _call(api.admin_version_retrieve)).version_current == admin.AUTHENTIK_VERSION
    for call in (
        api.admin_system_retrieve,
        api.admin_system_create,
        api.admin_settings_retrieve,
    ):
        with pytest.raises(exceptions.ForbiddenException):
            await _call(call)
    with pytest.raises(exceptions.ForbiddenException):
        await _call(
            api.admin_settings_partial_update,
            patched_settings_request=PatchedSettingsRequest(event_retention="days=1"),
        )
    current = await _call(_admin_api(client).admin_settings_retrieve)
    assert current.event_retention == "days=365"


async def test_settings_round_trip_and_are_stored(client: Any, api: API) -> None:
    ak = _admin_api(client)
    current = await _call(ak.admin_settings_retrieve)
    assert current.avatars == "initials" and current.event_retention == "days=365"
    body = SettingsRequest.from_dict({**current.to_dict(), "event_retention": "weeks=2"})
    updated = await _call(ak.admin_settings_update, settings_request=body)
    assert updated.event_retention == "weeks=2" and updated.avatars == "initials"
    patched = await _call(
        ak.admin_settings_partial_update,
        patched_settings_request=PatchedSettingsRequest(event_retention="days=30"),
    )
    assert patched.event_retention == "days=30"
    again = await _call(ak.admin_settings_retrieve)
    assert again.to_dict() == patched.to_dict()


async def test_avatars_set_through_the_api_take_effect(api: API, make_user: Any) -> None:
    await make_user("ada", name="Ada Lovelace", attributes={"avatar": "https://img.example/a.png"})
    _, page = await api("GET", "core/users/?username=ada")
    assert page["results"][0]["avatar"].startswith("data:image/svg+xml;base64,")  # initials
    status, _ = await api("PATCH", "admin/settings/", json={"avatars": "attributes.avatar,none"})
    assert status == 200
    _, page = await api("GET", "core/users/?username=ada")
    assert page["results"][0]["avatar"] == "https://img.example/a.png"
    _, me = await api("GET", "core/users/me/")
    assert me["user"]["avatar"] == avatars.DEFAULT_PICTURE  # akadmin has no such attribute


async def test_event_retention_set_through_the_api_takes_effect(api: API) -> None:
    status, _ = await api("PATCH", "admin/settings/", json={"event_retention": "days=2"})
    assert status == 200
    await api("POST", "core/groups/", json={"name": "retained"})
    _, page = await api("GET", "events/events/?action=model_created")
    event = page["results"][0]
    lifetime = dt.datetime.fromisoformat(event["expires"]) - dt.datetime.fromisoformat(
        event["created"]
    )
    assert lifetime == dt.timedelta(days=2)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("impersonation", True),
        ("gdpr_compliance", True),
        ("default_user_change_username", False),
        ("pagination_max_page_size", 500),
        ("default_token_length", 20),
        ("reputation_lower_limit", -3),
        ("footer_links", [{"name": "Help", "href": "https://help.example.com"}]),
        ("base_url", "https://elsewhere.example.com"),
        ("flags", {**dict.fromkeys(("flows_refresh_others", "flows_continuous_login"), True)}),
    ],
)
async def test_a_setting_tessera_would_ignore_is_refused_naming_it(
    api: API, field: str, value: Any
) -> None:
    if field == "flags":
        value = {
            "core_default_app_access": True,
            "enterprise_audit_include_expanded_diff": False,
            **value,
        }
    sent = {field: value, "event_retention": "days=9"}
    status, body = await api("PATCH", "admin/settings/", json=sent)
    assert status == 400 and list(body) == [field], body
    _, current = await api("GET", "admin/settings/")
    assert current["event_retention"] == "days=365"  # nothing of the refused request was stored


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("avatars", "gravatar,initials"),
        ("avatars", "initials,bogus"),
        ("event_retention", "forever"),
        ("reputation_lower_limit", 3),
        ("unknown_setting", 1),
    ],
)
async def test_invalid_settings_are_400(api: API, field: str, value: Any) -> None:
    status, body = await api("PATCH", "admin/settings/", json={field: value})
    assert status == 400 and field in body, body


async def test_a_stored_value_todays_rules_refuse_reads_as_the_default(
    api: API, bootstrapped: Any
) -> None:
    async with bootstrapped.transaction() as tx:
        await system_settings.save(tx, {"avatars": "gravatar", "event_retention": "days=3"})
    status, current = await api("GET", "admin/settings/")
    assert status == 200
    assert current["avatars"] == "initials" and current["event_retention"] == "days=3"
