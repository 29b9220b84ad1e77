"""Password recovery by email link, through a real SMTP server (aiosmtpd) on this machine."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
from mailkit import Inbox

from tessera.core import app, config, store

RECOVERY = "/api/v3/flows/executor/default-recovery-flow/"
LOGIN = "/api/v3/flows/executor/default-authentication-flow/"


@pytest.fixture
async def mailing_client(
    aiohttp_client: Any, make_settings: Any, bootstrapped: store.Store, inbox: tuple[Inbox, int]
) -> Any:
    settings: config.Settings = make_settings(
        email={"host": "127.0.0.1", "port": inbox[1], "from": "sso@example.com"},
        web={"public_url": "https://sso.example.com"},
    )
    return await aiohttp_client(app.create_app(settings, bootstrapped, run_tasks=False))


async def _user(api: Any, make_user: Any) -> dict[str, Any]:
    user = await make_user("bob", email="bob@example.com")
    await api("POST", f"core/users/{user['pk']}/set_password/", json={"password": "old-password-1"})
    return user


async def _start(client: Any, uid: str) -> dict[str, Any]:
    await client.get(RECOVERY)
    return dict(await (await client.post(RECOVERY, json={"uid_field": uid})).json())


async def _resume(client: Any, token: str) -> dict[str, Any]:
    query = urllib.parse.quote(f"flow_token={token}")
    return dict(await (await client.get(f"{RECOVERY}?query={query}")).json())


async def test_recover_password_by_email_link(
    mailing_client: Any, api: Any, make_user: Any, inbox: Any
) -> None:
    await _user(api, make_user)
    body = await _start(mailing_client, "bob")
    assert body["component"] == "ak-stage-email"
    handler = inbox[0]
    assert len(handler.messages) == 1 and handler.messages[0]["To"] == "bob@example.com"
    assert "https://sso.example.com/if/flow/default-recovery-flow/?flow_token=" in str(
        handler.messages[0]
    )
    token = handler.link()
    mailing_client.session.cookie_jar.clear()  # the link is opened in another browser
    body = await _resume(mailing_client, token)
    assert body["component"] == "ak-stage-prompt"
    body = dict(
        await (
            await mailing_client.post(
                RECOVERY, json={"password": "new-password-2", "password_repeat": "new-password-2"}
            )
        ).json()
    )
    assert body["component"] == "xak-flow-redirect"
    me = await mailing_client.get("/api/v3/core/users/me/")
    assert (await me.json())["user"]["username"] == "bob"
    mailing_client.session.cookie_jar.clear()
    assert (await _resume(mailing_client, token))[
        "component"
    ] == "ak-stage-access-denied"  # single use
    await mailing_client.get(LOGIN)
    await mailing_client.post(LOGIN, json={"uid_field": "bob"})
    old = await (await mailing_client.post(LOGIN, json={"password": "old-password-1"})).json()
    assert old["component"] == "ak-stage-password"
    new = await (await mailing_client.post(LOGIN, json={"password": "new-password-2"})).json()
    assert new["component"] == "xak-flow-redirect"


async def test_unknown_account_gets_the_same_page_and_no_mail(
    mailing_client: Any, inbox: Any
) -> None:
    body = await _start(mailing_client, "nobody@example.com")
    assert body["component"] == "ak-stage-email"
    assert inbox[0].messages == []


async def test_tampered_or_foreign_token_is_refused(
    mailing_client: Any, api: Any, make_user: Any, inbox: Any
) -> None:
    await _user(api, make_user)
    await _start(mailing_client, "bob")
    token = inbox[0].link()
    mailing_client.session.cookie_jar.clear()
    assert (await _resume(mailing_client, token[:-2] + "xx"))[
        "component"
    ] == "ak-stage-access-denied"
    other_flow = "/api/v3/flows/executor/default-authentication-flow/"
    body = await (
        await mailing_client.get(f"{other_flow}?query={urllib.parse.quote('flow_token=' + token)}")
    ).json()
    assert body["component"] == "ak-stage-access-denied"


async def test_posting_the_email_page_does_not_skip_it(
    mailing_client: Any, api: Any, make_user: Any
) -> None:
    await _user(api, make_user)
    await _start(mailing_client, "bob")
    body = await (await mailing_client.post(RECOVERY, json={})).json()
    assert body["component"] == "ak-stage-email" and body["response_errors"]


async def test_reloading_the_email_page_sends_one_mail(
    mailing_client: Any, api: Any, make_user: Any, inbox: Any
) -> None:
    await _user(api, make_user)
    await _start(mailing_client, "bob")
    for _ in range(3):
        body = await (await mailing_client.get(RECOVERY)).json()
        assert body["component"] == "ak-stage-email"
    assert len(inbox[0].messages) == 1
