"""`/flows/-/configure/<stage uuid>/` (authentik's user settings `configure_url`): a logged-in
user whom the user settings list offers the stage is sent into its configure flow; anyone else is
sent to log in, and a stage not offered (unknown, malformed, no configure flow, a flow the user
may not start) is not found. The target is always our own `/if/flow/<slug>/`."""

from __future__ import annotations

import re
import urllib.parse
import uuid
from typing import Any

from flowkit import log_in_as
from helpers import BOOTSTRAP_PASSWORD

LOGIN = "/if/flow/default-authentication-flow/"
CHANGE = "/if/flow/default-password-change/"


async def _log_in(client: Any, bootstrapped: Any, make_user: Any, username: str) -> None:
    """A browser session for a new plain user (through a recovery link, as the CLI makes)."""
    await make_user(username)
    await log_in_as(client, bootstrapped, username)


async def _stage(api: Any, kind: str) -> dict[str, Any]:
    _, found = await api("GET", f"stages/{kind}/")
    (stage,) = found["results"]
    return dict(stage)


def _url(pk: str) -> str:
    return f"/flows/-/configure/{pk}/"


async def _get(client: Any, path: str) -> Any:
    return await client.get(path, allow_redirects=False)


async def test_logged_in_user_is_sent_into_the_password_change_flow(
    client: Any, api: Any, bootstrapped: Any, make_user: Any
) -> None:
    await _log_in(client, bootstrapped, make_user, "alice")
    password = await _stage(api, "password")
    response = await _get(client, _url(password["pk"]))
    assert response.status == 302 and response.headers["Location"] == CHANGE
    assert response.headers["X-Frame-Options"] == "DENY"
    page = await client.get(CHANGE)
    html = await page.text()
    assert page.status == 200 and 'name="password_repeat"' in html


async def test_every_listed_configure_url_leads_into_its_flow(
    client: Any, api: Any, bootstrapped: Any, make_user: Any
) -> None:
    await _log_in(client, bootstrapped, make_user, "bob")
    listed = await (await client.get("/api/v3/stages/all/user_settings/")).json()
    targets = []
    for setting in listed:
        response = await _get(client, setting["configure_url"])
        assert response.status == 302
        targets.append(response.headers["Location"])
    assert targets == [
        CHANGE,
        "/if/flow/default-authenticator-totp-setup/",
        "/if/flow/default-authenticator-webauthn-setup/",
        "/if/flow/default-authenticator-static-setup/",
    ]


async def test_next_is_passed_on_only_as_a_path_on_this_server(
    client: Any, api: Any, bootstrapped: Any, make_user: Any
) -> None:
    await _log_in(client, bootstrapped, make_user, "carol")
    url = _url((await _stage(api, "password"))["pk"])
    response = await _get(client, url + "?next=/if/user/%23settings")
    assert response.headers["Location"] == CHANGE + "?next=%2Fif%2Fuser%2F%23settings"
    for attack in ("https://evil.example.com/", "//evil.example.com/", "/\\evil.example.com"):
        query = urllib.parse.urlencode({"next": attack})
        response = await _get(client, f"{url}?{query}")
        assert response.status == 302
        assert response.headers["Location"] == CHANGE + "?next=%2Fif%2Fuser%2F", attack


async def test_anonymous_is_sent_to_log_in_and_comes_back(client: Any, api: Any) -> None:
    url = _url((await _stage(api, "password"))["pk"])
    response = await _get(client, url)
    assert response.status == 302
    assert response.headers["Location"] == LOGIN + "?next=" + urllib.parse.quote(url, safe="")
    # Logging in through the pages returns to the configure URL, which then lets them in.
    page = await client.get(response.headers["Location"])
    path, html = page.url.path_qs, await page.text()
    for field in ({"uid_field": "akadmin"}, {"password": BOOTSTRAP_PASSWORD}):
        token = re.search(r'name="csrf_token" value="([^"]+)"', html)
        assert token is not None
        step = await client.post(
            path, data={"csrf_token": token[1], **field}, allow_redirects=False
        )
        html = await step.text()
    assert step.status == 302 and step.headers["Location"] == url
    assert (await _get(client, url)).headers["Location"] == CHANGE


async def test_anonymous_with_a_forged_session_cookie_is_sent_to_log_in(
    client: Any, api: Any
) -> None:
    url = _url((await _stage(api, "password"))["pk"])
    response = await client.get(
        url, headers={"Cookie": "authentik_session=forged"}, allow_redirects=False
    )
    assert response.status == 302 and response.headers["Location"].startswith(LOGIN + "?next=")


async def test_unknown_stage_is_not_found(client: Any, bootstrapped: Any, make_user: Any) -> None:
    await _log_in(client, bootstrapped, make_user, "dave")
    response = await _get(client, _url(str(uuid.uuid4())))
    assert response.status == 404 and response.content_type == "text/html"
    assert "Location" not in response.headers


async def test_malformed_stage_uuid_is_not_found_never_an_error(
    client: Any, api: Any, bootstrapped: Any, make_user: Any
) -> None:
    await _log_in(client, bootstrapped, make_user, "erin")
    pk = (await _stage(api, "password"))["pk"]
    for bad in (
        "not-a-uuid",
        "%2e%2e",
        "..%2F..%2Fapi",
        "%00",
        "'%20OR%201=1--",
        "x" * 4000,
        pk.upper(),  # authentik's route takes the canonical (lower-case) form only
        pk.replace("-", ""),
        "%7B" + pk + "%7D",
        "urn:uuid:" + pk,
    ):
        response = await _get(client, f"/flows/-/configure/{bad}/")
        assert response.status == 404, bad
        assert "Location" not in response.headers


async def test_stage_without_configure_flow_is_not_found(
    client: Any, api: Any, bootstrapped: Any, make_user: Any
) -> None:
    await _log_in(client, bootstrapped, make_user, "frank")
    password = await _stage(api, "password")
    await api("PATCH", f"stages/password/{password['pk']}/", json={"configure_flow": None})
    assert (await _get(client, _url(password["pk"]))).status == 404
    # A flow that does not exist, and a stage kind that configures nothing: not found either.
    await api("PATCH", f"stages/password/{password['pk']}/", json={"configure_flow": "nowhere"})
    assert (await _get(client, _url(password["pk"]))).status == 404
    _, found = await api("GET", "stages/identification/")
    identification = found["results"][0]
    assert (await _get(client, _url(identification["pk"]))).status == 404


async def test_a_flow_the_user_may_not_start_is_refused_as_the_list_hides_it(
    client: Any, api: Any, bootstrapped: Any, make_user: Any, make_group: Any
) -> None:
    """The configure flow bound to a group: a non-member gets 404 (and no list entry); a member
    gets in. A superuser-only flow: the plain user gets 404."""
    await _log_in(client, bootstrapped, make_user, "grace")
    totp = await _stage(api, "authenticator/totp")
    _, flow = await api("GET", "flows/instances/default-authenticator-totp-setup/")
    group = await make_group("totp-users")
    status, _ = await api(
        "POST", "policies/bindings/", json={"target": flow["pk"], "group": group["pk"], "order": 0}
    )
    assert status == 201
    assert (await _get(client, _url(totp["pk"]))).status == 404
    listed = await (await client.get("/api/v3/stages/all/user_settings/")).json()
    assert totp["pk"] not in [s["object_uid"] for s in listed]
    _, users = await api("GET", "core/users/?username=grace")
    await api(
        "POST", f"core/groups/{group['pk']}/add_user/", json={"pk": users["results"][0]["pk"]}
    )
    response = await _get(client, _url(totp["pk"]))
    assert response.status == 302
    assert response.headers["Location"] == "/if/flow/default-authenticator-totp-setup/"
    password = await _stage(api, "password")
    status, _ = await api(
        "PATCH",
        "flows/instances/default-password-change/",
        json={"authentication": "require_superuser"},
    )
    assert status == 200
    assert (await _get(client, _url(password["pk"]))).status == 404


async def test_only_get(client: Any, api: Any, bootstrapped: Any, make_user: Any) -> None:
    await _log_in(client, bootstrapped, make_user, "heidi")
    url = _url((await _stage(api, "password"))["pk"])
    assert (await client.post(url, allow_redirects=False)).status in (403, 405)
