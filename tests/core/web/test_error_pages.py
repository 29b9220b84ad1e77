"""Errors a browser sees are pages in the site's look with a way back; API clients keep JSON
(content negotiation on `Accept`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from tessera.core import web as pages
from tessera.core.api import http
from tessera.core.web import errorpages

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


def _is_page(response: Any) -> bool:
    return response.content_type == "text/html"


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER, True),
        ("text/html", True),
        ("application/json", False),
        ("*/*", False),
        ("", False),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0.9, application/json;q=0.9", True),
        ("text/html;q=0", False),
        ("text/html;q=bogus", False),
    ],
)
def test_negotiation(accept: str, html: bool) -> None:
    from aiohttp.test_utils import make_mocked_request

    request = make_mocked_request("GET", "/somewhere", headers={"Accept": accept})
    assert errorpages.wants_html(request) is html
    api = make_mocked_request("GET", "/api/v3/core/users/", headers={"Accept": accept})
    assert errorpages.wants_html(api) is False


async def test_unknown_page(client: Any) -> None:
    page = await client.get("/no/such/page/", headers={"Accept": BROWSER})
    assert page.status == 404 and _is_page(page)
    text = await page.text()
    assert "Not found" in text and 'href="/"' in text and "/static/tessera.css" in text
    assert page.headers["X-Frame-Options"] == "DENY"
    plain = await client.get("/no/such/page/", headers={"Accept": "*/*"})
    assert plain.status == 404 and not _is_page(plain)
    api = await client.get("/api/v3/no/such/thing/", headers={"Accept": BROWSER})
    assert api.status == 404 and api.content_type == "application/json"


async def test_method_not_allowed_page(client: Any) -> None:
    page = await client.put("/if/user/", headers={"Accept": BROWSER})
    assert page.status == 405 and _is_page(page)


async def test_expired_form_is_a_page_with_a_way_back(client: Any) -> None:
    path = "/if/flow/default-authentication-flow/"
    await client.get(path)
    response = await client.post(path, data={"uid_field": "akadmin"}, headers={"Accept": BROWSER})
    assert response.status == 403 and _is_page(response)
    text = await response.text()
    assert "Form expired" in text and f'href="{path}"' in text
    missing = await client.post(
        "/if/flow/no-such-flow/", data={"csrf_token": "x"}, headers={"Accept": BROWSER}
    )
    assert missing.status in (403, 404) and _is_page(missing)


async def test_protocol_errors_stay_json_for_programs(client: Any) -> None:
    answer = await client.post(
        "/application/o/token/", data={"grant_type": "password"}, headers={"Accept": "*/*"}
    )
    assert answer.status in (400, 401) and answer.content_type == "application/json"
    assert "error" in await answer.json()


@pytest.fixture
async def failing(aiohttp_client: Callable[..., Awaitable[Any]]) -> Any:
    """An app with the same middlewares around a handler that fails."""

    async def boom(_request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    async def forbidden(_request: web.Request) -> web.Response:
        raise web.HTTPForbidden()

    app = web.Application(middlewares=[errorpages.middleware, http.error_middleware])
    app[pages.TEMPLATES] = pages.Templates()
    app.router.add_get("/boom", boom)
    app.router.add_get("/api/v3/boom", boom)
    app.router.add_get("/forbidden", forbidden)
    return await aiohttp_client(app)


async def test_server_error_page_keeps_the_request_id(failing: Any) -> None:
    page = await failing.get("/boom", headers={"Accept": BROWSER})
    assert page.status == 500 and _is_page(page)
    text = await page.text()
    assert "Something went wrong" in text and 'id="request_id"' in text
    assert "a bug" not in text and "RuntimeError" not in text
    body = await (await failing.get("/boom", headers={"Accept": "application/json"})).json()
    assert body["detail"] == "Internal server error." and body["request_id"]
    api = await failing.get("/api/v3/boom", headers={"Accept": BROWSER})
    assert api.status == 500 and api.content_type == "application/json"


async def test_forbidden_page(failing: Any) -> None:
    page = await failing.get("/forbidden", headers={"Accept": BROWSER})
    assert page.status == 403 and _is_page(page) and "Not allowed" in await page.text()
    plain = await failing.get("/forbidden")
    assert plain.status == 403 and not _is_page(plain)
