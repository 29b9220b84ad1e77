"""Password recovery by email link, through a real SMTP server (aiosmtpd) on this machine."""

from __future__ import annotations

import socket
import time
import urllib.parse
from typing import Any

import pytest
from flowkit import make_flow
from mailkit import Inbox

from tessera.core import app, config, store
from tessera.core.stages import email as email_stage

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
    return await aiohttp_client(app.create_app(settings, bootstrapped, run_tasks=True))


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
    await handler.arrived(1)
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
    await inbox[0].arrived(0)


async def test_tampered_or_foreign_token_is_refused(
    mailing_client: Any, api: Any, make_user: Any, inbox: Any
) -> None:
    await _user(api, make_user)
    await _start(mailing_client, "bob")
    await inbox[0].arrived(1)
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
    await inbox[0].arrived(1)


async def test_one_account_gets_at_most_a_few_mails_an_hour(
    mailing_client: Any, api: Any, make_user: Any, inbox: Any
) -> None:
    await _user(api, make_user)
    for _ in range(email_stage.Config().recovery_max_attempts + 3):
        mailing_client.session.cookie_jar.clear()  # a new browser each time
        assert (await _start(mailing_client, "bob"))["component"] == "ak-stage-email"
    await inbox[0].arrived(email_stage.Config().recovery_max_attempts)


async def test_a_slow_mail_server_does_not_hold_up_the_page(
    aiohttp_client: Any, make_settings: Any, bootstrapped: store.Store, api: Any, make_user: Any
) -> None:
    """A known account's page must not wait for SMTP: the wait would tell it from an unknown one."""
    with socket.socket() as silent:  # accepts connections (the kernel's backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        settings: config.Settings = make_settings(
            email={"host": "127.0.0.1", "port": silent.getsockname()[1], "timeout": 30}
        )
        client = await aiohttp_client(app.create_app(settings, bootstrapped, run_tasks=False))
        await _user(api, make_user)
        timings = {}
        for uid in ("bob", "nobody-here"):
            client.session.cookie_jar.clear()
            started = time.monotonic()
            assert (await _start(client, uid))["component"] == "ak-stage-email"
            timings[uid] = time.monotonic() - started
        assert max(timings.values()) < 5, timings  # the SMTP timeout is 30 s


async def test_verified_address_activates_a_user_created_inactive(
    mailing_client: Any, bootstrapped: store.Store, api: Any, inbox: Any
) -> None:
    fields = [
        {"field_key": "username", "type": "username"},
        {"field_key": "email", "type": "email", "order": 1},
        {"field_key": "password", "type": "password", "order": 2},
    ]
    await make_flow(
        bootstrapped,
        "verified-signup",
        [
            ("prompt", {"fields": fields}),
            ("user_write", {"create_users_as_inactive": True}),
            ("email", {"activate_user_on_success": True}),
            ("user_login", {}),
        ],
        designation="enrollment",
    )
    path = "/api/v3/flows/executor/verified-signup/"
    await mailing_client.get(path)
    form = {"username": "carol", "email": "carol@example.com", "password": "a-long-password"}
    body = await (await mailing_client.post(path, json=form)).json()
    assert body["component"] == "ak-stage-email"
    _, found = await api("GET", "core/users/?username=carol")
    assert found["results"][0]["is_active"] is False
    await inbox[0].arrived(1)
    token = inbox[0].link()
    mailing_client.session.cookie_jar.clear()
    query = urllib.parse.quote(f"flow_token={token}")
    body = await (await mailing_client.get(f"{path}?query={query}")).json()
    assert body["component"] == "xak-flow-redirect", body
    _, found = await api("GET", "core/users/?username=carol")
    assert found["results"][0]["is_active"] is True
    me = await (await mailing_client.get("/api/v3/core/users/me/")).json()
    assert me["user"]["username"] == "carol"


async def test_without_activate_user_on_success_the_user_stays_inactive(
    mailing_client: Any, bootstrapped: store.Store, api: Any, inbox: Any
) -> None:
    fields = [
        {"field_key": "username", "type": "username"},
        {"field_key": "email", "type": "email", "order": 1},
    ]
    await make_flow(
        bootstrapped,
        "unverified-signup",
        [
            ("prompt", {"fields": fields}),
            ("user_write", {"create_users_as_inactive": True}),
            ("email", {}),
            ("user_login", {}),
        ],
        designation="enrollment",
    )
    path = "/api/v3/flows/executor/unverified-signup/"
    await mailing_client.get(path)
    await mailing_client.post(path, json={"username": "dave", "email": "dave@example.com"})
    await inbox[0].arrived(1)
    token = inbox[0].link()
    query = urllib.parse.quote(f"flow_token={token}")
    body = await (await mailing_client.get(f"{path}?query={query}")).json()
    assert body["component"] == "ak-stage-access-denied"
    _, found = await api("GET", "core/users/?username=dave")
    assert found["results"][0]["is_active"] is False


async def test_a_stage_with_its_own_smtp_server_and_cap(
    aiohttp_client: Any,
    make_settings: Any,
    bootstrapped: store.Store,
    api: Any,
    make_user: Any,
    inbox: Any,
) -> None:
    """`use_global_settings` off: the stage's host, port and sender are used (the server's
    settings point nowhere here), and its `recovery_max_attempts` caps the mails."""
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        nowhere = unused.getsockname()[1]
    settings: config.Settings = make_settings(email={"host": "127.0.0.1", "port": nowhere})
    client = await aiohttp_client(app.create_app(settings, bootstrapped, run_tasks=True))
    _, page = await api("GET", "stages/email/?name=default-recovery-email")
    (stage,) = page["results"]
    own = {
        "use_global_settings": False,
        "host": "127.0.0.1",
        "port": inbox[1],
        "from_address": "recovery@example.org",
        "recovery_max_attempts": 2,
    }
    status, patched = await api("PATCH", f"stages/email/{stage['pk']}/", json=own)
    assert status == 200 and patched["port"] == inbox[1], patched
    await _user(api, make_user)
    for _ in range(4):
        client.session.cookie_jar.clear()
        assert (await _start(client, "bob"))["component"] == "ak-stage-email"
    await inbox[0].arrived(2)  # and no more
    assert inbox[0].messages[0]["From"] == "recovery@example.org"
