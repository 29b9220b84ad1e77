"""Chromium fills a prompt stage of authentik's other types on Tessera's page: a date, radio
buttons and a file upload (the form turns multipart; the stage keeps the file as a `data:` URI),
and the next stage shows what was kept."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from helpers import Server
from oidckit import admin, server_fixture
from playwright.sync_api import Browser

PICTURE = b"\x89PNG\r\n\x1a\n-a-small-picture"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from server_fixture(tmp_path_factory)


def _prompt(server: Server, key: str, kind: str, **settings: object) -> str:
    body = {"name": f"kinds-{key}", "field_key": key, "label": key.title(), "type": kind}
    return str(admin(server, "POST", "stages/prompt/prompts/", {**body, **settings})["pk"])


def _flow(server: Server) -> None:
    asked = [
        _prompt(server, "when", "date"),
        _prompt(server, "size", "radio-button-group", placeholder="['S', 'M', 'L']"),
        _prompt(server, "avatar", "file"),
    ]
    shown = [
        _prompt(
            server,
            f"echo_{key}",
            "text_read_only",
            initial_value=f"return str(prompt_context.get('{key}'))",
            initial_value_expression=True,
        )
        for key in ("when", "size", "avatar")
    ]
    flow = admin(
        server,
        "POST",
        "flows/instances/",
        {
            "name": "kinds",
            "slug": "kinds",
            "title": "Kinds",
            "designation": "enrollment",
            "authentication": "none",
        },
    )
    for order, fields in enumerate((asked, shown)):
        stage = admin(
            server, "POST", "stages/prompt/stages/", {"name": f"kinds-{order}", "fields": fields}
        )
        binding = {"target": flow["pk"], "stage": stage["pk"], "order": order}
        admin(server, "POST", "flows/bindings/", binding)


def test_a_date_radio_buttons_and_a_file_from_chromium(browser: Browser, server: Server) -> None:
    _flow(server)
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(server.url + "/if/flow/kinds/")
        page.fill("#when", "2026-12-24")
        page.check("input[name=size][value=M]")
        page.set_input_files(
            "#avatar", files=[{"name": "me.png", "mimeType": "image/png", "buffer": PICTURE}]
        )
        page.click("button[type=submit]")
        page.wait_for_selector("#echo_when")
        assert page.input_value("#echo_when") == "2026-12-24"
        assert page.input_value("#echo_size") == "M"
        uri = f"data:image/png;base64,{base64.b64encode(PICTURE).decode()}"
        assert page.input_value("#echo_avatar") == uri
    finally:
        context.close()
