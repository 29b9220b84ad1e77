"""Remember me on the server-rendered flow pages (no JavaScript): the identification page's
checkbox and the user login stage's "Stay signed in?" page."""

from __future__ import annotations

import re
from typing import Any

from flowkit import make_flow

PASSWORD = "pw-remember-pages-1"
DAY = 86400


def _token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match is not None, html
    return match[1]


async def _submit(client: Any, path: str, html: str, fields: list[tuple[str, str]]) -> Any:
    # A list of pairs: a form sends a hidden field and a checkbox under the same name.
    return await client.post(
        path, data=[("csrf_token", _token(html)), *fields], allow_redirects=False
    )


async def _user(api: Any, make_user: Any, username: str) -> None:
    user = await make_user(username)
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": PASSWORD})


async def test_identification_checkbox_carries_the_choice(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    await make_flow(
        bootstrapped,
        "remember-page",
        [
            ("identification", {"enable_remember_me": True}),
            ("password", {}),
            ("user_login", {"remember_me_offset": "days=30"}),
        ],
    )
    await _user(api, make_user, "pagey")
    path = "/if/flow/remember-page/"
    for ticked, max_age in ((True, str(30 * DAY)), (False, "")):
        client.session.cookie_jar.clear()
        html = await (await client.get(path)).text()
        assert 'name="remember_me" type="checkbox"' in html and "Remember me" in html
        box = [("remember_me", "false"), *([("remember_me", "true")] if ticked else [])]
        step = await _submit(client, path, html, [("uid_field", "pagey"), *box])
        html = await step.text()
        assert 'name="password"' in html
        done = await _submit(client, path, html, [("password", PASSWORD)])
        assert done.status == 302, await done.text()  # not asked again
        assert str(done.cookies["authentik_session"]["max-age"]) == max_age


async def test_stay_signed_in_page_asks_when_the_offset_is_set(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    await make_flow(
        bootstrapped,
        "stay-page",
        [
            ("identification", {}),
            ("password", {}),
            ("user_login", {"remember_me_offset": "hours=12"}),
        ],
    )
    await _user(api, make_user, "stayer")
    path = "/if/flow/stay-page/"
    html = await (await client.get(path)).text()
    assert "remember_me" not in html  # the identification stage does not offer it here
    step = await _submit(client, path, html, [("uid_field", "stayer")])
    step = await _submit(client, path, await step.text(), [("password", PASSWORD)])
    html = await step.text()
    assert step.status == 200 and "Stay signed in?" in html
    assert 'name="remember_me" value="true"' in html and 'name="remember_me" value="false"' in html
    assert (await client.get("/if/user/", allow_redirects=False)).status == 302  # not yet in
    done = await _submit(client, path, html, [("remember_me", "true")])
    assert done.status == 302
    assert str(done.cookies["authentik_session"]["max-age"]) == str(12 * 3600)
    assert (await client.get("/if/user/", allow_redirects=False)).status == 200


async def test_stay_signed_in_page_refuses_a_forged_form(
    client: Any, bootstrapped: Any, api: Any, make_user: Any
) -> None:
    await make_flow(
        bootstrapped,
        "stay-forged",
        [
            ("identification", {}),
            ("password", {}),
            ("user_login", {"remember_me_offset": "days=1"}),
        ],
    )
    await _user(api, make_user, "forged")
    path = "/if/flow/stay-forged/"
    html = await (await client.get(path)).text()
    step = await _submit(client, path, html, [("uid_field", "forged")])
    await _submit(client, path, await step.text(), [("password", PASSWORD)])
    response = await client.post(
        path, data={"remember_me": "true", "csrf_token": "forged"}, allow_redirects=False
    )
    assert response.status == 403
    assert (await client.get("/if/user/", allow_redirects=False)).status == 302
