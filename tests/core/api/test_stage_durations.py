"""Duration settings in authentik's string form (`hours=2;minutes=30`) on the stage APIs:
user_login's `session_duration` and `remember_me_offset`, consent's `consent_expire_in`,
authenticator_validate's `last_auth_threshold`; plain
integers (Tessera's earlier form) are still accepted as seconds, in requests and in stored rows."""

from __future__ import annotations

from typing import Any

import pytest
from flowkit import make_flow

from tessera.core.store import crud

API = Any
BAD = [
    "1h",
    "hours",
    "hours=",
    "=5",
    "hours=-1",
    "hours=1.5.5",
    "fortnights=2",
    "seconds=nan",
    "seconds=inf",
    "seconds=1e5",
    "hours=1;hours=2",
    "hours=\u0661",  # an Arabic-Indic digit, which Python's float() would take
    "",
    ";",
    "weeks=999999999999",  # beyond timedelta's range: must not become a 500
    "days=4000",  # beyond every bound (366 days for sessions, 3660 for consent)
    "x" * 200,
    -5,
    True,
    1e300,
    None,
    ["hours=1"],
    {"hours": 1},
]


async def test_user_login_durations_round_trip(api: API) -> None:
    status, stage = await api("POST", "stages/user_login/", json={"name": "ul-defaults"})
    assert status == 201, stage
    assert stage["session_duration"] == "seconds=0" and stage["remember_me_offset"] == "seconds=0"
    body = {"name": "ul", "session_duration": "hours=2;minutes=30", "remember_me_offset": "days=30"}
    status, stage = await api("POST", "stages/user_login/", json=body)
    assert status == 201, stage
    assert stage["session_duration"] == "hours=2;minutes=30"
    assert stage["remember_me_offset"] == "days=30"
    status, read = await api("GET", f"stages/user_login/{stage['pk']}/")
    assert status == 200 and read["session_duration"] == "hours=2;minutes=30"
    # a PATCH changes only what it names; blanks and capitals come back in the normal form
    status, patched = await api(
        "PATCH",
        f"stages/user_login/{stage['pk']}/",
        json={"session_duration": "Hours=1.5; seconds=0"},
    )
    assert status == 200, patched
    assert patched["session_duration"] == "hours=1.5;seconds=0"
    assert patched["remember_me_offset"] == "days=30"
    status, body = await api(
        "PATCH", f"stages/user_login/{stage['pk']}/", json={"remember_me_offset": "days=367"}
    )
    assert status == 400 and "at most 366 days" in body["remember_me_offset"][0], body


async def test_integers_are_still_accepted_as_seconds(api: API) -> None:
    status, stage = await api(
        "POST",
        "stages/user_login/",
        json={"name": "ul-int", "session_duration": 3600, "remember_me_offset": 0},
    )
    assert status == 201, stage
    assert (
        stage["session_duration"] == "seconds=3600" and stage["remember_me_offset"] == "seconds=0"
    )
    status, stage = await api(
        "POST",
        "stages/consent/",
        json={"name": "c-int", "mode": "expiring", "consent_expire_in": 60},
    )
    assert status == 201 and stage["consent_expire_in"] == "seconds=60", stage


async def test_consent_expire_in_round_trip(api: API) -> None:
    status, stage = await api("POST", "stages/consent/", json={"name": "c-default"})
    assert status == 201 and stage["consent_expire_in"] == "weeks=4", stage
    status, stage = await api(
        "POST",
        "stages/consent/",
        json={"name": "c", "mode": "expiring", "consent_expire_in": "days=30;hours=12"},
    )
    assert status == 201 and stage["consent_expire_in"] == "days=30;hours=12", stage
    status, body = await api(
        "PATCH", f"stages/consent/{stage['pk']}/", json={"consent_expire_in": "seconds=30"}
    )
    assert status == 400 and "consent_expire_in" in body  # at least a minute, as before


async def test_last_auth_threshold_round_trip(api: API) -> None:
    path = "stages/authenticator/validate/"
    status, stage = await api("POST", path, json={"name": "v-default"})
    assert status == 201 and stage["last_auth_threshold"] == "seconds=0", stage
    status, stage = await api("POST", path, json={"name": "v", "last_auth_threshold": "hours=1"})
    assert status == 201 and stage["last_auth_threshold"] == "hours=1", stage
    status, stage = await api("PATCH", f"{path}{stage['pk']}/", json={"last_auth_threshold": 300})
    assert status == 200 and stage["last_auth_threshold"] == "seconds=300", stage


@pytest.mark.parametrize("bad", BAD)
async def test_bad_durations_are_field_errors(api: API, bad: Any) -> None:
    for path, field in (
        ("stages/user_login/", "session_duration"),
        ("stages/user_login/", "remember_me_offset"),
        ("stages/consent/", "consent_expire_in"),
        ("stages/authenticator/validate/", "last_auth_threshold"),
    ):
        status, body = await api("POST", path, json={"name": "bad", field: bad})
        assert status == 400, (field, bad, body)
        assert list(body) == [field] and body[field] and isinstance(body[field][0], str), body


async def test_oauth2_validity_beyond_timedelta_is_a_400(api: API) -> None:
    _, flow = await api("GET", "flows/instances/default-provider-authorization-implicit-consent/")
    for bad in ("weeks=999999999", "days=999999999;days=999999999", "hours=1;hours=2"):
        status, body = await api(
            "POST",
            "providers/oauth2/",
            json={"name": "huge", "authorization_flow": flow["pk"], "access_token_validity": bad},
        )
        assert status == 400 and "access_token_validity" in body, (bad, body)


async def test_stored_integers_read_as_duration_strings(
    client: Any, api: API, bootstrapped: Any, admin_headers: dict[str, str]
) -> None:
    """Rows written by earlier versions keep integers in their JSON; they are shown, exported
    and patched in today's form without a migration."""
    await make_flow(
        bootstrapped,
        "old-durations",
        [("user_login", {"session_duration": 7200}), ("consent", {"consent_expire_in": 86400})],
    )
    async with bootstrapped.read() as tx:
        rows = {
            r["kind"]: r for r in await crud.all_rows(tx, "stages") if "old-durations" in r["name"]
        }
    status, login = await api("GET", f"stages/user_login/{rows['user_login']['pk']}/")
    assert status == 200 and login["session_duration"] == "seconds=7200"
    assert login["remember_me_offset"] == "seconds=0"
    status, consent = await api("GET", f"stages/consent/{rows['consent']['pk']}/")
    assert status == 200 and consent["consent_expire_in"] == "seconds=86400"
    status, patched = await api(
        "PATCH", f"stages/user_login/{rows['user_login']['pk']}/", json={"name": "renamed-old"}
    )
    assert status == 200 and patched["session_duration"] == "seconds=7200"
    async with bootstrapped.read() as tx:
        row = await crud.find(tx, "stages", pk=rows["user_login"]["pk"])
    assert row is not None and row["config"]["session_duration"] == "seconds=7200"
    export = await client.get(
        "/api/v3/flows/instances/old-durations/export/", headers=admin_headers
    )
    text = await export.text()
    assert export.status == 200 and "consent_expire_in: seconds=86400" in text, text
