"""A real browser (Debian's Chromium, driven by Playwright) logs in through the flow pages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import BOOTSTRAP_PASSWORD, BOOTSTRAP_TOKEN, SECRET_KEY, Server, base_env
from playwright.sync_api import Browser


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    env = base_env(
        AUTHENTIK_SECRET_KEY=SECRET_KEY,
        AUTHENTIK_BOOTSTRAP_PASSWORD=BOOTSTRAP_PASSWORD,
        AUTHENTIK_BOOTSTRAP_TOKEN=BOOTSTRAP_TOKEN,
    )
    instance = Server(env, tmp_path)
    instance.wait_ready()
    yield instance
    instance.stop()


def test_password_login_in_chromium_lands_on_the_portal(browser: Browser, server: Server) -> None:
    status, _ = server.request(
        "POST",
        "/api/v3/core/applications/",
        BOOTSTRAP_TOKEN,
        {"name": "Grafana", "slug": "grafana", "meta_launch_url": "https://grafana.example.com/"},
    )
    assert status == 201
    page = browser.new_context().new_page()
    page.goto(server.url + "/")
    assert "/if/flow/default-authentication-flow/" in page.url
    page.fill("#uid_field", "akadmin")
    page.click("button[type=submit]")
    page.fill("#password", "wrong password")
    page.click("button[type=submit]")
    assert page.locator(".error").inner_text() == "Invalid password"
    page.fill("#password", BOOTSTRAP_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(server.url + "/if/user/")
    assert (
        page.locator("a", has_text="Grafana").get_attribute("href")
        == "https://grafana.example.com/"
    )
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["authentik_session"]["httpOnly"] is True
    page.click("text=Log out")
    page.goto(server.url + "/if/user/")
    assert "/if/flow/default-authentication-flow/" in page.url


def test_the_page_cannot_be_framed(browser: Browser, server: Server) -> None:
    page = browser.new_context().new_page()
    response = page.goto(server.url + "/if/flow/default-authentication-flow/")
    assert response is not None
    assert response.headers["x-frame-options"] == "DENY"
