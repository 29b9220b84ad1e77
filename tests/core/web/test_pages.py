"""The server-rendered flow pages and portal, driven like a browser without JavaScript."""

from __future__ import annotations

import re
from typing import Any

import oauth2kit
from helpers import BOOTSTRAP_PASSWORD

LOGIN = "/if/flow/default-authentication-flow/"


def _token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None, html
    return match[1]


async def _submit(client: Any, path: str, html: str, **fields: str) -> Any:
    return await client.post(
        path, data={"csrf_token": _token(html), **fields}, allow_redirects=False
    )


async def test_log_in_through_the_pages_and_see_the_portal(client: Any, api: Any) -> None:
    await api(
        "POST",
        "core/applications/",
        json={"name": "Wiki", "slug": "wiki", "meta_launch_url": "https://wiki.example.com/"},
    )
    await api("POST", "core/applications/", json={"name": "Hidden", "slug": "hidden"})
    await api(
        "POST",
        "core/applications/",
        json={
            "name": "Concealed",
            "slug": "concealed",
            "meta_launch_url": "https://concealed.example.com/",
            "meta_hide": True,
        },
    )
    await oauth2kit.make_provider(
        api,
        "served",
        redirect_uris=[{"matching_mode": "strict", "url": "https://app.example.com/cb"}],
    )
    portal = await client.get("/if/user/", allow_redirects=False)
    assert portal.status == 302 and portal.headers["Location"].startswith(LOGIN + "?next=")
    page = await client.get(portal.headers["Location"])
    html = await page.text()
    assert page.status == 200 and 'name="uid_field"' in html
    assert (
        page.headers["X-Frame-Options"] == "DENY"
        and "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    )
    step = await _submit(client, page.url.path_qs, html, uid_field="akadmin")
    html = await step.text()
    assert 'name="password"' in html and "akadmin" in html
    wrong = await _submit(client, page.url.path_qs, html, password="nope")
    html = await wrong.text()
    assert "Invalid password" in html
    done = await _submit(client, page.url.path_qs, html, password=BOOTSTRAP_PASSWORD)
    assert done.status == 302 and done.headers["Location"] == "/if/user/"
    portal = await client.get("/if/user/")
    text = await portal.text()
    assert "akadmin" in text and "https://wiki.example.com/" in text and "Hidden" not in text
    assert "concealed.example.com" not in text  # meta_hide: not on the user's page
    assert 'href="https://app.example.com"' in text  # the launch URL its provider suggests


async def test_form_without_the_session_token_is_refused(client: Any) -> None:
    await client.get(LOGIN)
    response = await client.post(LOGIN, data={"uid_field": "akadmin"}, allow_redirects=False)
    assert response.status == 403
    response = await client.post(
        LOGIN, data={"uid_field": "akadmin", "csrf_token": "forged"}, allow_redirects=False
    )
    assert response.status == 403


async def test_login_csrf_token_of_another_session_is_refused(client: Any) -> None:
    attacker_page = await (await client.get(LOGIN)).text()
    client.session.cookie_jar.clear()
    await client.get(LOGIN)
    response = await _submit(client, LOGIN, attacker_page, uid_field="akadmin")
    assert response.status == 403


async def test_user_input_is_escaped(client: Any) -> None:
    html = await (await client.get(LOGIN)).text()
    step = await _submit(client, LOGIN, html, uid_field="<script>alert(1)</script>")
    text = await step.text()
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;" in text


async def test_open_redirect_through_next_is_refused(client: Any) -> None:
    page = await client.get(LOGIN + "?next=https://evil.example.com/")
    html = await page.text()
    html = await (await _submit(client, page.url.path_qs, html, uid_field="akadmin")).text()
    done = await _submit(client, page.url.path_qs, html, password=BOOTSTRAP_PASSWORD)
    assert done.headers["Location"] == "/if/user/"


async def test_unknown_flow_page_is_404(client: Any) -> None:
    assert (await client.get("/if/flow/nope/")).status == 404


async def test_logout_page_ends_the_session(client: Any) -> None:
    html = await (await client.get(LOGIN)).text()
    html = await (await _submit(client, LOGIN, html, uid_field="akadmin")).text()
    await _submit(client, LOGIN, html, password=BOOTSTRAP_PASSWORD)
    assert (await client.get("/api/v3/core/users/me/")).status == 200
    out = await client.get("/if/flow/default-invalidation-flow/", allow_redirects=False)
    assert out.status == 302
    assert (await client.get("/api/v3/core/users/me/")).status == 401


async def _login_pages(client: Any, username: str, password: str) -> None:
    html = await (await client.get(LOGIN)).text()
    html = await (await _submit(client, LOGIN, html, uid_field=username)).text()
    done = await _submit(client, LOGIN, html, password=password)
    assert done.status == 302


async def test_portal_lists_and_ends_own_sessions(client: Any, api: Any, make_user: Any) -> None:
    import aiohttp

    user = await make_user("multi")
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": "pw-multi-123"})
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=str(client.make_url("/")), cookie_jar=jar) as other:
        await _login_pages(other, "multi", "pw-multi-123")
        await _login_pages(client, "multi", "pw-multi-123")
        html = await (await client.get("/if/user/")).text()
        assert html.count("End this session") == 1 and "(this session)" in html
        assert (await other.get("/api/v3/core/users/me/")).status == 200
        forged = await client.post(
            "/if/user/sessions/revoke/", data={"session": "others", "csrf_token": "x"}
        )
        assert forged.status == 403
        done = await client.post(
            "/if/user/sessions/revoke/",
            data={"session": "others", "csrf_token": _token(html)},
            allow_redirects=False,
        )
        assert done.status == 302
        assert (await other.get("/api/v3/core/users/me/")).status == 401
        assert (await client.get("/api/v3/core/users/me/")).status == 200


async def test_cannot_end_another_users_session(client: Any, api: Any, make_user: Any) -> None:
    import aiohttp

    user = await make_user("victim")
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": "pw-victim-123"})
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(base_url=str(client.make_url("/")), cookie_jar=jar) as victim:
        await _login_pages(victim, "victim", "pw-victim-123")
        victim_key = next(c.value for c in jar if c.key == "authentik_session")
        await _login_pages(client, "akadmin", BOOTSTRAP_PASSWORD)
        html = await (await client.get("/if/user/")).text()
        from tessera.core import crypto

        digest = crypto.secrets.sha256_hex(victim_key)
        await client.post(
            "/if/user/sessions/revoke/", data={"session": digest, "csrf_token": _token(html)}
        )
        assert (await victim.get("/api/v3/core/users/me/")).status == 200


async def test_cancel_starts_the_login_again(client: Any) -> None:
    html = await (await client.get(LOGIN)).text()
    step = await _submit(client, LOGIN, html, uid_field="akadmin")
    assert 'name="password"' in await step.text()
    again = await client.get("/flows/-/cancel/")
    assert 'name="uid_field"' in await again.text()


async def test_portal_lists_and_removes_own_authenticators_only(
    client: Any, api: Any, make_user: Any, bootstrapped: Any
) -> None:
    import uuid

    from tessera.core.identity import util
    from tessera.core.store import crud

    owner = await make_user("owner")
    other = await make_user("other")
    await api("POST", f"core/users/{owner['pk']}/set_password/", json={"password": "pw-owner-123"})
    await _login_pages(client, "owner", "pw-owner-123")  # before any device: no code asked

    async def device(user_pk: int, kind: str, name: str) -> str:
        async with bootstrapped.transaction() as tx:
            row = await crud.insert(
                tx,
                "authenticator_devices",
                {
                    "pk": str(uuid.uuid4()),
                    "user_pk": user_pk,
                    "kind": kind,
                    "name": name,
                    "confirmed": True,
                    "data": {},
                    "created": util.now(),
                },
            )
        return str(row["pk"])

    mine = await device(owner["pk"], "totp", "Phone app")
    theirs = await device(other["pk"], "static", "Their codes")
    html = await (await client.get("/if/user/")).text()
    assert "Phone app" in html and "Their codes" not in html
    forged = await client.post("/if/user/devices/remove/", data={"device": mine, "csrf_token": "x"})
    assert forged.status == 403
    stolen = await client.post(
        "/if/user/devices/remove/", data={"device": theirs, "csrf_token": _token(html)}
    )
    assert stolen.status == 404
    done = await client.post(
        "/if/user/devices/remove/",
        data={"device": mine, "csrf_token": _token(html)},
        allow_redirects=False,
    )
    assert done.status == 302
    async with bootstrapped.read() as tx:
        assert await crud.find(tx, "authenticator_devices", pk=mine) is None
        assert await crud.find(tx, "authenticator_devices", pk=theirs) is not None
    html = await (await client.get("/if/user/")).text()
    assert "Phone app" not in html and "No authenticators yet" in html
    _, page = await api("GET", "events/events/?action=model_deleted")
    (event,) = [e for e in page["results"] if e["context"]["model"]["pk"] == mine]
    assert event["user"]["username"] == "owner"


async def test_portal_creates_shows_once_and_deletes_own_tokens(
    client: Any, api: Any, make_user: Any, make_token: Any
) -> None:
    user = await make_user("tokens")
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": "pw-tokens-1"})
    await _login_pages(client, "tokens", "pw-tokens-1")
    html = await (await client.get("/if/user/")).text()
    created = await client.post(
        "/if/user/tokens/create/",
        data={
            "csrf_token": _token(html),
            "identifier": "grafana-app-password",
            "intent": "app_password",
            "description": "for Grafana",
            "expires_days": "30",
        },
    )
    page = await created.text()
    assert created.status == 200
    match = re.search(r'<code id="new-token-key">([^<]+)</code>', page)
    assert match is not None
    _, listed = await api("GET", "core/tokens/?identifier=grafana-app-password")
    (token,) = listed["results"]
    assert token["intent"] == "app_password" and token["user"] == user["pk"]
    _, key = await api("GET", "core/tokens/grafana-app-password/view_key/")
    assert key["key"] == match[1]
    again = await (await client.get("/if/user/")).text()
    assert match[1] not in again  # shown once
    # refused: a recovery token, a bad name, no form token
    for data in (
        {"identifier": "x1", "intent": "recovery"},
        {"identifier": "bad name!", "intent": "api"},
        {"identifier": "x2", "intent": "api", "expires_days": "-3"},
    ):
        bad = await client.post(
            "/if/user/tokens/create/", data={"csrf_token": _token(html), **data}
        )
        assert bad.status == 200 and 'class="error"' in await bad.text()
    forged = await client.post(
        "/if/user/tokens/create/", data={"identifier": "x3", "intent": "api", "csrf_token": "x"}
    )
    assert forged.status == 403
    _, count = await api("GET", "core/tokens/?user=" + str(user["pk"]))
    assert count["pagination"]["count"] == 1
    # another user's token cannot be deleted from here
    await make_token("akadmin")
    _, admins = await api("GET", "core/tokens/?user=1&intent=api")
    theirs = admins["results"][0]["identifier"]
    stolen = await client.post(
        "/if/user/tokens/delete/", data={"identifier": theirs, "csrf_token": _token(html)}
    )
    assert stolen.status == 404
    done = await client.post(
        "/if/user/tokens/delete/",
        data={"identifier": "grafana-app-password", "csrf_token": _token(html)},
        allow_redirects=False,
    )
    assert done.status == 302
    _, after = await api("GET", "core/tokens/?identifier=grafana-app-password")
    assert after["pagination"]["count"] == 0
    _, still = await api("GET", f"core/tokens/?identifier={theirs}")
    assert still["pagination"]["count"] == 1


async def _portal_as_akadmin(client: Any) -> str:
    page = await client.get(LOGIN)
    step = await _submit(client, LOGIN, await page.text(), uid_field="akadmin")
    await _submit(client, LOGIN, await step.text(), password=BOOTSTRAP_PASSWORD)
    return str(await (await client.get("/if/user/")).text())


async def _configure_links(client: Any, html: str) -> dict[str, str]:
    """The portal's settings links: label -> where their configure URL leads."""
    found = re.findall(r'<li><a href="(/flows/-/configure/[^"]+)">([^<]+)</a></li>', html)
    out = {}
    for url, label in found:
        response = await client.get(url, allow_redirects=False)
        assert response.status == 302, (label, response.status)
        out[label] = response.headers["Location"]
    return out


async def _stage(api: Any, kind: str) -> dict[str, Any]:
    _, found = await api("GET", f"stages/{kind}/")
    (stage,) = found["results"]
    return dict(stage)


async def test_portal_settings_links_are_the_user_settings_list(client: Any, api: Any) -> None:
    """The links are the entries of /api/v3/stages/all/user_settings/ (authentik's configure
    URLs), in its order, and each leads into its stage's configure flow."""
    html = await _portal_as_akadmin(client)
    _, listed = await api("GET", "stages/all/user_settings/")
    hrefs = re.findall(r'<li><a href="(/flows/-/configure/[^"]+)">', html)
    assert hrefs == [s["configure_url"] for s in listed]
    assert await _configure_links(client, html) == {
        "Change password": "/if/flow/default-password-change/",
        "Add an authenticator app (TOTP)": "/if/flow/default-authenticator-totp-setup/",
        "Add a passkey or security key (WebAuthn)": (
            "/if/flow/default-authenticator-webauthn-setup/"
        ),
        "Create recovery codes": "/if/flow/default-authenticator-static-setup/",
    }
    assert "/if/flow/default-password-change/" not in html  # no hard-coded link any more


async def test_portal_change_password_link_follows_the_password_stage(
    client: Any, api: Any
) -> None:
    password = await _stage(api, "password")
    status, _ = await api(
        "PATCH", f"stages/password/{password['pk']}/", json={"configure_flow": None}
    )
    assert status == 200
    html = await _portal_as_akadmin(client)
    assert "Change password" not in html and "Add an authenticator app" in html
    # Pointed at a flow that requires someone unauthenticated: not offered either.
    status, mine = await api(
        "POST",
        "flows/instances/",
        json={
            "name": "Mine",
            "slug": "mine",
            "title": "Mine",
            "designation": "stage_configuration",
            "authentication": "require_unauthenticated",
        },
    )
    assert status == 201
    status, _ = await api(
        "PATCH", f"stages/password/{password['pk']}/", json={"configure_flow": mine["pk"]}
    )
    assert status == 200
    assert "Change password" not in await (await client.get("/if/user/")).text()
    await api("PATCH", "flows/instances/mine/", json={"authentication": "require_authenticated"})
    html = await (await client.get("/if/user/")).text()
    assert (await _configure_links(client, html))["Change password"] == "/if/flow/mine/"


async def test_portal_add_links_follow_the_setup_stages_configure_flow(
    client: Any, api: Any
) -> None:
    html = await _portal_as_akadmin(client)
    default = await _stage(api, "authenticator/totp")
    _, setup = await api("GET", "flows/instances/default-authenticator-totp-setup/")
    assert default["configure_flow"] == setup["pk"]
    # An admin points the TOTP stage at another flow: the link follows.
    status, flow = await api(
        "POST",
        "flows/instances/",
        json={
            "name": "Company TOTP",
            "slug": "company-totp-enrolment",
            "title": "Company TOTP",
            "designation": "stage_configuration",
        },
    )
    assert status == 201
    status, _ = await api(
        "PATCH",
        f"stages/authenticator/totp/{default['pk']}/",
        json={"configure_flow": flow["pk"]},
    )
    assert status == 200
    html = await (await client.get("/if/user/")).text()
    links = await _configure_links(client, html)
    assert links["Add an authenticator app (TOTP)"] == "/if/flow/company-totp-enrolment/"
    # Without a configure_flow a setup stage offers no link (as in authentik).
    static = await _stage(api, "authenticator/static")
    await api(
        "PATCH", f"stages/authenticator/static/{static['pk']}/", json={"configure_flow": None}
    )
    html = await (await client.get("/if/user/")).text()
    assert "Create recovery codes" not in html and "Add a passkey" in html


async def test_portal_fills_the_launch_urls_placeholders_for_the_user(
    client: Any, api: Any
) -> None:
    """authentik's `%(username)s` in a launch URL, filled for whoever opens the portal; a URL that
    names a field no user may show (the password) is shown as it is."""
    wiki = "https://wiki.example.com/u/%(username)s/"
    await api(
        "POST",
        "core/applications/",
        json={"name": "Wiki", "slug": "wiki", "meta_launch_url": wiki},
    )
    leak = "https://leak.example.com/%(password)s"
    await api(
        "POST",
        "core/applications/",
        json={"name": "Leak", "slug": "leak", "meta_launch_url": leak},
    )
    await _login_pages(client, "akadmin", BOOTSTRAP_PASSWORD)
    text = await (await client.get("/if/user/")).text()
    assert 'href="https://wiki.example.com/u/akadmin/"' in text
    assert 'href="https://leak.example.com/%(password)s"' in text
    assert "argon2" not in text
