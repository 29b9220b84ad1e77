"""`/api/v3/flows/executor/<slug>/`: the JSON flow executor (authentik's wire shapes).

GET returns the current challenge (planning the flow when none is in progress; `?query=` carries
the original query string, whose `next` says where to go at the end). POST sends a challenge
response. Always HTTP 200 with JSON, except 404 for an unknown flow. The browser is identified by
the `authentik_session` cookie; a visitor without one gets an anonymous key, replaced by a new
key at login.

The OpenAPI document describes both directions as authentik's schema does (`openapi_*`): the
replies as `ChallengeTypes`, one of the challenge models of `wire.challenges` by `component`, and
the answers as `FlowChallengeResponseRequest`, one of the stage kinds' answer models
(`stages.base.response_model`), which the executor reads answers with.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from typing import Any

import pydantic
from aiohttp import web

from tessera.core import crypto, errors, stages, wire
from tessera.core.api import auth, http, net, openapi, root, state
from tessera.core.flows import executor
from tessera.core.identity import sessions
from tessera.core.stages import base

_KEY = re.compile(r"^[A-Za-z0-9_.-]{32,128}$")
# Visitors who have not logged in get a key of this form; login replaces it with a session key.
ANONYMOUS = sessions.ANONYMOUS
EXECUTOR = web.AppKey("flow_executor", executor.Executor)


def services(app: web.Application) -> base.Services:
    return base.Services(
        store=app[state.STORE],
        cache=app[state.CACHE],
        keyring=app[state.KEYRING],
        settings=app[state.SETTINGS],
        directories=app.get(state.DIRECTORIES),
    )


async def browser(request: web.Request) -> executor.Browser:
    key = request.cookies.get(sessions.COOKIE, "")
    user = None
    if not _KEY.match(key):
        key = sessions.anonymous_key()
    elif not key.startswith(ANONYMOUS):  # an anonymous key never needs the store
        async with request.app[state.STORE].read() as tx:
            user = await sessions.user_for(tx, key)
    return executor.Browser(
        key=key,
        user=user,
        client_ip=net.client_ip(request) or "",
        user_agent=request.headers.get("User-Agent", "")[:512],
        secure=net.is_secure(request),
        cookies=request.cookies,
        method=request.method,
        path=request.path,
        base_url=net.public_base(request),
    )


def check_csrf(request: web.Request, who: executor.Browser) -> None:
    """Logged-in browsers must prove the request comes from our own pages."""
    if who.user is None:
        return
    cookie = request.cookies.get(auth.CSRF_COOKIE, "")
    header = request.headers.get(auth.CSRF_HEADER, "")
    if not cookie or not crypto.secrets.equal(cookie, header):
        raise errors.PermissionDenied("CSRF Failed: CSRF token missing or incorrect.")


def finish(request: web.Request, who: executor.Browser, reply: executor.Reply) -> web.Response:
    response = http.respond(reply.body)
    apply_cookies(request, response, who, reply)
    return response


def apply_cookies(
    request: web.Request, response: web.StreamResponse, who: executor.Browser, reply: executor.Reply
) -> None:
    for cookie in reply.cookies:
        response.set_cookie(
            cookie.name,
            cookie.value,
            max_age=cookie.max_age,
            httponly=True,
            samesite="Lax",
            secure=who.secure,
            path="/",
        )
    if reply.new_session is not None:
        key, ttl = reply.new_session
        root.set_session_cookies(request, response, key, ttl)
    elif reply.ended_session:
        response.del_cookie(auth.CSRF_COOKIE, path="/")
        if who.key.startswith(ANONYMOUS):  # the flow goes on after the logout (`Executor`)
            response.set_cookie(
                sessions.COOKIE, who.key, httponly=True, samesite="Lax", secure=who.secure, path="/"
            )
        else:
            response.del_cookie(sessions.COOKIE, path="/")
    elif request.cookies.get(sessions.COOKIE) != who.key:
        response.set_cookie(
            sessions.COOKIE, who.key, httponly=True, samesite="Lax", secure=who.secure, path="/"
        )


def _query(request: web.Request) -> dict[str, str]:
    raw = request.query.get("query", "")
    if len(raw) > 4000:
        raise errors.ValidationFailed.one("query", "Query string is too long.")
    return dict(urllib.parse.parse_qsl(raw)[:50])


async def get(request: web.Request) -> web.Response:
    who = await browser(request)
    reply = await request.app[EXECUTOR].get(request.match_info["slug"], who, _query(request))
    return finish(request, who, reply)


async def post(request: web.Request) -> web.Response:
    who = await browser(request)
    check_csrf(request, who)
    body = await http.read_json(request)
    reply = await request.app[EXECUTOR].post(request.match_info["slug"], who, body)
    return finish(request, who, reply)


def _answering() -> list[type[base.Stage]]:
    """The stage kinds that read answers: those flows bind, then the provided ones."""
    kinds = [*stages.KINDS.values(), *stages.PROVIDED.values()]
    return [k for k in kinds if k.Response is not None]


def _answer_models() -> list[type[pydantic.BaseModel]]:
    return [base.response_model(k) for k in _answering()]


def openapi_models() -> list[type[pydantic.BaseModel]]:
    """The challenge and answer models the executor's operations refer to."""
    return [*wire.challenges.CHALLENGES, *_answer_models()]


def _one_of(models: Sequence[type[pydantic.BaseModel]], components: list[str]) -> dict[str, Any]:
    refs = [openapi.REF.format(model=m.__name__) for m in models]
    mapping = dict(zip(components, refs, strict=True))
    return {
        "oneOf": [{"$ref": ref} for ref in refs],
        "discriminator": {"propertyName": "component", "mapping": mapping},
    }


def openapi_schemas() -> dict[str, Any]:
    """authentik's two unions: `ChallengeTypes` (replies) and `FlowChallengeResponseRequest`."""
    challenges = list(wire.challenges.CHALLENGES)
    answered = _answering()
    return {
        "ChallengeTypes": _one_of(
            challenges, [wire.challenges.component_of(m) for m in challenges]
        ),
        "FlowChallengeResponseRequest": _one_of(
            [base.response_model(k) for k in answered], [k.component for k in answered]
        ),
    }


def openapi_paths() -> dict[str, Any]:
    """The executor's two operations (`flows_executor_get`, `flows_executor_solve`)."""

    def schema(name: str) -> dict[str, Any]:
        ref = {"$ref": openapi.REF.format(model=name)}
        return {"content": {"application/json": {"schema": ref}}}

    params = [
        {"name": "flow_slug", "in": "path", "required": True, "schema": {"type": "string"}},
        {
            "name": "query",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "The original query string",
        },
    ]
    answer = {"description": "The next challenge", **schema("ChallengeTypes")}
    missing = {"description": "No such flow", **schema("ErrorDetail")}
    return {
        "/flows/executor/{flow_slug}/": {
            "get": {
                "operationId": "flows_executor_get",
                "tags": ["flows"],
                "security": [{}],
                "parameters": params,
                "responses": {"200": answer, "404": missing},
            },
            "post": {
                "operationId": "flows_executor_solve",
                "tags": ["flows"],
                "security": [{}],
                "parameters": params,
                "requestBody": {"required": True, **schema("FlowChallengeResponseRequest")},
                "responses": {"200": answer, "404": missing},
            },
        }
    }


async def _build(app: web.Application) -> None:
    app[EXECUTOR] = executor.Executor(services(app))  # after the cache exists (cleanup_ctx)


def setup(app: web.Application) -> None:
    app.on_startup.append(_build)
    app.router.add_get("/api/v3/flows/executor/{slug}/", get, allow_head=False)
    app.router.add_post("/api/v3/flows/executor/{slug}/", post)
