"""Chromium meets errors: pages in the site's look with a way back, while `fetch` from the same
page still gets JSON from the API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import Server
from oidckit import server_fixture
from playwright.sync_api import Browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from server_fixture(tmp_path_factory)


def test_a_missing_page_is_a_page_with_a_way_back(browser: Browser, server: Server) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        response = page.goto(server.url + "/no/such/page/")
        assert response is not None and response.status == 404
        assert page.locator("h1").inner_text() == "Not found"
        page.click("#home")
        page.wait_for_url("**/if/flow/default-authentication-flow/**")
        status, kind = page.evaluate(
            """async () => {
                const answer = await fetch("/api/v3/no/such/thing/");
                return [answer.status, answer.headers.get("content-type")];
            }"""
        )
        assert status == 404 and kind.startswith("application/json")
    finally:
        context.close()
