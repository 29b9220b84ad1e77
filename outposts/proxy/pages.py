"""Error answers of the outpost: JSON for scripts and proxies, a small page for browsers.

Every refusal the outpost makes is one of these, a 4xx (or 503 while the core is away) with a
sentence saying what was wrong; the JSON keeps authentik's `Message` key. Called by
`handlers`, `reverse` and `app`.
"""

from __future__ import annotations

import html
import json
from typing import Any

from aiohttp import web

_EXCEPTIONS: dict[int, type[web.HTTPException]] = {
    400: web.HTTPBadRequest,
    401: web.HTTPUnauthorized,
    403: web.HTTPForbidden,
    404: web.HTTPNotFound,
    413: web.HTTPRequestEntityTooLarge,
    500: web.HTTPInternalServerError,
    502: web.HTTPBadGateway,
    503: web.HTTPServiceUnavailable,
    504: web.HTTPGatewayTimeout,
}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;
color:#222}}h1{{font-size:1.4rem}}a{{color:#0b5cad}}</style></head>
<body><h1>{title}</h1><p>{detail}</p>{retry}</body></html>
"""


def wants_html(request: web.Request) -> bool:
    return "text/html" in request.headers.get("Accept", "").lower()


def problem(
    request: web.Request,
    status: int,
    title: str,
    detail: str,
    retry: str | None = None,
    **extra: Any,
) -> web.HTTPException:
    """The exception to raise for a refusal (`raise pages.problem(...)`)."""
    cls = _EXCEPTIONS[status]
    headers = {"Cache-Control": "no-store", "X-Powered-By": "authentik_proxy2"}
    if wants_html(request):
        link = f'<p><a href="{html.escape(retry)}">Try again</a></p>' if retry else ""
        body = _PAGE.format(title=html.escape(title), detail=html.escape(detail), retry=link)
        return cls(text=body, content_type="text/html", headers=headers)
    payload = {"Message": title, "Detail": detail, **extra}
    return cls(text=json.dumps(payload), content_type="application/json", headers=headers)
