"""Error pages for people: a browser that meets an error (404, 403, 500, an expired form) gets an
HTML page in the site's look with a way back; API clients keep their JSON.

Content negotiation: a page when the request's `Accept` names `text/html` (or XHTML) at least as
strongly as `application/json`, as browsers do for navigations; `fetch`, curl and API clients
(`*/*`, `application/json`) get the JSON (or plain) answer unchanged. `/api/` always answers JSON
(the flow interface's script and the admin API read it). Pages the handlers render themselves
(flow pages, OAuth2 error pages) pass through untouched.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from tessera.core import logs

Handler = Any

_TITLES = {
    400: ("Bad request", "The request could not be understood."),
    401: ("Not logged in", "You need to log in to see this page."),
    403: ("Not allowed", "You are not allowed to see this page."),
    404: ("Not found", "There is nothing at this address."),
    405: ("Not allowed", "This address does not take that kind of request."),
    413: ("Too large", "What was sent is too large."),
    429: ("Too many requests", "Too many requests; wait a moment and try again."),
    500: ("Something went wrong", "Something went wrong on our side; try again."),
    503: ("Unavailable", "The service is briefly unavailable; try again shortly."),
}
_CONVERTED = ("application/json", "text/plain")


def _quality(accept: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for item in accept.split(",")[:50]:
        media, *params = (part.strip() for part in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        found[media] = max(found.get(media, 0.0), q)
    return found


def wants_html(request: web.Request) -> bool:
    """Whether the caller is a browser asking for a page (see the module's docstring)."""
    if request.path.startswith("/api/"):
        return False
    q = _quality(request.headers.get("Accept", ""))
    html = max(q.get("text/html", 0.0), q.get("application/xhtml+xml", 0.0))
    return html > 0 and html >= q.get("application/json", 0.0)


def page(
    request: web.Request,
    status: int,
    *,
    title: str = "",
    message: str = "",
    back: str = "",
    back_label: str = "Go back",
    request_id: str = "",
) -> web.Response:
    """The error page for `status`, with a link `back` (and always one to the start page)."""
    from tessera.core import web as pages  # the package, for its renderer and headers

    default_title, default_message = _TITLES.get(
        status, ("Error", "The request could not be completed.")
    )
    return pages.render(
        request,
        "error.html",
        status=status,
        title=title or default_title,
        message=message or default_message,
        back=back,
        back_label=back_label,
        request_id=request_id,
    )


def _request_id(response: web.StreamResponse) -> str:
    if isinstance(response, web.Response) and response.content_type == "application/json":
        try:
            body = json.loads(response.text or "")
        except (ValueError, TypeError):
            body = None
        if isinstance(body, dict) and isinstance(body.get("request_id"), str):
            return str(body["request_id"])[:64]
    return (logs.request_id() or "") if response.status >= 500 else ""


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or not wants_html(request):
            raise
        return page(request, exc.status)
    if (
        response.status >= 400
        and isinstance(response, web.Response)
        and response.content_type in _CONVERTED
        and wants_html(request)
    ):
        return page(request, response.status, request_id=_request_id(response))
    return response
