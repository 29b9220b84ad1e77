"""The token endpoint as a small async pipeline: parse the request once into a `TokenRequest`,
authenticate the client, then hand it to the one `Grant` class whose GRANT_TYPE it names.

authlib's server classes are synchronous and built around an ORM; we use its error classes (codes
and statuses) and keep the store calls async.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from authlib.oauth2.rfc6749 import errors as oauth_errors
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oauth2.rfc8628 import errors as device_errors

from tessera.core import crypto, events, store
from tessera.core.identity import tokens as api_tokens
from tessera.core.identity import util
from tessera.core.policies import engine
from tessera.core.providers.oauth2 import tokens
from tessera.core.providers.oauth2.clients import Client
from tessera.core.providers.oauth2.service import Service
from tessera.core.store import crud

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
MAX_PARAM = 4096
_PRINTABLE = re.compile(r"^[\x20-\x7e]*$")
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
DEVICE_INTERVAL = 5

OAuthError = Exception  # authlib's OAuth2Error (untyped library)


def invalid_client(description: str = "Client authentication failed.") -> Exception:
    error: Exception = oauth_errors.InvalidClientError(description=description)
    error.status_code = 401  # type: ignore[attr-defined]
    return error


@dataclass(frozen=True)
class TokenRequest:
    grant_type: str
    client_id: str
    client_secret: str | None
    basic: bool
    params: Mapping[str, str]

    def get(self, name: str) -> str | None:
        return self.params.get(name)

    def scopes(self) -> list[str] | None:
        raw = self.params.get("scope")
        return None if raw is None else list(dict.fromkeys(raw.split()))


def parse(form: Mapping[str, list[str]], authorization: str) -> TokenRequest:
    """Validate the token request's shape: every parameter once, printable and bounded."""
    params: dict[str, str] = {}
    for name, values in form.items():
        if len(values) != 1:
            raise oauth_errors.InvalidRequestError(description=f"Repeated parameter: {name[:40]}")
        value = values[0]
        if len(value) > MAX_PARAM or not _PRINTABLE.match(value):
            raise oauth_errors.InvalidRequestError(description=f"Invalid parameter: {name[:40]}")
        params[name] = value
    grant_type = params.get("grant_type")
    if not grant_type:
        raise oauth_errors.InvalidRequestError(description="Missing grant_type.")
    client_id, secret, basic = params.get("client_id"), params.get("client_secret"), False
    if authorization:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() == "basic":
            if "client_secret" in params:
                raise oauth_errors.InvalidRequestError(
                    description="Use one client authentication method."
                )
            try:
                decoded = base64.b64decode(encoded.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise invalid_client("Malformed Basic credentials.") from None
            user, sep, password = decoded.partition(":")
            if not sep:
                raise invalid_client("Malformed Basic credentials.")
            basic_id = urllib.parse.unquote_plus(user)
            if client_id is not None and client_id != basic_id:
                raise oauth_errors.InvalidRequestError(description="client_id does not match.")
            client_id, secret, basic = basic_id, urllib.parse.unquote_plus(password), True
    if not client_id:
        raise invalid_client("Missing client_id.")
    return TokenRequest(grant_type, client_id, secret, basic, params)


async def authenticate(service: Service, request: TokenRequest) -> Client:
    client = await service.clients.by_client_id(request.client_id)
    if client is None:
        # Spend the same time as a real comparison so that client ids cannot be probed.
        crypto.secrets.equal("x" * 32, (request.client_secret or "")[:32].ljust(32))
        raise invalid_client()
    if client.confidential:
        if request.client_secret is None or not crypto.secrets.equal(
            client.secret.reveal(), request.client_secret
        ):
            raise invalid_client()
    elif request.client_secret and not crypto.secrets.equal(
        client.secret.reveal(), request.client_secret
    ):
        raise invalid_client()
    return client


@dataclass
class Context:
    service: Service
    client: Client
    request: TokenRequest
    client_ip: str
    issuer: str


class Grant:
    GRANT_TYPE: ClassVar[str]

    async def handle(self, ctx: Context) -> dict[str, Any]:
        raise NotImplementedError  # every grant class below overrides it


async def subject_of(
    service: Service, user: dict[str, Any], client: Client | None = None
) -> tokens.Subject:
    return await service.subject_of(user, client)


async def may_use(
    service: Service,
    client: Client,
    user: dict[str, Any],
    client_ip: str,
    context: dict[str, Any] | None = None,
) -> bool:
    """The application's policy bindings for `user` (no bindings: allowed, as in authentik)."""
    app = client.application
    if app is None:
        return False
    snapshot = await service.definitions.get()
    loaded = await snapshot.policy_load(service.db, app["pk"], user)
    if not loaded.rows:
        return True
    result = await engine.decide(
        loaded,
        app["policy_engine_mode"],
        engine.Request(
            user=user,
            client_ip=client_ip,
            cache=service.cache,
            context=dict(context or {}),
            result_ttl=service.settings.cache.timeout_policies,
        ),
        service.db,
    )
    return result.passing and not result.error


async def suspicious(
    service: Service, tx: store.Tx, ctx: Context, reason: str, user: dict[str, Any] | None = None
) -> None:
    await events.record(
        tx,
        "suspicious_request",
        user=user,
        client_ip=ctx.client_ip,
        context={"reason": reason, "provider": ctx.client.name, "client_id": ctx.client.client_id},
        retention=service.retention,
        app="tessera.core.providers.oauth2",
    )


def _check_scope(requested: list[str] | None, granted: list[str]) -> list[str]:
    if requested is None:
        return granted
    extra = set(requested) - set(granted)
    if extra:
        raise oauth_errors.InvalidScopeError(
            description="The requested scope exceeds the one originally granted."
        )
    return requested


def _allowed_scopes(client: Client, requested: list[str] | None) -> list[str]:
    wanted = requested if requested is not None else ["openid"]
    return [s for s in wanted if s == "openid" or s in client.mappings]


class AuthorizationCodeGrant(Grant):
    GRANT_TYPE = "authorization_code"

    async def handle(self, ctx: Context) -> dict[str, Any]:
        code = ctx.request.get("code")
        redirect_uri = ctx.request.get("redirect_uri")
        verifier = ctx.request.get("code_verifier")
        if not code:
            raise oauth_errors.InvalidRequestError(description="Missing code.")
        service, client = ctx.service, ctx.client
        code_digest = tokens.digest(service.keyring, code)
        async with service.db.transaction() as tx:
            row = await crud.find(tx, "oauth2_codes", digest=code_digest)
            grant_row = await crud.find(tx, "oauth2_grants", pk=row["grant"]) if row else None
            if row is None or grant_row is None:
                raise oauth_errors.InvalidGrantError(description="Invalid code.")
            if grant_row["provider"] != client.pk:
                await suspicious(service, tx, ctx, "code presented by another client")
                raise oauth_errors.InvalidGrantError(description="Invalid code.")
            if row["used"]:
                # RFC 6749 §4.1.2: a code used twice revokes what was issued from it.
                await tokens.revoke_grant(tx, grant_row["pk"])
                await suspicious(service, tx, ctx, "authorization code reused")
                return {"_commit_error": oauth_errors.InvalidGrantError(description="Code used.")}
            if row["expires"] <= util.now() or grant_row["revoked"]:
                raise oauth_errors.InvalidGrantError(description="Code expired.")
            # The authorization request's redirect_uri, repeated exactly; none if it gave none.
            if (row["redirect_uri"] or redirect_uri is not None) and not crypto.secrets.equal(
                row["redirect_uri"], redirect_uri or ""
            ):
                raise oauth_errors.InvalidGrantError(description="redirect_uri does not match.")
            _check_pkce(row, verifier, client)
            await crud.update(
                tx, "oauth2_codes", {"digest": code_digest}, {"used": True}, recoverable=False
            )
            return await _issue(ctx, tx, tokens.grant_of(grant_row))


async def _issue(ctx: Context, tx: store.Tx, grant: tokens.Grant) -> dict[str, Any]:
    """Tokens for a stored grant (code, refresh and device grants): its user must still be
    active; the access token's id and the refresh token are written under the grant."""
    user = await crud.find(tx, "users", pk=grant.user_pk)
    if user is None or not tokens.may_hold_tokens(user):
        raise oauth_errors.InvalidGrantError(description="The user is not active.")
    assert grant.pk is not None
    subject = await subject_of(ctx.service, user, ctx.client)
    claims = await tokens.scope_claims(ctx.client, subject, grant.scopes, ctx.client_ip)
    minted = tokens.mint(
        ctx.client,
        subject,
        grant,
        claims,
        issuer=ctx.issuer,
        keyring=ctx.service.keyring,
        with_refresh=True,
    )
    await tokens.store_minted(tx, minted, grant.pk, grant.scopes)
    return minted.body


def _check_pkce(row: dict[str, Any], verifier: str | None, client: Client) -> None:
    challenge = row["code_challenge"]
    if challenge is None:
        if verifier is not None:
            raise oauth_errors.InvalidGrantError(description="No code_challenge was sent.")
        if not client.confidential:
            raise oauth_errors.InvalidGrantError(description="PKCE is required.")
        return
    if verifier is None or not _VERIFIER.match(verifier):
        raise oauth_errors.InvalidGrantError(description="Invalid code_verifier.")
    computed = (
        create_s256_code_challenge(verifier) if row["code_challenge_method"] == "S256" else verifier
    )
    if not crypto.secrets.equal(computed, challenge):
        raise oauth_errors.InvalidGrantError(description="Invalid code_verifier.")


class RefreshTokenGrant(Grant):
    GRANT_TYPE = "refresh_token"

    async def handle(self, ctx: Context) -> dict[str, Any]:
        presented = ctx.request.get("refresh_token")
        if not presented:
            raise oauth_errors.InvalidRequestError(description="Missing refresh_token.")
        service, client = ctx.service, ctx.client
        token_digest = tokens.digest(service.keyring, presented)
        async with service.db.transaction() as tx:
            row = await crud.find(tx, "oauth2_refresh_tokens", digest=token_digest)
            grant_row = await crud.find(tx, "oauth2_grants", pk=row["grant"]) if row else None
            if row is None or grant_row is None or grant_row["provider"] != client.pk:
                raise oauth_errors.InvalidGrantError(description="Invalid refresh token.")
            if row["used"]:
                # A rotated token came back: someone holds a copy. End the whole family.
                await tokens.revoke_grant(tx, grant_row["pk"])
                await suspicious(service, tx, ctx, "refresh token reused")
                return {
                    "_commit_error": oauth_errors.InvalidGrantError(
                        description="Refresh token already used; the grant is revoked."
                    )
                }
            if row["expires"] <= util.now() or grant_row["revoked"]:
                raise oauth_errors.InvalidGrantError(description="Refresh token expired.")
            granted = row["scope"].split()
            scopes = _check_scope(ctx.request.scopes(), granted)
            if "offline_access" not in scopes:
                raise oauth_errors.InvalidScopeError(description="offline_access is required.")
            await crud.update(
                tx,
                "oauth2_refresh_tokens",
                {"digest": token_digest},
                {"used": True},
                recoverable=False,
            )
            grant = tokens.grant_of(grant_row)
            grant.scopes = scopes
            return await _issue(ctx, tx, grant)


class ClientCredentialsGrant(Grant):
    """The provider's own service account, or (authentik's form) `username` plus an app
    password of that user as `password`."""

    GRANT_TYPE = "client_credentials"

    async def handle(self, ctx: Context) -> dict[str, Any]:
        service, client = ctx.service, ctx.client
        if not client.confidential and ctx.request.get("username") is None:
            raise oauth_errors.UnauthorizedClientError(
                description="Public clients cannot use client_credentials."
            )
        username, password = ctx.request.get("username"), ctx.request.get("password")
        if username is not None or password is not None:
            user = await _app_password_user(service, username or "", password or "")
            if user is None:
                raise oauth_errors.InvalidGrantError(description="Invalid username or password.")
        else:
            subject = await service.service_account(client)
            user = subject.user
            # SECURITY: the account is found by its name; a row of another type under that
            # name (made before the name was reserved) is never the client's identity.
            if user["type"] != "service_account":
                raise oauth_errors.InvalidGrantError(
                    description="The provider's service account name is held by another user."
                )
            if not user["is_active"]:
                raise oauth_errors.InvalidGrantError(description="The service account is inactive.")
        if not await may_use(
            service, client, user, ctx.client_ip, {"oauth_grant_type": self.GRANT_TYPE}
        ):
            raise oauth_errors.InvalidGrantError(description="Access to the application denied.")
        scopes = _allowed_scopes(client, ctx.request.scopes())
        scopes = [s for s in scopes if s != "offline_access"]
        grant = tokens.Grant(user["pk"], scopes, int(time.time()), amr=["pwd"] if username else [])
        if username is not None or password is not None:
            subject = (
                await subject_of(ctx.service, user, client)
                if _needs_groups(client, scopes) or client.sub_mode == "user_email"
                else tokens.Subject(user)
            )
        claims = await tokens.scope_claims(client, subject, scopes, ctx.client_ip)
        # RFC 6749 §4.4.3: an access token only. An ID token states that an end user logged in
        # to the client (OIDC Core §2), which no one did here. (authentik adds one; a client that
        # wants the claims reads them from the access token, which carries them all.)
        minted = tokens.mint(
            client,
            subject,
            grant,
            claims,
            issuer=ctx.issuer,
            keyring=service.keyring,
            with_id_token=False,
        )
        return minted.body


class PasswordGrant(ClientCredentialsGrant):
    """authentik treats `password` as client_credentials with an app password."""

    GRANT_TYPE = "password"


def _needs_groups(client: Client, scopes: list[str]) -> bool:
    """Whether a mapping of `scopes` may read the user's groups (openid and email do not)."""
    return any(s in client.mappings for s in scopes if s not in ("openid", "email"))


async def _app_password_user(
    service: Service, username: str, password: str
) -> dict[str, Any] | None:
    if not username or not password or len(password) > 512:
        return None
    async with service.db.read() as tx:
        found = await api_tokens.authenticate(tx, service.keyring, password, intent="app_password")
    if found is None:
        return None
    _token, user = found
    if not crypto.secrets.equal(user["username"], username):
        return None
    return user


class DeviceCodeGrant(Grant):
    GRANT_TYPE = DEVICE_GRANT

    async def handle(self, ctx: Context) -> dict[str, Any]:
        presented = ctx.request.get("device_code")
        if not presented:
            raise oauth_errors.InvalidRequestError(description="Missing device_code.")
        service, client = ctx.service, ctx.client
        code_digest = tokens.digest(service.keyring, presented)
        async with service.db.transaction() as tx:
            row = await crud.find(tx, "oauth2_device_codes", digest=code_digest)
            if row is None or row["provider"] != client.pk:
                raise oauth_errors.InvalidGrantError(description="Invalid device code.")
            if row["expires"] <= util.now():
                raise device_errors.ExpiredTokenError()
            if row["status"] == "denied":
                raise oauth_errors.AccessDeniedError()
            if row["status"] == "used":
                raise oauth_errors.InvalidGrantError(description="Device code already used.")
            if row["status"] == "pending":
                await crud.update(
                    tx,
                    "oauth2_device_codes",
                    {"digest": code_digest},
                    {"last_poll": util.now()},
                    recoverable=False,
                )
                return {"_commit_error": device_errors.AuthorizationPendingError()}
            await crud.update(
                tx,
                "oauth2_device_codes",
                {"digest": code_digest, "status": "approved"},
                {"status": "used"},
                recoverable=False,
            )
            grant = tokens.Grant(
                row["user_pk"],
                row["scope"].split(),
                int(time.time()),
                amr=["pwd"],
                sid=row["session_digest"],
            )
            expires = util.now() + max(client.refresh_ttl, client.access_ttl)
            await tokens.new_grant(tx, client, grant, expires)
            return await _issue(ctx, tx, grant)


GRANTS: dict[str, Grant] = {
    g.GRANT_TYPE: g
    for g in (
        AuthorizationCodeGrant(),
        RefreshTokenGrant(),
        ClientCredentialsGrant(),
        PasswordGrant(),
        DeviceCodeGrant(),
    )
}


async def token(
    service: Service, request: TokenRequest, client_ip: str, issuer_of: Any
) -> dict[str, Any]:
    grant = GRANTS.get(request.grant_type)
    if grant is None:
        raise oauth_errors.UnsupportedGrantTypeError(request.grant_type[:100])
    client = await authenticate(service, request)
    if not client.may_use(request.grant_type):
        raise oauth_errors.UnauthorizedClientError(
            description=f"This client may not use the {request.grant_type} grant."
        )
    ctx = Context(service, client, request, client_ip, issuer_of(client))
    body = await grant.handle(ctx)
    failure = body.get("_commit_error")
    if isinstance(failure, oauth_errors.OAuth2Error):
        raise failure  # raised after its transaction committed the revocation and the event
    return body
