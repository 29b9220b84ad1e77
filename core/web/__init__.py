"""Server-rendered pages: the flow interface `/if/flow/<slug>/` and the user portal `/if/user/`,
and authentik's redirects under `/flows/-/` (default flow, cancel, a stage's configure flow).

The flow pages run the same executor as the JSON API and render each challenge with Jinja2
(autoescaped), so logging in works without JavaScript. Forms carry a token bound to the browser
session (CSRF, including login CSRF); pages are sent with headers that forbid framing and
third-party resources.
"""

from __future__ import annotations

import base64
import datetime as dt
import pathlib
import re
import urllib.parse
from typing import Any

import pydantic
from aiohttp import web

from tessera.core import crypto, errors, events, wire
from tessera.core.api import flows as flows_api
from tessera.core.api import state
from tessera.core.flows import app_access, executor, redirects, user_settings
from tessera.core.identity import applications, devices, sessions, token_rules, tokens, util
from tessera.core.store import crud
from tessera.core.web import errorpages

# Resolved: an editable install links each file from elsewhere, and the static route serves no
# file that leads out of its directory.
_HERE = pathlib.Path(__file__).resolve().parent


class Templates:
    """The Jinja2 environment, built on the first page (Jinja2 is not needed to start)."""

    def __init__(self) -> None:
        self._env: Any = None

    def get(self, name: str) -> Any:
        if self._env is None:
            import jinja2

            self._env = jinja2.Environment(
                loader=jinja2.FileSystemLoader(_HERE / "templates"),
                autoescape=jinja2.select_autoescape(default=True),
                undefined=jinja2.ChainableUndefined,
            )
        return self._env.get_template(name)


TEMPLATES = web.AppKey("templates", Templates)
AUTH_FLOW = "default-authentication-flow"
DEVICE_KINDS = ("totp", "static", "webauthn")
# The portal's settings links: user settings component -> label.
ENROL_LABELS = {
    "ak-user-settings-password": "Change password",
    "ak-user-settings-authenticator-totp": "Add an authenticator app (TOTP)",
    "ak-user-settings-authenticator-webauthn": "Add a passkey or security key (WebAuthn)",
    "ak-user-settings-authenticator-static": "Create recovery codes",
}
MEDIA_TYPE = re.compile(r"[\w.+-]+/[\w.+-]+")  # a file's type, as a prompt's data: URI holds it
SELF_INTENTS = list(tokens.SELF_SERVICE_INTENTS)  # the token intents users manage themselves
_HEADERS = {
    # No form-action: browsers apply it to the redirects that follow a form post, and a finished
    # flow may lead (through the authorize endpoint) to an application on another origin.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _form_token(request: web.Request, session_key: str) -> str:
    return str(request.app[state.KEYRING].digest("flow-form:" + session_key))


def _render(
    request: web.Request, name: str, status: int = 200, frames: str = "", **values: Any
) -> web.Response:
    """A page with `_HEADERS`; `frames`: the origins it may load in frames (`frame-src`)."""
    template = request.app[TEMPLATES].get(name)
    headers = _HEADERS
    if frames:
        policy = f"{_HEADERS['Content-Security-Policy']}; frame-src 'self' {frames}"
        headers = {**_HEADERS, "Content-Security-Policy": policy}
    return web.Response(
        text=template.render(**values), status=status, content_type="text/html", headers=headers
    )


_ORIGIN = re.compile(r"https?://[A-Za-z0-9.:\[\]-]+")


def _frame_sources(challenge: dict[str, Any]) -> str:
    """The origins of the service providers the front-channel logout page loads in hidden
    frames (`ak-provider-iframe-logout`), for its `frame-src`; "" for other challenges."""
    if challenge.get("component") != "ak-provider-iframe-logout":
        return ""
    origins = set()
    for entry in challenge.get("logout_urls", []):
        parts = urllib.parse.urlsplit(str(entry.get("url", "")))
        origin = f"{parts.scheme}://{parts.netloc}"
        # SECURITY: only a plain origin goes into the policy (no spaces, quotes or semicolons).
        if _ORIGIN.fullmatch(origin):
            origins.add(origin)
    return " ".join(sorted(origins))


def _expired(request: web.Request, back: str) -> web.Response:
    """A form without its session's token (expired, or a cross-site post): 403, and a way back."""
    return errorpages.page(
        request,
        403,
        title="Form expired",
        message="This form has expired or did not come from this site; open the page again.",
        back=back,
        back_label="Open the page again",
    )


# For the protocol endpoints (providers) that render pages of their own.
render = _render
form_token = _form_token


def _page(
    request: web.Request, who: executor.Browser, reply: executor.Reply, slug: str
) -> web.StreamResponse:
    body = reply.body
    if body.get("component") == executor.REDIRECT:
        response: web.StreamResponse = web.Response(
            status=302, headers={**_HEADERS, "Location": body["to"]}
        )
    else:
        response = _render(
            request,
            "flow.html",
            frames=_frame_sources(body),
            title=body.get("flow_info", {}).get("title", "Tessera"),
            challenge=body,
            qr_code=_qr_code(body),
            action=request.path if "flow_token" in request.query else request.path_qs,
            restart_url=f"/if/flow/{slug}/?restart=1",
            csrf_token=_form_token(request, reply.new_session[0] if reply.new_session else who.key),
        )
    flows_api.apply_cookies(request, response, who, reply)
    return response


def _qr_code(challenge: dict[str, Any]) -> str:
    """The TOTP setup's `config_url` as a QR code (a PNG `data:` URI), as authentik's page
    draws it; "" for other challenges."""
    url = challenge.get("config_url")
    if challenge.get("component") != "ak-stage-authenticator-totp" or not url:
        return ""
    import segno  # only the TOTP setup page needs it

    return str(segno.make(url, error="m").png_data_uri(scale=4))


async def flow_get(request: web.Request) -> web.StreamResponse:
    slug = request.match_info["slug"]
    who = await flows_api.browser(request)
    query = {k: request.query[k] for k in ("next", "restart", "flow_token") if k in request.query}
    try:
        reply = await request.app[flows_api.EXECUTOR].get(slug, who, query)
    except errors.NotFound:
        return errorpages.page(request, 404, message="There is no such flow.")
    return _page(request, who, reply, slug)


async def flow_post(request: web.Request) -> web.StreamResponse:
    slug = request.match_info["slug"]
    who = await flows_api.browser(request)
    form = await request.post()
    token = str(form.get("csrf_token", ""))
    # SECURITY: every form post, logged in or not, must carry the token bound to this session.
    if not crypto.secrets.equal(token, _form_token(request, who.key)):
        return _expired(request, f"/if/flow/{slug}/")
    answer = {k: _answer(v) for k, v in form.items() if k != "csrf_token"}
    try:
        reply = await request.app[flows_api.EXECUTOR].post(slug, who, answer)
    except errors.NotFound:
        return errorpages.page(request, 404, message="There is no such flow.")
    return _page(request, who, reply, slug)


def _answer(value: str | bytes | bytearray | web.FileField) -> str:
    """A form field's answer; a file (a prompt's `file` field) becomes the `data:` URI that
    authentik's page sends for it, "" when none was chosen."""
    if isinstance(value, str):
        return value
    if not isinstance(value, web.FileField):  # a part without a name's text: not a form's
        return ""
    content = value.file.read()
    if not content and not value.filename:
        return ""
    kind = value.content_type if MEDIA_TYPE.fullmatch(value.content_type or "") else ""
    return f"data:{kind or 'application/octet-stream'};base64,{base64.b64encode(content).decode()}"


async def _enrol_links(request: web.Request, who: executor.Browser) -> list[tuple[str, str]]:
    """(label, URL) of each stage the user may configure (the same list, and the same URLs, as
    `/api/v3/stages/all/user_settings/`), one link per kind and flow."""
    assert who.user is not None
    flows = request.app[flows_api.EXECUTOR]
    found = await user_settings.for_user(
        flows.services, await flows.definitions.get(), who.user, who.client_ip
    )
    links: dict[tuple[str, str], str] = {}
    for setting in found:
        links.setdefault((setting.component, setting.flow_slug), setting.configure_url)
    return [(ENROL_LABELS[component], url) for (component, _), url in links.items()]


async def portal(
    request: web.Request,
    new_token: dict[str, str] | None = None,
    token_errors: dict[str, list[str]] | None = None,
) -> web.StreamResponse:
    who = await flows_api.browser(request)
    if who.user is None:
        return _to_login(request)
    async with request.app[state.STORE].read() as tx:
        apps = await crud.all_rows(tx, "applications")
        served = sorted({a["provider"] for a in apps if a["provider"] is not None})
        suggested = await request.app[state.PROVIDER_LAUNCH_URLS](tx, served)
    for app in apps:
        app["launch_url"] = applications.launch_url(app, suggested, who.user) or ""
    launchable = [
        app
        for app in sorted(apps, key=lambda a: a["name"].lower())
        if app["launch_url"].startswith(("http://", "https://")) and not app["meta_hide"]
    ]
    flows = request.app[flows_api.EXECUTOR]
    visible = await app_access.allowed(
        flows.services, await flows.definitions.get(), launchable, who.user, who.client_ip
    )
    async with request.app[state.STORE].read() as tx:
        rows, _ = await crud.page(
            tx,
            sessions.TABLE,
            crud.Query(
                filters=[crud.Filter("user_pk", "eq", who.user["pk"])],
                ordering=("-created",),
                limit=50,
            ),
        )
    async with request.app[state.STORE].read() as tx:
        mfa = await devices.confirmed(tx, who.user["pk"], DEVICE_KINDS)
        own_tokens = await _own_tokens(tx, who.user["pk"])
    enrol = await _enrol_links(request, who)
    return _render(
        request,
        "portal.html",
        title="My applications",
        user=who.user,
        applications=visible,
        devices=mfa,
        enrol=enrol,
        tokens=own_tokens,
        new_token=new_token,
        token_errors=token_errors or {},
        sessions=rows,
        current=crypto.secrets.sha256_hex(who.key),
        csrf_token=_form_token(request, who.key),
    )


async def revoke_session(request: web.Request) -> web.StreamResponse:
    """End one of the user's own sessions (or all of them but this one)."""
    checked = await _checked_form(request)
    if isinstance(checked, web.Response):
        return checked
    who, form = checked
    assert who.user is not None
    target = str(form.get("session", ""))
    current = crypto.secrets.sha256_hex(who.key)
    async with request.app[state.STORE].transaction() as tx:
        mine, _ = await crud.page(
            tx,
            sessions.TABLE,
            crud.Query(filters=[crud.Filter("user_pk", "eq", who.user["pk"])], limit=1000),
        )
        for row in mine:
            # SECURITY: only the caller's own sessions; "others" keeps the current one.
            if (target == "others" and row["key_digest"] != current) or row["key_digest"] == target:
                await sessions.end_digest(tx, row["key_digest"])
    raise web.HTTPFound("/if/user/")


async def remove_device(request: web.Request) -> web.StreamResponse:
    """Remove one of the user's own authenticators (TOTP, recovery codes, WebAuthn)."""
    checked = await _checked_form(request)
    if isinstance(checked, web.Response):
        return checked
    who, form = checked
    assert who.user is not None
    target = str(form.get("device", ""))[:36]
    async with request.app[state.STORE].transaction() as tx:
        # SECURITY: only the caller's own devices; another user's pk finds nothing.
        device = await devices.remove(tx, target, who.user["pk"])
        if device is None:
            return _render(request, "base.html", status=404, title="Not found")
        await _audit(request, tx, who, "model_deleted", devices.model_ref(device))
    raise web.HTTPFound("/if/user/")


async def _own_tokens(tx: Any, user_pk: int) -> list[dict[str, Any]]:
    # SECURITY: the tokens the API lets the user manage, no more (managed ones are hidden).
    return await crud.rows(
        tx, tokens.TABLE, token_rules.own_filters(user_pk), ordering=("identifier",)
    )


async def _checked_form(request: web.Request) -> tuple[executor.Browser, Any] | web.Response:
    who = await flows_api.browser(request)
    form = await request.post()
    token = str(form.get("csrf_token", ""))
    if who.user is None or not crypto.secrets.equal(token, _form_token(request, who.key)):
        return _expired(request, "/if/user/")
    return who, form


def _token_model(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "app": "authentik_core",
        "model_name": "token",
        "pk": row["pk"],
        "name": row["identifier"],
    }


async def _audit(
    request: web.Request, tx: Any, who: executor.Browser, action: str, model: dict[str, Any]
) -> None:
    """An audit event for a portal change the user made to their own objects."""
    await events.record(
        tx,
        action,
        user=who.user,
        client_ip=who.client_ip or None,
        context={"model": model},
        retention=dt.timedelta(days=request.app[state.SETTINGS].events.retention_days),
    )


async def create_token(request: web.Request) -> web.StreamResponse:
    """A new API token or app password of the user's own; its key is shown once."""
    checked = await _checked_form(request)
    if isinstance(checked, web.Response):
        return checked
    who, form = checked
    assert who.user is not None
    days = str(form.get("expires_days", "") or "")
    try:
        if days and not (days.isdigit() and 1 <= int(days) <= 3650):
            raise errors.ValidationFailed.one("expires_days", "Enter a number of days, 1 to 3650.")
        body = wire.core.TokenRequest.model_validate(
            {
                "identifier": str(form.get("identifier", "")),
                "intent": str(form.get("intent", "")),
                "description": str(form.get("description", ""))[:1000],
                "expiring": bool(days),
                "expires": util.now() + dt.timedelta(days=int(days)) if days else None,
            }
        )
        if body.intent not in SELF_INTENTS:
            raise errors.ValidationFailed.one("intent", "Choose an API token or an app password.")
        async with request.app[state.STORE].transaction() as tx:
            row, key = await tokens.create(
                tx, request.app[state.KEYRING], body, user_pk=who.user["pk"]
            )
            await _audit(request, tx, who, "model_created", _token_model(row))
    except pydantic.ValidationError as exc:
        problems: dict[str, list[str]] = {}
        for err in exc.errors(include_url=False):
            problems.setdefault(str(err["loc"][0]) if err["loc"] else "form", []).append(err["msg"])
        return await portal(request, token_errors=problems)
    except errors.ValidationFailed as exc:
        return await portal(request, token_errors=exc.fields)
    return await portal(request, new_token={"identifier": row["identifier"], "key": key})


async def delete_token(request: web.Request) -> web.StreamResponse:
    checked = await _checked_form(request)
    if isinstance(checked, web.Response):
        return checked
    who, form = checked
    assert who.user is not None
    identifier = str(form.get("identifier", ""))[:255]
    async with request.app[state.STORE].transaction() as tx:
        # SECURITY: only the caller's own API tokens and app passwords.
        row = await crud.find(tx, tokens.TABLE, identifier=identifier, user_pk=who.user["pk"])
        if row is None or not token_rules.is_own(row, who.user["pk"]):
            return _render(request, "base.html", status=404, title="Not found")
        await crud.delete(tx, tokens.TABLE, pk=row["pk"])
        await _audit(request, tx, who, "model_deleted", _token_model(row))
    raise web.HTTPFound("/if/user/")


async def root(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/if/user/")


async def default_authentication(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"/if/flow/{AUTH_FLOW}/")


async def cancel(_request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"/if/flow/{AUTH_FLOW}/?restart=1")


async def configure(request: web.Request) -> web.StreamResponse:
    """authentik's `/flows/-/configure/<stage uuid>/`: into the configure flow of a stage the user
    may configure (the user settings' `configure_url`); anyone else is sent to log in first, and
    a stage that is not offered to this user is not found."""
    who = await flows_api.browser(request)
    if who.user is None:
        return _to_login(request)
    flows = request.app[flows_api.EXECUTOR]
    page = await user_settings.target(
        flows.services,
        await flows.definitions.get(),
        request.match_info["stage_uuid"],
        who.user,
        who.client_ip,
    )
    if page is None:
        return _render(request, "base.html", status=404, title="Not found")
    if "next" in request.query:
        # SECURITY: only a path on this server is passed on (the flow checks it again at its end).
        back = redirects.safe_next(request.query["next"], [])
        page += "?next=" + urllib.parse.quote(back, safe="")
    return web.Response(status=302, headers={**_HEADERS, "Location": page})


def _to_login(request: web.Request) -> web.StreamResponse:
    target = urllib.parse.quote(request.path_qs, safe="")
    return web.Response(
        status=302, headers={**_HEADERS, "Location": f"/if/flow/{AUTH_FLOW}/?next={target}"}
    )


def setup(app: web.Application) -> None:
    app[TEMPLATES] = Templates()
    app.router.add_get("/if/flow/{slug}/", flow_get)
    app.router.add_post("/if/flow/{slug}/", flow_post)
    app.router.add_get("/if/user/", portal)
    app.router.add_post("/if/user/sessions/revoke/", revoke_session)
    app.router.add_post("/if/user/devices/remove/", remove_device)
    app.router.add_post("/if/user/tokens/create/", create_token)
    app.router.add_post("/if/user/tokens/delete/", delete_token)
    app.router.add_get("/", root)
    app.router.add_get("/flows/-/default/authentication/", default_authentication)
    app.router.add_get("/flows/-/cancel/", cancel)
    app.router.add_get("/flows/-/configure/{stage_uuid}/", configure)
    app.router.add_static("/static/", _HERE / "static", append_version=False)


__all__ = ["AUTH_FLOW", "form_token", "render", "setup"]
