"""A tiny web application signs its users in through Tessera's SAML IdP: an aiohttp app on a free
port using python3-saml (OneLogin's toolkit) as the service provider, with Tessera's metadata,
signed AuthnRequests and signed, encrypted Responses. Chromium opens the app, is sent to Tessera,
logs in, is posted back by the autosubmit form and is greeted by the username attribute."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import Server, free_port
from oidckit import server_fixture, sign_in_until
from playwright.sync_api import Browser
from samlkit import rsa_pair
from samlspkit import SampleSP, greets, mapping_pks, register, serving


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from server_fixture(tmp_path_factory)


@pytest.fixture
def sample(server: Server) -> Iterator[SampleSP]:
    key, cert = rsa_pair("sample-sp")
    app = SampleSP("sample-sp", free_port(), key, cert)
    register(server, app, mapping_pks(server), encrypt=True)
    with serving(app):
        yield app


def test_sample_sp_greets_the_user(browser: Browser, server: Server, sample: SampleSP) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(sample.url + "/")
    assert page.url.startswith(server.url)  # sent to Tessera to sign in
    sign_in_until(page, greets(page, sample))
    assert page.locator("h1").inner_text() == "Hello, akadmin"
    context.close()
