"""The OAuth2 / OpenID Connect endpoints under `/application/o/` (authentik's URLs).

The authorization endpoint validates the client and its redirect URI first: until both are known
good every error is a page here, never a redirect. Then it keeps the request server-side under a
random key, sends the browser through login (when needed) and the provider's authorization flow,
and answers the client when the flow has finished.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import secrets
import time
import urllib.parse
from typing import Any

from aiohttp import web
from authlib.oauth2.rfc6749 import errors as oauth_errors

from tessera.core import crypto, events
from tessera.core import web as pages
from tessera.core.api import flows as flows_api
from tessera.core.api import net
from tessera.core.flows import executor
from tessera.core.identity import sessions, util
from tessera.core.providers.oauth2 import claimcache, grants, tokens
from tessera.core.providers.oauth2.clients import Client
from tessera.core.providers.oauth2.resources import public_base
from tessera.core.providers.oauth2.service import Service, subject_with
from tessera.core.store import crud

SERVICE = web.AppKey("oauth2_service", Service)
PENDING_TTL = 1800
DEVICE_TTL = dt.timedelta(minutes=10)
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
MAX_PARAM = 2000
RESPONSE_TYPES = {
    "code",
    "id_token",
    "id_token token",
    "code id_token",
    "code token",
    "code id_token token",
}
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
DEVICE_GUESSES = 10  # wrong user codes one browser may try per window


def _service(request: web.Request) -> Service:
    return request.app[SERVICE]


def _json(
    body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(body, status=status, headers={**_NO_STORE, **(headers or {})})


def _oauth_error(error: oauth_errors.OAuth2Error, basic: bool = False) -> web.Response:
    body = {"error": error.error}
    if error.description:
        body["error_description"] = error.description
    headers = (
        {"WWW-Authenticate": 'Basic realm="oauth2"'} if error.status_code == 401 and basic else {}
    )
    return _json(body, status=error.status_code or 400, headers=headers)


def _page(request: web.Request, title: str, status: int = 200, **values: Any) -> web.Response:
    return pages.render(request, "oauth2.html", status=status, title=title, **values)


def _error_page(request: web.Request, message: str, status: int = 400) -> web.Response:
    return _page(request, "Request refused", status=status, page="error", message=message)


def _issuer(request: web.Request, client: Client) -> str:
    return client.issuer(public_base(request))


async def _form(request: web.Request) -> dict[str, list[str]]:
    if request.content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
        raise oauth_errors.InvalidRequestError(
            description="Send the parameters as application/x-www-form-urlencoded."
        )
    try:
        data = await request.post()
    except ValueError:
        raise oauth_errors.InvalidRequestError(description="Malformed form body.") from None
    out: dict[str, list[str]] = {}
    for name, value in data.items():
        if not isinstance(value, str):
            raise oauth_errors.InvalidRequestError(description="Files are not accepted.")
        out.setdefault(name, []).append(value)
    return out


# Token endpoint ------------------------------------------------------------------------------


async def token(request: web.Request) -> web.Response:
    basic = request.headers.get("Authorization", "").lower().startswith("basic ")
    try:
        form = await _form(request)
        parsed = grants.parse(form, request.headers.get("Authorization", ""))
        body = await grants.token(
            _service(request),
            parsed,
            net.client_ip(request) or "",
            lambda client: _issuer(request, client),
        )
    except oauth_errors.OAuth2Error as exc:
        return _oauth_error(exc, basic)
    return _json(body)


# Authorization endpoint ----------------------------------------------------------------------


def _single(query: Any) -> dict[str, str]:
    params: dict[str, str] = {}
    for name in set(query.keys()):
        values = query.getall(name)
        if len(values) != 1 or len(values[0]) > MAX_PARAM or "\x00" in values[0]:
            raise ValueError(name)
        params[name] = values[0]
    return params


def _deliver(
    request: web.Request, redirect_uri: str, mode: str, params: dict[str, str]
) -> web.StreamResponse:
    params = {k: v for k, v in params.items() if v is not None}
    if mode == "form_post":
        return _page(
            request,
            "Continue",
            page="form_post",
            action=redirect_uri,
            fields=sorted(params.items()),
        )
    encoded = urllib.parse.urlencode(params)
    if mode == "fragment":
        target = f"{redirect_uri}#{encoded}"
    else:
        joiner = "&" if urllib.parse.urlsplit(redirect_uri).query else "?"
        target = f"{redirect_uri}{joiner}{encoded}"
    return web.Response(status=302, headers={"Location": target, **_NO_STORE})


def _redirect_error(
    request: web.Request, pending: dict[str, Any], error: str, description: str
) -> web.StreamResponse:
    params = {"error": error, "error_description": description}
    if pending.get("state") is not None:
        params["state"] = pending["state"]
    return _deliver(request, pending["redirect_uri"], pending["response_mode"], params)


async def authorize(request: web.Request) -> web.StreamResponse:
    service = _service(request)
    try:
        if request.method == "POST":
            form = await _form(request)
            params = {k: v[0] for k, v in form.items() if len(v) == 1 and len(v[0]) <= MAX_PARAM}
            if len(params) != len(form):
                raise ValueError
        else:
            params = _single(request.query)
    except (ValueError, oauth_errors.OAuth2Error):
        return _error_page(request, "Malformed authorization request.")
    if "continue" in params:
        pending = await service.cache.get(_pending_key(params["continue"]))
        if not isinstance(pending, dict):
            return _error_page(request, "This authorization request has expired; start again.")
        return await _proceed(request, service, params["continue"], pending)
    client = await service.clients.by_client_id(params.get("client_id", ""))
    if client is None or client.application is None:
        return _error_page(request, "Unknown client.", status=400)
    redirect_uri = params.get("redirect_uri")
    if redirect_uri is None:
        registered = [u for u in client.redirect_uris if u.redirect_uri_type == "authorization"]
        if len(registered) == 1 and registered[0].matching_mode == "strict":
            redirect_uri = registered[0].url
    if not redirect_uri or not client.redirect_allowed(redirect_uri):
        # SECURITY: never redirect to an unregistered URI, not even to report the error.
        return _error_page(
            request, "The redirect URI is not registered for this application.", status=400
        )
    pending = _validate(client, params, redirect_uri)
    if "error" in pending:
        return _redirect_error(request, pending, pending["error"], pending["error_description"])
    key = secrets.token_urlsafe(32)
    await service.cache.set(_pending_key(key), pending, PENDING_TTL)
    return await _proceed(request, service, key, pending)


def _pending_key(key: str) -> str:
    return "oauth2:authorize:" + crypto.secrets.sha256_hex(key[:128])


def _grant_type(response_type: str) -> str:
    """authentik's grant name for an authorization request: a code alone, tokens alone (implicit)
    or both (hybrid)."""
    kinds = response_type.split()
    if kinds == ["code"]:
        return "authorization_code"
    return "hybrid" if "code" in kinds else "implicit"


def _validate(client: Client, params: dict[str, str], redirect_uri: str) -> dict[str, Any]:
    """The authorization request as kept while the user logs in, or its error to redirect."""
    response_type = " ".join(sorted(params.get("response_type", "").split(), key=_rt_order))
    implicit = response_type != "code"
    default_mode = "fragment" if implicit else "query"
    mode = params.get("response_mode", default_mode)
    pending: dict[str, Any] = {
        "client_id": client.client_id,
        "redirect_uri": redirect_uri,
        # What the request said (RFC 6749 §4.1.3: the token request repeats it only if given).
        "redirect_uri_param": params.get("redirect_uri", ""),
        "response_type": response_type,
        "response_mode": mode if mode in ("query", "fragment", "form_post") else default_mode,
        "state": params.get("state"),
        "created": time.time(),
    }

    def fail(error: str, description: str) -> dict[str, Any]:
        return {**pending, "error": error, "error_description": description}

    if response_type not in RESPONSE_TYPES:
        return fail("unsupported_response_type", "Unsupported response_type.")
    if not client.may_use(_grant_type(response_type)):
        grant = _grant_type(response_type)
        return fail("unauthorized_client", f"This client may not use the {grant} grant.")
    if mode not in ("query", "fragment", "form_post"):
        return fail("invalid_request", "Unsupported response_mode.")
    if implicit and mode == "query":
        return fail("invalid_request", "Tokens are never sent in the query string.")
    scopes = list(dict.fromkeys(params.get("scope", "").split()))
    if "id_token" in response_type.split() and "openid" not in scopes:
        return fail("invalid_scope", "id_token responses need the openid scope.")
    nonce = params.get("nonce")
    if "id_token" in response_type.split() and not nonce:
        return fail("invalid_request", "A nonce is required for this response_type.")
    prompt = set(params.get("prompt", "").split())
    if not prompt <= {"none", "login", "consent", "select_account"}:
        return fail("invalid_request", "Unsupported prompt value.")
    if "none" in prompt and len(prompt) > 1:
        return fail("invalid_request", "prompt=none cannot be combined.")
    max_age: int | None = None
    if "max_age" in params:
        try:
            max_age = int(params["max_age"])
        except ValueError:
            return fail("invalid_request", "max_age must be an integer.")
        if max_age < 0:
            return fail("invalid_request", "max_age must not be negative.")
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method", "plain" if challenge else None)
    if challenge is not None:
        if not _CHALLENGE.match(challenge):
            return fail("invalid_request", "Invalid code_challenge.")
        if method not in ("plain", "S256"):
            return fail("invalid_request", "Unsupported code_challenge_method.")
    elif "code" in response_type.split() and not client.confidential:
        return fail("invalid_request", "PKCE (code_challenge) is required for public clients.")
    pending.update(
        scopes=[s for s in scopes if s == "openid" or s in client.mappings],
        nonce=nonce,
        prompt=sorted(prompt),
        max_age=max_age,
        code_challenge=challenge,
        code_challenge_method=method if challenge else None,
        login_hint=params.get("login_hint", "")[:255],
    )
    return pending


def _rt_order(part: str) -> int:
    return {"code": 0, "id_token": 1, "token": 2}.get(part, 3)


async def _session_row(service: Service, who: executor.Browser) -> dict[str, Any] | None:
    if who.user is None:
        return None
    async with service.db.read() as tx:
        return await crud.find(tx, sessions.TABLE, key_digest=sessions.digest(who.key))


async def _proceed(
    request: web.Request, service: Service, key: str, pending: dict[str, Any]
) -> web.StreamResponse:
    client = await service.clients.by_client_id(pending["client_id"])
    if client is None or client.application is None:
        return _error_page(request, "Unknown client.")
    who = await flows_api.browser(request)
    session = await _session_row(service, who)
    prompt = set(pending["prompt"])
    continue_path = "/application/o/authorize/?" + urllib.parse.urlencode({"continue": key})
    login_needed = session is None
    if session is not None:
        auth_time = session["created"].timestamp()
        if "login" in prompt and auth_time < pending["created"]:
            login_needed = True
        too_old = pending["max_age"] is not None and time.time() - auth_time > pending["max_age"]
        if too_old and auth_time < pending["created"]:  # a login after the request will do
            login_needed = True
    if login_needed:
        if "none" in prompt:
            return _redirect_error(request, pending, "login_required", "Login is required.")
        query = urllib.parse.urlencode({"next": continue_path})
        restart = "&restart=1" if session is not None else ""
        raise web.HTTPFound(f"/if/flow/{pages.AUTH_FLOW}/?{query}{restart}")
    assert who.user is not None and session is not None
    if not await grants.may_use(
        service, client, who.user, who.client_ip, {"oauth_grant_type": "authorization_code"}
    ):
        if "none" in prompt:
            return _redirect_error(request, pending, "access_denied", "Access denied.")
        return _error_page(request, "You are not allowed to use this application.", 403)
    if not pending.get("flow_started"):
        refused = await service.flows.start(
            client.authorization_flow,
            who,
            context={
                "application": client.application["pk"],
                "consent_permissions": pending["scopes"],
                "oauth_prompt": pending["prompt"],
            },
            next_path=continue_path,
            done_key=key,
        )
        if refused:
            if "none" in prompt:
                return _redirect_error(request, pending, "access_denied", refused)
            return _error_page(request, refused, 403)
        pending["flow_started"] = True
        await service.cache.set(_pending_key(key), pending, PENDING_TTL)
        # A flow that needs nothing from the user (implicit consent) finishes right here.
        reply = await service.flows.get(client.authorization_flow, who, {})
        if reply.body.get("component") != executor.REDIRECT:
            if "none" in prompt:
                return _redirect_error(
                    request, pending, "consent_required", "The user has to consent."
                )
            raise web.HTTPFound(f"/if/flow/{client.authorization_flow}/")
    outcome = await service.flows.completed(who, key)
    if outcome is None:
        return _error_page(request, "The authorization was not completed; start again.")
    if outcome.get("user") != who.user["pk"]:
        return _error_page(request, "The authorization was completed by another user.", 403)
    await service.cache.delete(_pending_key(key))
    return await _respond(request, service, client, who, session, pending)


async def _respond(
    request: web.Request,
    service: Service,
    client: Client,
    who: executor.Browser,
    session: dict[str, Any],
    pending: dict[str, Any],
) -> web.StreamResponse:
    assert who.user is not None and client.application is not None
    app = client.application
    kinds = pending["response_type"].split()
    issuer = _issuer(request, client)
    grant = tokens.Grant(
        user_pk=who.user["pk"],
        scopes=pending["scopes"],
        auth_time=int(session["created"].timestamp()),
        amr=["pwd"],
        nonce=pending["nonce"],
        sid=session["key_digest"],
    )
    out: dict[str, str] = {}
    subject = tokens.Subject(who.user)
    if "token" in kinds or "id_token" in kinds or client.sub_mode == "user_email":
        subject = await grants.subject_of(service, who.user, client)
    if client.sub_mode == "user_email" and not subject.email_unique:
        # SECURITY: refused before a code is issued too (the token endpoint would refuse it).
        return _redirect_error(request, pending, "access_denied", tokens.EMAIL_SUBJECT_REFUSED)
    claims = await tokens.scope_claims(client, subject, grant.scopes, who.client_ip)
    code: str | None = None
    async with service.db.transaction() as tx:
        lifetime = max(client.refresh_ttl, client.access_ttl, client.code_ttl)
        grant_pk = await tokens.new_grant(tx, client, grant, util.now() + lifetime)
        if "code" in kinds:
            code = tokens.new_secret()
            await crud.insert(
                tx,
                "oauth2_codes",
                {
                    "digest": tokens.digest(service.keyring, code),
                    "grant": grant_pk,
                    "redirect_uri": pending["redirect_uri_param"],
                    "code_challenge": pending["code_challenge"],
                    "code_challenge_method": pending["code_challenge_method"],
                    "used": False,
                    "expires": util.now() + client.code_ttl,
                },
                recoverable=False,
            )
            out["code"] = code
        access: str | None = None
        if "token" in kinds:
            minted = tokens.mint(
                client,
                subject,
                grant,
                claims,
                issuer=issuer,
                keyring=service.keyring,
                with_id_token=False,
            )
            await tokens.store_minted(tx, minted, grant_pk, grant.scopes)
            access = minted.body["access_token"]
            out.update(
                access_token=access,
                token_type="Bearer",  # noqa: S106 - the token type
                expires_in=str(minted.body["expires_in"]),
            )
        if "id_token" in kinds:
            out["id_token"] = tokens.id_token_for_implicit(
                client,
                subject,
                grant,
                claims,
                issuer=issuer,
                keyring=service.keyring,
                access=access,
                code=code,
            )
        await events.record(
            tx,
            "authorize_application",
            user=who.user,
            client_ip=who.client_ip,
            context={
                "authorized_application": {
                    "pk": app["pk"],
                    "name": app["name"],
                    "slug": app["slug"],
                },
                "scopes": " ".join(grant.scopes),
                "flow": client.authorization_flow,
            },
            retention=service.retention,
            app="tessera.core.providers.oauth2",
        )
    if pending.get("state") is not None:
        out["state"] = pending["state"]
    return _deliver(request, pending["redirect_uri"], pending["response_mode"], out)


# Bearer tokens: userinfo, introspection, revocation ------------------------------------------


async def _verify_access(
    service: Service, raw: str, client: Client | None = None
) -> tuple[Client, dict[str, Any]] | None:
    """The client and claims of a live, unrevoked access token issued here, or None."""
    verified = await _verify_signature(service, raw, client)
    if verified is None or await tokens.is_revoked(service.db, verified[1]["jti"]):
        return None
    return verified


async def _verify_signature(
    service: Service, raw: str, client: Client | None = None
) -> tuple[Client, dict[str, Any]] | None:
    """The client and claims of an unexpired access token signed here (revocation not checked)."""
    try:
        peek = crypto.jwt.unverified_claims(raw)
    except crypto.jwt.InvalidToken:
        return None
    client_id = peek.get("azp")
    if not isinstance(client_id, str):
        return None
    if client is None:
        client = await service.clients.by_client_id(client_id)
    if client is None or client.client_id != client_id:
        return None
    try:
        _header, claims = crypto.jwt.verify(raw, client.verify_keys)
    except crypto.jwt.InvalidToken:
        return None
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp <= time.time():
        return None
    if "scope" not in claims or not isinstance(claims.get("jti"), str):
        return None  # an ID token is not an access token
    return client, claims


def _bearer_error(description: str) -> web.Response:
    return _json(
        {"error": "invalid_token", "error_description": description},
        status=401,
        headers={
            "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'
        },
    )


async def userinfo(request: web.Request) -> web.Response:
    service = _service(request)
    header = request.headers.get("Authorization", "")
    raw = ""
    if header.lower().startswith("bearer "):
        raw = header[7:].strip()
    elif request.method == "POST" and request.content_type == "application/x-www-form-urlencoded":
        form = await request.post()
        value = form.get("access_token")
        raw = value if isinstance(value, str) else ""
    if not raw:
        return _json(
            {"error": "invalid_request", "error_description": "No bearer token."},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="oauth2"'},
        )
    address = net.client_ip(request) or ""
    key = claimcache.key_of(raw)
    entry = service.claim_cache.get(key)
    if entry is not None:
        if entry.user_pk is None:
            return _bearer_error(entry.refusal)
        body = entry.userinfo.get("")
        if body is None:
            body = entry.userinfo.get(address)
        if body is not None:
            return _json(body)
    stamp = service.claim_cache.stamp()  # before the reads: a commit during them voids the entry
    verified = await _verify_signature(service, raw)
    if verified is None:
        return _bearer_error("The access token is invalid or expired.")
    client, claims = verified
    user_pk = tokens.user_of(service.keyring, client, claims)
    if user_pk is None:
        return _bearer_error("The access token is invalid or expired.")
    snapshot = await service.definitions.get()
    async with service.db.read() as tx:  # one transaction: revocation, user, groups
        revoked = await crud.find(tx, "oauth2_revoked", jti=claims["jti"]) is not None
        user, member_of = await service.user_and_groups(tx, user_pk)
    fresh = claimcache.Entry(stamp, float(claims["exp"]), client.pk, claims, user_pk)
    if entry is not None:
        fresh.userinfo.update(entry.userinfo)
        fresh.introspection.update(entry.introspection)
    refusal = ""
    if revoked:
        refusal = "The access token is invalid or expired."
    elif user is None or not tokens.may_hold_tokens(user):
        refusal = "The user is not active."
    if refusal:
        fresh.user_pk, fresh.refusal = None, refusal
        service.claim_cache.put(key, fresh)
        return _bearer_error(refusal)
    assert user is not None
    scopes = str(claims.get("scope", "")).split()
    subject = subject_with(snapshot, user, member_of)
    body = await tokens.scope_claims(client, subject, scopes, address)
    body["sub"] = claims["sub"]
    by_caller = tokens.claims_need_caller(client, scopes)
    claimcache.remember_userinfo(fresh, address if by_caller else "", body)
    service.claim_cache.put(key, fresh)
    return _json(body)


async def _client_auth(request: web.Request, service: Service) -> Client:
    form = await _form(request)
    parsed = grants.parse(
        {**form, "grant_type": ["introspection"]}, request.headers.get("Authorization", "")
    )
    return await grants.authenticate(service, parsed)


async def introspect(request: web.Request) -> web.Response:
    service = _service(request)
    try:
        form = await _form(request)
        client = await _client_auth(request, service)
    except oauth_errors.OAuth2Error as exc:
        return _oauth_error(exc, basic=True)
    raw = (form.get("token") or [""])[0]
    inactive = _json({"active": False})
    if not raw or len(raw) > 16384:
        return inactive
    key = claimcache.key_of(raw)
    entry = service.claim_cache.get(key)
    if entry is not None and client.pk in entry.introspection:
        return _json(entry.introspection[client.pk])
    stamp = service.claim_cache.stamp()  # before the reads: a commit during them voids the entry
    verified = await _verify_access(service, raw, client)
    if verified is not None:
        _client, claims = verified
        # SECURITY: the token's user is checked as userinfo and the token endpoint check it
        # (`tokens.may_hold_tokens`): a deactivated or deleted user's token is not active.
        user_pk = tokens.user_of(service.keyring, client, claims)
        async with service.db.read() as tx:
            holder = await crud.find(tx, "users", pk=user_pk) if user_pk is not None else None
        answer: dict[str, Any] = {"active": False}
        if tokens.may_hold_tokens(holder):
            answer = {
                "active": True,
                "scope": claims.get("scope", ""),
                "client_id": client.client_id,
                "token_type": "Bearer",
                "exp": claims["exp"],
                "iat": claims.get("iat"),
                "sub": claims.get("sub"),
                "aud": claims.get("aud"),
                "iss": claims.get("iss"),
                "jti": claims.get("jti"),
                "username": claims.get("preferred_username"),
            }
        if entry is None:
            entry = claimcache.Entry(stamp, float(claims["exp"]), client.pk, claims, user_pk)
            if not answer["active"]:
                entry.user_pk, entry.refusal = None, "The user is not active."
        entry.introspection[client.pk] = answer
        service.claim_cache.put(key, entry)
        return _json(answer)
    async with service.db.read() as tx:
        row = await crud.find(
            tx, "oauth2_refresh_tokens", digest=tokens.digest(service.keyring, raw)
        )
        grant_row = await crud.find(tx, "oauth2_grants", pk=row["grant"]) if row else None
        user = await crud.find(tx, "users", pk=grant_row["user_pk"]) if grant_row else None
    if (
        row is None
        or grant_row is None
        or user is None
        or not tokens.may_hold_tokens(user)  # SECURITY: as the refresh grant itself checks
        or grant_row["provider"] != client.pk
        or row["used"]
        or grant_row["revoked"]
        or row["expires"] <= util.now()
    ):
        return inactive
    return _json(
        {
            "active": True,
            "scope": row["scope"],
            "client_id": client.client_id,
            "token_type": "refresh_token",
            "exp": int(row["expires"].timestamp()),
            "sub": tokens.sub_of(client, user, service.keyring),
            "username": user["username"],
        }
    )


async def revoke(request: web.Request) -> web.Response:
    service = _service(request)
    try:
        form = await _form(request)
        client = await _client_auth(request, service)
    except oauth_errors.OAuth2Error as exc:
        return _oauth_error(exc, basic=True)
    raw = (form.get("token") or [""])[0]
    if not raw or len(raw) > 16384:
        return _json({})
    async with service.db.transaction() as tx:
        row = await crud.find(
            tx, "oauth2_refresh_tokens", digest=tokens.digest(service.keyring, raw)
        )
        grant_row = await crud.find(tx, "oauth2_grants", pk=row["grant"]) if row else None
        if row is not None and grant_row is not None and grant_row["provider"] == client.pk:
            await tokens.revoke_grant(tx, grant_row["pk"])  # RFC 7009 §2.1: and its access tokens
            return _json({})
    verified = await _verify_access(service, raw, client)
    if verified is not None:
        _client, claims = verified
        async with service.db.transaction() as tx:
            if not await crud.exists(tx, "oauth2_revoked", jti=claims["jti"]):
                await crud.insert(
                    tx,
                    "oauth2_revoked",
                    {
                        "jti": claims["jti"],
                        "expires": dt.datetime.fromtimestamp(claims["exp"], dt.UTC),
                    },
                )
    return _json({})


# Discovery and keys --------------------------------------------------------------------------


async def _client_of_slug(request: web.Request) -> Client:
    client = await _service(request).clients.by_slug(request.match_info["slug"])
    if client is None:
        raise web.HTTPNotFound(text='{"detail": "Not found."}', content_type="application/json")
    return client


async def discovery(request: web.Request) -> web.Response:
    client = await _client_of_slug(request)
    base = public_base(request)
    slug = request.match_info["slug"]
    claims = {"sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "amr", "nonce", "sid"}
    for scope in client.mappings:
        claims |= _DEFAULT_CLAIMS.get(scope, set())
    body = {
        "issuer": _issuer(request, client),
        "authorization_endpoint": f"{base}/application/o/authorize/",
        "token_endpoint": f"{base}/application/o/token/",
        "userinfo_endpoint": f"{base}/application/o/userinfo/",
        "end_session_endpoint": f"{base}/application/o/{slug}/end-session/",
        "introspection_endpoint": f"{base}/application/o/introspect/",
        "revocation_endpoint": f"{base}/application/o/revoke/",
        "device_authorization_endpoint": f"{base}/application/o/device/",
        "jwks_uri": f"{base}/application/o/{slug}/jwks/",
        "response_types_supported": sorted(RESPONSE_TYPES),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "implicit",
            "client_credentials",
            "password",
            grants.DEVICE_GRANT,
        ],
        "id_token_signing_alg_values_supported": [client.signing.alg],
        "subject_types_supported": ["public"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_post",
            "client_secret_basic",
        ],
        "revocation_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "acr_values_supported": [tokens.ACR],
        "scopes_supported": sorted({"openid", *client.mappings}),
        "request_parameter_supported": False,
        "claims_parameter_supported": False,
        "claims_supported": sorted(claims),
        "code_challenge_methods_supported": ["plain", "S256"],
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
        "frontchannel_logout_session_supported": False,
    }
    return web.json_response(body)  # CORS: the provider's origins (`cors`), as authentik


_DEFAULT_CLAIMS = {
    "email": {"email", "email_verified"},
    "profile": {"name", "given_name", "preferred_username", "nickname", "groups"},
    "entitlements": {"entitlements", "roles"},
}


async def jwks(request: web.Request) -> web.Response:
    client = await _client_of_slug(request)
    return web.json_response(
        crypto.jwt.jwks(client.verify_keys), headers={"Access-Control-Allow-Origin": "*"}
    )


async def provider_root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(
        f"/application/o/{request.match_info['slug']}/.well-known/openid-configuration"
    )


_ = html
