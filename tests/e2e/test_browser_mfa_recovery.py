"""Chromium through the flow pages: set up TOTP and recovery codes, log in with a code, and
recover a password through the email link caught by a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from helpers import BOOTSTRAP_PASSWORD, BOOTSTRAP_TOKEN, SECRET_KEY, Server, base_env, free_port
from mailkit import Inbox
from playwright.sync_api import Browser, Page


@pytest.fixture
def server(tmp_path: Path, inbox: tuple[Inbox, int]) -> Iterator[Server]:
    port = free_port()
    env = base_env(
        AUTHENTIK_SECRET_KEY=SECRET_KEY,
        AUTHENTIK_BOOTSTRAP_PASSWORD=BOOTSTRAP_PASSWORD,
        AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
        AUTHENTIK_EMAIL__HOST="127.0.0.1",
        AUTHENTIK_EMAIL__PORT=str(inbox[1]),
        AUTHENTIK_EMAIL__FROM="sso@example.com",
        AUTHENTIK_WEB__PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    instance = Server(env, tmp_path, port=port)
    instance.wait_ready()
    yield instance
    instance.stop()


def _login(page: Page, server: Server, username: str, password: str) -> None:
    page.goto(server.url + "/if/flow/default-authentication-flow/")
    page.fill("#uid_field", username)
    page.click("button[type=submit]")
    page.fill("#password", password)
    page.click("button[type=submit]")


def test_totp_and_recovery_codes_in_chromium(browser: Browser, server: Server) -> None:
    page = browser.new_context().new_page()
    _login(page, server, "akadmin", BOOTSTRAP_PASSWORD)
    page.wait_for_url(server.url + "/if/user/")
    # Set up TOTP: the page shows a QR image and the otpauth URI behind it.
    page.goto(server.url + "/if/flow/default-authenticator-totp-setup/")
    assert (
        page.locator("img.qr")
        .get_attribute("src", timeout=5000)
        .startswith(  # type: ignore[union-attr]
            "data:image/png;base64,"
        )
    )
    uri = page.locator("#config_url").text_content() or ""
    totp = pyotp.parse_uri(uri)
    assert isinstance(totp, pyotp.TOTP) and totp.digits == 6
    page.fill("#code", "000000" if totp.now() != "000000" else "111111")
    page.click("button[type=submit]")
    assert page.locator(".error").count() >= 1  # a wrong code is refused
    page.fill("#code", totp.now())
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/if/user/")
    # Recovery codes: shown once, each usable once.
    page.goto(server.url + "/if/flow/default-authenticator-static-setup/")
    codes = [c.strip() for c in page.locator("#codes code").all_inner_texts()]
    assert len(codes) >= 6 and len(set(codes)) == len(codes)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/if/user/")
    # A new browser: the password alone is not enough, the code is asked for.
    for attempt, answer in enumerate(("not-a-code", totp.at(time.time() + 30), codes[0])):
        fresh = browser.new_context().new_page()
        _login(fresh, server, "akadmin", BOOTSTRAP_PASSWORD)
        assert fresh.locator("#code").count() == 1
        fresh.fill("#code", answer)
        fresh.click("button[type=submit]")
        if attempt == 0:
            assert fresh.locator(".error").count() >= 1
            assert "/if/user/" not in fresh.url
        else:
            fresh.wait_for_url(server.url + "/if/user/")
        fresh.context.close()
    # The recovery code is used up.
    fresh = browser.new_context().new_page()
    _login(fresh, server, "akadmin", BOOTSTRAP_PASSWORD)
    fresh.fill("#code", codes[0])
    fresh.click("button[type=submit]")
    assert fresh.locator(".error").count() >= 1 and "/if/user/" not in fresh.url


def test_password_recovery_by_email_link_in_chromium(
    browser: Browser, server: Server, inbox: tuple[Inbox, int]
) -> None:
    status, user = server.request(
        "POST",
        "/api/v3/core/users/",
        BOOTSTRAP_TOKEN,
        {"username": "carol", "name": "Carol", "email": "carol@example.com"},
    )
    assert status == 201, user
    server.request(
        "POST",
        f"/api/v3/core/users/{user['pk']}/set_password/",
        BOOTSTRAP_TOKEN,
        {"password": "forgotten-password-1"},
    )
    page = browser.new_context().new_page()
    page.goto(server.url + "/if/flow/default-authentication-flow/")
    page.click("text=Forgot username or password?")
    page.fill("#uid_field", "carol")
    page.click("button[type=submit]")
    assert "Check your email" in page.content()
    link = inbox[0].url()
    assert urllib.parse.urlsplit(link).netloc == urllib.parse.urlsplit(server.url).netloc
    other = browser.new_context().new_page()  # the link works in whichever browser opens it
    other.goto(link)
    other.fill("#password", "remembered-password-2")
    other.fill("#password_repeat", "remembered-password-2")
    other.click("button[type=submit]")
    other.wait_for_url(server.url + "/if/user/")
    # The link was single use.
    again = browser.new_context().new_page()
    again.goto(link)
    assert "invalid or has expired" in again.content()
    # The old password no longer works, the new one does.
    check = browser.new_context().new_page()
    _login(check, server, "carol", "forgotten-password-1")
    assert check.locator(".error").count() >= 1
    check.fill("#password", "remembered-password-2")
    check.click("button[type=submit]")
    check.wait_for_url(server.url + "/if/user/")
