"""Claims and tokens: ID tokens, JWT access tokens, opaque refresh tokens and codes.

Access tokens are JWTs signed by the provider's key, carrying the ID-token claims plus `azp`,
`uid` and `scope` (as authentik's); they are checked without the store except for one lookup of
revoked token ids. Codes and refresh tokens are random strings stored only as keyed digests.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from authlib.oauth2.rfc6749 import errors as oauth_errors

from tessera.core import crypto, store
from tessera.core.identity import users, util
from tessera.core.policies import pool, sandbox, views
from tessera.core.providers.oauth2 import records
from tessera.core.providers.oauth2.clients import Client, Mapping
from tessera.core.store import crud

ACR = "goauthentik.io/providers/oauth2/default"
MAPPING_STEPS = 100_000
MAPPING_TIMEOUT = 2.0
# Claims a scope mapping may not set: the protocol's own.
RESERVED = frozenset(
    {"iss", "sub", "aud", "exp", "iat", "nbf", "auth_time", "nonce", "acr", "amr", "azp", "jti"}
    | {"at_hash", "c_hash", "sid", "uid", "scope"}
)


@dataclass
class Subject:
    """The user tokens are issued for, with the groups that scope mappings may read."""

    user: dict[str, Any]
    groups: list[dict[str, Any]] = field(default_factory=list)
    all_groups: list[dict[str, Any]] = field(default_factory=list)
    # The user's address is theirs alone (`identifiers.email_unique`): checked by
    # `Service.subject_of` for a client whose subjects are addresses; never assumed.
    email_unique: bool = False


EMAIL_SUBJECT_REFUSED = (
    "This application identifies users by email address, and this account's address is "
    "missing or also another account's; ask an administrator."
)


class SubjectUnavailable(oauth_errors.InvalidGrantError):  # type: ignore[misc]
    """No `sub` can name this user for this client (RFC 6749's invalid_grant)."""


def subject_claim(client: Client, subject: Subject, keyring: crypto.Keyring) -> str:
    """The `sub` of tokens issued to `client` for `subject`.

    # SECURITY: with `sub_mode: user_email` the address is the user's identity at the client, so
    # it must name one user only: an empty address or one another user also has gets no token
    # (SubjectUnavailable), whatever path issues it; otherwise a user who took another's
    # address would be that user to the client.
    """
    if client.sub_mode == "user_email" and not (subject.email_unique and subject.user["email"]):
        raise SubjectUnavailable(description=EMAIL_SUBJECT_REFUSED)
    return sub_of(client, subject.user, keyring)


@dataclass
class Grant:
    """What an authorization decided (a row of `oauth2_grants`, or its stateless equivalent)."""

    user_pk: int
    scopes: list[str]
    auth_time: int
    amr: list[str] = field(default_factory=list)
    nonce: str | None = None
    sid: str | None = None
    pk: str | None = None  # stored grants only


def new_secret() -> str:
    return secrets.token_urlsafe(48)


def digest(keyring: crypto.Keyring, value: str) -> str:
    return keyring.digest("oauth2:" + value)


def sub_of(client: Client, user: dict[str, Any], keyring: crypto.Keyring) -> str:
    match client.sub_mode:
        case "user_id":
            return str(user["pk"])
        case "user_uuid":
            return str(user["uuid"])
        case "user_username":
            return str(user["username"])
        case "user_email":
            return str(user["email"])
        case _:
            return users.uid(keyring, user["pk"])


def _native(mapping: Mapping, subject: Subject) -> dict[str, Any] | None:
    """authentik's system mappings, unchanged, computed directly instead of in the sandbox."""
    if mapping.managed != records.managed_name(mapping.scope):
        return None
    default = records.DEFAULT_MAPPINGS.get(mapping.scope)
    if default is None or default[2] != mapping.program.source:
        return None
    user = subject.user
    match mapping.scope:
        case "email":
            return {"email": user["email"], "email_verified": False}
        case "profile":
            return {
                "name": user["name"],
                "given_name": user["name"],
                "preferred_username": user["username"],
                "nickname": user["username"],
                "groups": [g["name"] for g in subject.groups],
            }
        case "entitlements":
            return {"entitlements": [], "roles": []}
        case _:
            return {}


def claims_need_caller(client: Client, scopes: list[str]) -> bool:
    """Whether the claims of `scopes` run an expression mapping (which sees the caller's
    address), rather than only authentik's system mappings computed natively."""
    return any(
        mapping.managed != records.managed_name(mapping.scope)
        or (default := records.DEFAULT_MAPPINGS.get(mapping.scope)) is None
        or default[2] != mapping.program.source
        for scope in scopes
        for mapping in client.mappings.get(scope, [])
    )


async def scope_claims(
    client: Client, subject: Subject, scopes: list[str], client_ip: str = ""
) -> dict[str, Any]:
    """The claims the scope mappings of `scopes` return, merged in scope order. A mapping that
    fails or returns something other than a dict contributes nothing."""
    claims: dict[str, Any] = {}
    for scope in scopes:
        for mapping in client.mappings.get(scope, []):
            value = _native(mapping, subject)
            if value is None:
                value = await _run(mapping, subject, client, scopes, client_ip)
            claims.update({k: v for k, v in value.items() if k not in RESERVED})
    return claims


async def _run(
    mapping: Mapping, subject: Subject, client: Client, scopes: list[str], client_ip: str
) -> dict[str, Any]:
    user = views.UserView(subject.user, subject.groups, subject.all_groups)
    variables = views.policy_variables(
        user,
        context={"scope": list(scopes), "application": _app_view(client)},
        http_request=views.HttpRequestView(client_ip=client_ip),
    )
    variables["scope"] = list(scopes)
    try:  # the claims come back as JSON, weighed and encoded in the worker process
        result = await pool.evaluate(
            mapping.program.source,
            variables,
            shape="claims",
            steps=MAPPING_STEPS,
            seconds=MAPPING_TIMEOUT,
        )
    except sandbox.SandboxError:
        return {}
    value = result.value
    return value if isinstance(value, dict) else {}


def may_hold_tokens(user: dict[str, Any] | None) -> bool:
    """Whether tokens issued for `user` are good: the user exists and is active.

    # SECURITY: the one rule of the token endpoint (`grants._issue`), userinfo and both branches
    # of introspection, so that no endpoint answers for a user that another refuses: a
    # deactivated or deleted user's tokens are dead everywhere at once. A password change does
    # not end them (as in authentik; sessions and grants are ended by revocation or logout).
    """
    return user is not None and bool(user["is_active"])


def _uid_context(client: Client) -> str:
    return f"oauth2-uid:{client.client_id}"


def user_of(keyring: crypto.Keyring, client: Client, claims: dict[str, Any]) -> int | None:
    """The user an access token was issued for: its `uid` claim is the user's pk, sealed, so a
    client holding an HS256 secret cannot mint a token naming another user."""
    uid = claims.get("uid")
    if not isinstance(uid, str) or len(uid) > 512:
        return None
    try:
        return int(keyring.unseal(uid, _uid_context(client)))
    except (crypto.secrets.UnsealError, ValueError):
        return None


def _app_view(client: Client) -> dict[str, Any]:
    app = client.application or {}
    return {"slug": app.get("slug", ""), "name": app.get("name", "")}


@dataclass
class Minted:
    body: dict[str, Any]
    access_jti: str
    access_expires: dt.datetime
    refresh_digest: str | None = None
    refresh_expires: dt.datetime | None = None


def mint(
    client: Client,
    subject: Subject,
    grant: Grant,
    claims: dict[str, Any],
    *,
    issuer: str,
    keyring: crypto.Keyring,
    code: str | None = None,
    with_id_token: bool = True,
    with_refresh: bool = False,
) -> Minted:
    """Sign the access token (and ID token, and make a refresh token) for `grant`."""
    now = int(time.time())
    exp = now + int(client.access_ttl.total_seconds())
    base: dict[str, Any] = {
        "iss": issuer,
        "sub": subject_claim(client, subject, keyring),
        "aud": client.client_id,
        "exp": exp,
        "iat": now,
        "auth_time": grant.auth_time,
        "acr": ACR,
    }
    if grant.amr:
        base["amr"] = grant.amr
    if grant.nonce:
        base["nonce"] = grant.nonce
    if grant.sid:
        base["sid"] = grant.sid
    jti = secrets.token_hex(16)
    access_claims = {
        **claims,
        **base,
        "azp": client.client_id,
        "uid": keyring.seal(str(subject.user["pk"]), _uid_context(client)),
        "scope": " ".join(grant.scopes),
        "jti": jti,
    }
    access = crypto.jwt.sign(access_claims, client.signing)
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": "Bearer",
        "scope": " ".join(grant.scopes),
        "expires_in": exp - now,
    }
    if with_id_token and "openid" in grant.scopes:
        id_claims = {**(claims if client.include_claims else {}), **base}
        id_claims["at_hash"] = crypto.jwt.half_hash(access, client.signing.alg)
        if code is not None:
            id_claims["c_hash"] = crypto.jwt.half_hash(code, client.signing.alg)
        id_claims["jti"] = secrets.token_hex(16)
        body["id_token"] = crypto.jwt.sign(id_claims, client.signing)
    minted = Minted(body, jti, dt.datetime.fromtimestamp(exp, dt.UTC))
    if with_refresh and "offline_access" in grant.scopes:
        refresh = new_secret()
        body["refresh_token"] = refresh
        minted.refresh_digest = digest(keyring, refresh)
        minted.refresh_expires = util.now() + client.refresh_ttl
    return minted


def id_token_for_implicit(
    client: Client,
    subject: Subject,
    grant: Grant,
    claims: dict[str, Any],
    *,
    issuer: str,
    keyring: crypto.Keyring,
    access: str | None,
    code: str | None,
) -> str:
    """The ID token of an implicit or hybrid response (claims included when no access token
    will be exchanged for them, as OIDC Core §5.4 asks)."""
    now = int(time.time())
    id_claims: dict[str, Any] = {
        **(claims if client.include_claims or access is None else {}),
        "iss": issuer,
        "sub": subject_claim(client, subject, keyring),
        "aud": client.client_id,
        "exp": now + int(client.access_ttl.total_seconds()),
        "iat": now,
        "auth_time": grant.auth_time,
        "acr": ACR,
        "jti": secrets.token_hex(16),
    }
    for name, value in (("nonce", grant.nonce), ("sid", grant.sid)):
        if value:
            id_claims[name] = value
    if grant.amr:
        id_claims["amr"] = grant.amr
    if access is not None:
        id_claims["at_hash"] = crypto.jwt.half_hash(access, client.signing.alg)
    if code is not None:
        id_claims["c_hash"] = crypto.jwt.half_hash(code, client.signing.alg)
    return crypto.jwt.sign(id_claims, client.signing)


async def store_minted(tx: store.Tx, minted: Minted, grant_pk: str, scopes: list[str]) -> None:
    """Write down the access token's id (to revoke it with its grant) and the refresh token."""
    await crud.insert(
        tx,
        "oauth2_access_ids",
        {"jti": minted.access_jti, "grant": grant_pk, "expires": minted.access_expires},
        recoverable=False,
    )
    if minted.refresh_digest is not None:
        await crud.insert(
            tx,
            "oauth2_refresh_tokens",
            {
                "digest": minted.refresh_digest,
                "grant": grant_pk,
                "scope": " ".join(scopes),
                "used": False,
                "expires": minted.refresh_expires,
                "created": util.now(),
            },
            recoverable=False,
        )


async def revoke_grant(tx: store.Tx, grant_pk: str) -> None:
    """Revoke a grant and everything issued under it (code reuse, refresh-token reuse, logout)."""
    await crud.update(tx, "oauth2_grants", {"pk": grant_pk}, {"revoked": True}, recoverable=False)
    for row in await crud.rows(tx, "oauth2_access_ids", [crud.Filter("grant", "eq", grant_pk)]):
        if not await crud.exists(tx, "oauth2_revoked", jti=row["jti"]):
            await crud.insert(tx, "oauth2_revoked", {"jti": row["jti"], "expires": row["expires"]})
    await crud.delete(tx, "oauth2_refresh_tokens", grant=grant_pk)


async def is_revoked(db: store.Store, jti: str) -> bool:
    async with db.read() as tx:
        return await crud.find(tx, "oauth2_revoked", jti=jti) is not None


async def new_grant(tx: store.Tx, client: Client, grant: Grant, expires: dt.datetime) -> str:
    pk = util.new_uuid()
    await crud.insert(
        tx,
        "oauth2_grants",
        {
            "pk": pk,
            "provider": client.pk,
            "user_pk": grant.user_pk,
            "scope": " ".join(grant.scopes),
            "nonce": grant.nonce,
            "session_digest": grant.sid,
            "auth_time": dt.datetime.fromtimestamp(grant.auth_time, dt.UTC),
            "amr": grant.amr,
            "revoked": False,
            "expires": expires,
            "created": util.now(),
        },
        recoverable=False,
    )
    grant.pk = pk
    return pk


def grant_of(row: dict[str, Any]) -> Grant:
    return Grant(
        user_pk=row["user_pk"],
        scopes=row["scope"].split(),
        auth_time=int(row["auth_time"].timestamp()),
        amr=list(row["amr"] or []),
        nonce=row["nonce"],
        sid=row["session_digest"],
        pk=row["pk"],
    )
