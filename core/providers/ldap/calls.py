"""The LDAP outpost's calls under `/api/v3/outposts/ldap/<provider pk>/`, and `check_access/`.

`bind/`, `unbind/`, `directory/`, `search/` and `password/` (Tessera's, `wire.ldap`) answer only
an outpost's token, and only for a provider that outpost holds and that an application uses:
no token is 401, a token that is not an outpost's 403, anyone else's or an unknown provider
404, all with JSON bodies. `search/` and `password/` name the bound session
(`session_id`): it must be a live session a bind through this provider opened, of an active
user, else 403. Bodies are bounded (`MAX_BODY`).

`check_access/?app_slug=` is authentik's: the caller's own verdict on the application and
whether they may search the whole directory (a user's session or token, as authentik's outpost
calls it with the bound user's cookie); an outpost's token may ask it for one of its bound
sessions with `?session_id=`.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

import pydantic
import structlog
from aiohttp import web

from tessera.core import errors, events, store, wire
from tessera.core.api import auth, http, net, state
from tessera.core.api import flows as flows_api
from tessera.core.flows import app_access
from tessera.core.identity import outposts, sessions, tokens, users, util
from tessera.core.providers.ldap import bind, directory, grants, passwords, records
from tessera.core.providers.ldap.filters import FilterError
from tessera.core.store import crud

MAX_BODY = 64 * 1024
log = structlog.get_logger(__name__)
M = TypeVar("M", bound=pydantic.BaseModel)
_BEARER_MAX = 512


# Who is calling, for which provider ---------------------------------------------------------


async def _outpost(request: web.Request, tx: store.Tx) -> dict[str, Any]:
    """The calling outpost (its row), from its API token."""
    header = request.headers.get("Authorization")
    if header is None:
        raise errors.NotAuthenticated("Authentication credentials were not provided.")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key or len(key) > _BEARER_MAX:
        raise errors.NotAuthenticated("Invalid token header.")
    found = await tokens.authenticate(tx, request.app[state.KEYRING], key, intent="api")
    if found is None:
        raise errors.NotAuthenticated("Token invalid/expired")
    outpost = await outposts.of_user(tx, found[1])
    if outpost is None:
        raise errors.PermissionDenied("Only an LDAP outpost's token may call this.")
    return outpost


def _provider_pk(request: web.Request) -> int:
    raw = request.match_info["lookup"]
    if not raw.isdigit() or len(raw) > 18:
        raise errors.ObjectNotFound("Not found.")
    return int(raw)


async def _served(
    request: web.Request, tx: store.Tx
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(outpost, ldap_providers row, application) of a call, or 401/403/404."""
    outpost = await _outpost(request, tx)
    pk = _provider_pk(request)
    # SECURITY: only a provider the calling outpost holds (and an application uses); another
    # outpost's is not found.
    linked = (await outposts.providers_of(tx, [outpost["pk"]]))[outpost["pk"]]
    row = await crud.find(tx, records.TABLE, pk=pk) if pk in linked else None
    application = (await records.applications_of(tx, [pk])).get(pk) if row else None
    if row is None or application is None:
        raise errors.ObjectNotFound("Not found.")
    return outpost, row, application


async def _session_user(tx: store.Tx, provider_pk: int, session_id: str) -> dict[str, Any]:
    """The active user of a live session a bind through this provider opened, or 403."""
    opened = await crud.find(tx, bind.SESSIONS, session_digest=session_id, provider=provider_pk)
    session = await crud.find(tx, sessions.TABLE, key_digest=session_id) if opened else None
    user = await crud.find(tx, users.TABLE, pk=session["user_pk"]) if session else None
    if session is None or session["expires"] <= util.now() or user is None or not user["is_active"]:
        raise errors.PermissionDenied("The session is not a live LDAP session of this provider.")
    return user


async def _body(request: web.Request, model: type[M]) -> M:
    """The JSON body as `model`, refused past `MAX_BODY` bytes (413) unread."""
    if request.content_type != "application/json":
        raise errors.UnsupportedMediaType(
            f'Unsupported media type "{request.content_type}" in request.'
        )
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise errors.PayloadTooLarge("Request body is too large.")
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise errors.PayloadTooLarge("Request body is too large.")
    try:
        data = json.loads(raw) if raw else {}
    except (ValueError, RecursionError):
        raise errors.BadRequest("JSON parse error.") from None
    return http.validate(model, data)


def _ip(request: web.Request) -> str:
    return net.client_ip(request) or ""


# The calls ----------------------------------------------------------------------------------


async def bind_(request: web.Request) -> web.Response:
    body = await _body(request, wire.ldap.BindRequest)
    async with request.app[state.STORE].read() as tx:
        _, provider, application = await _served(request, tx)
    password, code = bind.split_code(body.password, provider["mfa_support"])
    attempt = bind.Bind(
        provider=provider,
        application=application,
        username=body.username,
        password=password,
        code=code,
        client_ip=bind.client_address(body.remote_ip, _ip(request)),
        path=request.path,
    )
    try:
        result = await bind.run(request.app[flows_api.EXECUTOR], attempt)
    except bind.Refused as refused:
        # SECURITY: the reason and the username, never the password or the code.
        log.info(
            "ldap_bind_refused",
            provider=provider["pk"],
            reason=refused.reason,
            detail=refused.detail,
            username=body.username[:150],
        )
        return http.respond(refused.body(), status=refused.status)
    return http.respond(result)


async def unbind(request: web.Request) -> web.Response:
    """End the session (a logout: `logout` event, the providers' back-channel logouts). An
    unknown or already ended session is no error; another provider's is left alone."""
    body = await _body(request, wire.ldap.UnbindRequest)
    executor = request.app[flows_api.EXECUTOR]
    async with request.app[state.STORE].transaction() as tx:
        _, provider, _ = await _served(request, tx)
        opened = await crud.find(
            tx, bind.SESSIONS, session_digest=body.session_id, provider=provider["pk"]
        )
        user = await crud.find(tx, users.TABLE, pk=opened["user_pk"]) if opened else None
        ended = user is not None and await sessions.end_digest(tx, body.session_id)
        if ended:
            unbind_flow = provider["invalidation_flow"] or await records.invalidation_fallback(tx)
            flow = await crud.find(tx, "flows", pk=unbind_flow) if unbind_flow else None
            await events.record(
                tx,
                "logout",
                user=user,
                client_ip=_ip(request),
                context={"flow": flow["slug"] if flow else ""},
                retention=state.retention(request),
            )
    if ended and user is not None:
        for listener in executor.logout_listeners:
            await listener(body.session_id, user)
    return web.Response(status=204)


async def directory_(request: web.Request) -> web.Response:
    raw = request.query.get("since")
    since = None
    if raw is not None:
        if not raw.isdigit() or len(raw) > 18:
            raise errors.ValidationFailed.one("since", "Enter a valid generation.")
        since = int(raw)
    async with request.app[state.STORE].read() as tx:
        await _served(request, tx)
        answer = await directory.read(tx, since)
    return http.respond(answer)


async def search(request: web.Request) -> web.Response:
    body = await _body(request, wire.ldap.SearchRequest)
    async with request.app[state.STORE].read() as tx:
        _, provider, _ = await _served(request, tx)
        user = await _session_user(tx, provider["pk"], body.session_id)
        may = await grants.may_search(tx, provider["pk"], user)
        try:
            answer = await directory.search(tx, provider, user, may, body)
        except FilterError as exc:
            raise errors.ValidationFailed.one("filter", str(exc)) from None
    return http.respond(answer)


async def password(request: web.Request) -> web.Response:
    body = await _body(request, wire.ldap.PasswordChangeRequest)
    executor = request.app[flows_api.EXECUTOR]
    async with request.app[state.STORE].read() as tx:
        _, provider, _ = await _served(request, tx)
        user = await _session_user(tx, provider["pk"], body.session_id)
        bind_flow = await crud.find(tx, "flows", pk=provider["authorization_flow"])
    snapshot = await executor.definitions.get()
    described = events.http_request(request.method, request.path, bind.USER_AGENT)
    await passwords.change(
        executor.services, snapshot, bind_flow, user, body, _ip(request), described
    )
    return web.Response(status=204)


# authentik's check_access -------------------------------------------------------------------


async def check_access(request: web.Request) -> web.Response:
    slug = request.query.get("app_slug", "")
    if not slug or len(slug) > 50:
        raise errors.ValidationFailed.one("app_slug", "This field is required.")
    async with request.app[state.STORE].read() as tx:
        user, provider, trusted = await _asker(request, tx)
        application = await crud.find(tx, "applications", slug=slug)
        if application is None:
            raise errors.ObjectNotFound("Not found.")
        may = await grants.may_search(tx, provider["pk"], user)
    executor = request.app[flows_api.EXECUTOR]
    snapshot = await executor.definitions.get()
    (verdict,) = await app_access.verdicts(
        executor.services, snapshot, [application], user, _ip(request)
    )
    # SECURITY: as the applications' own check_access, policy messages (which may describe the
    # rules) go to an outpost or a superuser only; a user asking for themselves gets the verdict.
    messages = list(verdict.messages) if trusted else []
    return http.respond(
        wire.ldap.LDAPCheckAccess(
            has_search_permission=may,
            access=wire.ldap.PolicyResult(
                passing=app_access.opens(verdict), messages=messages, log_messages=[]
            ),
        )
    )


async def _asker(request: web.Request, tx: store.Tx) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """Whose access `check_access` tells, the LDAP provider, and whether the caller may read the
    policies' messages: an outpost's token names one of its bound sessions (`session_id`);
    anyone else asks for themselves."""
    session_id = request.query.get("session_id")
    if session_id is not None:
        if len(session_id) != 64 or not all(c in "0123456789abcdef" for c in session_id):
            raise errors.ValidationFailed.one("session_id", "Enter a valid session id.")
        _, provider, _ = await _served(request, tx)
        return await _session_user(tx, provider["pk"], session_id), provider, True
    principal = await auth.authenticate(request, tx)
    found = await crud.find(tx, records.TABLE, pk=_provider_pk(request))
    if found is None:
        raise errors.ObjectNotFound("Not found.")
    return principal.user, found, principal.is_superuser
