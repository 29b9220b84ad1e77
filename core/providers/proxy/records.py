"""Stored proxy providers: validation, writes and their wire form.

A proxy provider is, as in authentik (whose `ProxyProvider` inherits `OAuth2Provider`), also an
OAuth2 client of the core: a row of `providers` (component `proxy`), a row of `oauth2_providers`
and a row of `proxy_providers`, all with one pk. The OAuth2 row is always what authentik's
`set_oauth_defaults` makes it: a confidential client with a generated ID and secret, no signing
key (tokens are HS256 with the client secret, which the outpost holds), claims in the ID token,
the scope mappings openid, email, profile, entitlements and ak_proxy (plus any given), and the
outpost's callback on the external host as its redirect URIs. So the core's token endpoint
serves the outpost's code exchange as for any client (`providers.oauth2.clients` loads every row
of `oauth2_providers`).

The client secret is sealed under the OAuth2 slice's context (`oauth2_providers:<pk>:client_secret`,
which its client loader unseals); the cookie secret under this slice's own.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

from tessera.core import crypto, errors, store, wire
from tessera.core.identity import outposts, util
from tessera.core.store import crud

KIND = "proxy"  # the `providers` table's component
TABLE = "proxy_providers"
OAUTH2 = "oauth2_providers"
MAPPINGS = "scope_mappings"
COMPONENT = "ak-provider-proxy-form"
MODEL = "authentik_providers_proxy.proxyprovider"
SCOPE_PROXY = "goauthentik.io/providers/proxy/scope-proxy"
# authentik's system mappings every proxy provider has (`set_oauth_defaults`).
DEFAULT_MAPPINGS = (
    "goauthentik.io/providers/oauth2/scope-openid",
    "goauthentik.io/providers/oauth2/scope-profile",
    "goauthentik.io/providers/oauth2/scope-email",
    "goauthentik.io/providers/oauth2/scope-entitlements",
    SCOPE_PROXY,
)
PROXY_MAPPING_NAME = "authentik default OAuth Mapping: Proxy outpost"
PROXY_MAPPING_EXPRESSION = (
    "# Read by the proxy outposts: the user's attributes merged over their groups' (the HTTP\n"
    "# Basic credentials and additionalHeaders come from them), and whether they are a superuser.\n"
    "return {\n"
    '    "ak_proxy": {\n'
    '        "user_attributes": request.user.group_attributes(),\n'
    '        "is_superuser": request.user.is_superuser,\n'
    "    }\n"
    "}"
)
# The grants an outpost uses: the browser's code flow, and a script's `Basic user:app-password`
# (client_credentials or password, as authentik's outpost sends them).
GRANT_TYPES = ["authorization_code", "refresh_token", "client_credentials", "password"]
COOKIE_SECRET_LENGTH = 32
_PROXY_FIELDS = (
    "mode",
    "external_host",
    "internal_host",
    "internal_host_ssl_validation",
    "certificate",
    "skip_path_regex",
    "basic_auth_enabled",
    "basic_auth_user_attribute",
    "basic_auth_password_attribute",
    "intercept_header_auth",
    "cookie_domain",
)


def client_secret_context(pk: int) -> str:
    """The OAuth2 slice's sealing context of a client secret (`oauth2.records`)."""
    return f"oauth2_providers:{pk}:client_secret"


def _cookie_context(pk: int) -> str:
    return f"proxy_providers:{pk}:cookie_secret"


def new_cookie_secret() -> str:
    """authentik's `get_cookie_secret`: 32 characters of A-Z and 0-9."""
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(COOKIE_SECRET_LENGTH))


def client_secret(keyring: crypto.Keyring, oauth: dict[str, Any]) -> str:
    return keyring.unseal(oauth["client_secret_sealed"], client_secret_context(oauth["pk"]))


def cookie_secret(keyring: crypto.Keyring, row: dict[str, Any]) -> str:
    return keyring.unseal(row["cookie_secret_sealed"], _cookie_context(row["pk"]))


# Checks ---------------------------------------------------------------------------------------


def _missing(field: str, value: object) -> errors.ValidationFailed:
    return errors.ValidationFailed.one(field, f'Invalid pk "{value}" - object does not exist.')


async def _check(tx: store.Tx, body: wire.outposts.ProxyProviderRequest, pk: int | None) -> None:
    conflicts = body.conflicts()
    if conflicts:
        raise errors.ValidationFailed(conflicts)
    named = await crud.find(tx, "providers", name=body.name)
    if named is not None and named["pk"] != pk:
        raise errors.ValidationFailed.one("name", "Provider with this name already exists.")
    for field in ("authorization_flow", "invalidation_flow"):
        value = getattr(body, field)
        if not await crud.exists(tx, "flows", pk=value):
            raise _missing(field, value)
    if body.certificate is not None:
        key = await crud.find(tx, "certificate_keypairs", pk=body.certificate)
        if key is None:
            raise _missing("certificate", body.certificate)
        if not key["key_sealed"]:
            raise errors.ValidationFailed.one(
                "certificate", "This certificate has no private key: an outpost cannot serve TLS."
            )
    if body.property_mappings:
        found = await crud.find_many(tx, MAPPINGS, "pk", body.property_mappings)
        missing = set(body.property_mappings) - {m["pk"] for m in found}
        if missing:
            raise _missing("property_mappings", sorted(missing)[0])


async def _mappings(tx: store.Tx, extra: list[str]) -> list[str]:
    """The default mappings that exist, then the ones given (each once)."""
    rows = await crud.find_many(tx, MAPPINGS, "managed", list(DEFAULT_MAPPINGS))
    by_managed = {r["managed"]: r["pk"] for r in rows}
    defaults = [by_managed[m] for m in DEFAULT_MAPPINGS if m in by_managed]
    return list(dict.fromkeys([*defaults, *extra]))


async def _oauth_values(tx: store.Tx, body: wire.outposts.ProxyProviderRequest) -> dict[str, Any]:
    return {
        "authorization_flow": body.authorization_flow,
        "invalidation_flow": body.invalidation_flow,
        "client_type": "confidential",
        "redirect_uris": [
            {"matching_mode": "strict", "url": url, "redirect_uri_type": "authorization"}
            for url in wire.outposts.callback_urls(body.external_host)
        ],
        "signing_key": None,
        "access_token_validity": body.access_token_validity,
        "refresh_token_validity": body.refresh_token_validity,
        "include_claims_in_id_token": True,
        "property_mappings": await _mappings(tx, body.property_mappings),
        "grant_types": GRANT_TYPES,
    }


# Writes ---------------------------------------------------------------------------------------


async def create(
    tx: store.Tx, keyring: crypto.Keyring, body: wire.outposts.ProxyProviderRequest
) -> dict[str, Any]:
    await _check(tx, body, None)
    base = await crud.insert(
        tx,
        "providers",
        {"name": body.name, "component": KIND, "managed": body.managed, "created": util.now()},
    )
    pk = base["pk"]
    await crud.insert(
        tx,
        OAUTH2,
        {
            **await _oauth_values(tx, body),
            "pk": pk,
            "client_id": crypto.secrets.new_token(40),
            "client_secret_sealed": keyring.seal(
                crypto.secrets.new_token(128), client_secret_context(pk)
            ),
            "previous_keys": [],
            "access_code_validity": "minutes=1",
            "sub_mode": "hashed_user_id",
            "issuer_mode": "per_provider",
            "logout_uri": "",
            "logout_method": "backchannel",
        },
    )
    await crud.insert(
        tx,
        TABLE,
        {
            **body.model_dump(include=set(_PROXY_FIELDS)),
            "pk": pk,
            "cookie_secret_sealed": keyring.seal(new_cookie_secret(), _cookie_context(pk)),
        },
    )
    return base


async def update(
    tx: store.Tx,
    base: dict[str, Any],
    body: wire.outposts.ProxyProviderRequest,
) -> dict[str, Any]:
    """The client ID, client secret and cookie secret are kept; the rest is the request's."""
    await _check(tx, body, base["pk"])
    await crud.update(tx, OAUTH2, {"pk": base["pk"]}, await _oauth_values(tx, body))
    await crud.update(tx, TABLE, {"pk": base["pk"]}, body.model_dump(include=set(_PROXY_FIELDS)))
    return await crud.update(
        tx, "providers", {"pk": base["pk"]}, {"name": body.name, "managed": body.managed}
    )


async def writable(tx: store.Tx, base: dict[str, Any]) -> dict[str, Any]:
    oauth = await crud.get(tx, OAUTH2, pk=base["pk"])
    row = await crud.get(tx, TABLE, pk=base["pk"])
    return {
        "name": base["name"],
        "managed": base["managed"],
        "authorization_flow": oauth["authorization_flow"],
        "invalidation_flow": oauth["invalidation_flow"],
        "property_mappings": oauth["property_mappings"],
        "access_token_validity": oauth["access_token_validity"],
        "refresh_token_validity": oauth["refresh_token_validity"],
        **{k: row[k] for k in _PROXY_FIELDS},
    }


# The wire form --------------------------------------------------------------------------------


async def rows_of(
    tx: store.Tx, bases: list[dict[str, Any]]
) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, Any]], dict[int, dict[str, Any]]]:
    """Each provider's OAuth2 row, proxy row and application (if any), by pk."""
    pks = [b["pk"] for b in bases]
    if not pks:
        return {}, {}, {}
    oauth = {r["pk"]: r for r in await crud.find_many(tx, OAUTH2, "pk", pks)}
    proxy = {r["pk"]: r for r in await crud.find_many(tx, TABLE, "pk", pks)}
    apps = {a["provider"]: a for a in await crud.find_many(tx, "applications", "provider", pks)}
    return oauth, proxy, apps


async def serialize(tx: store.Tx, bases: list[dict[str, Any]]) -> list[wire.outposts.ProxyProvider]:
    oauth, proxy, apps = await rows_of(tx, bases)
    served_by = await outposts.outposts_of_providers(tx, [b["pk"] for b in bases])
    out = []
    for base in bases:
        o, p, app = oauth[base["pk"]], proxy[base["pk"]], apps.get(base["pk"])
        out.append(
            wire.outposts.ProxyProvider.model_construct(
                pk=base["pk"],
                name=base["name"],
                authentication_flow=None,
                authorization_flow=o["authorization_flow"],
                invalidation_flow=o["invalidation_flow"],
                property_mappings=o["property_mappings"],
                component=COMPONENT,
                assigned_application_slug=app["slug"] if app else None,
                assigned_application_name=app["name"] if app else None,
                assigned_backchannel_application_slug=None,
                assigned_backchannel_application_name=None,
                verbose_name="Proxy Provider",
                verbose_name_plural="Proxy Providers",
                meta_model_name=MODEL,
                managed=base["managed"],
                client_id=o["client_id"],
                **{k: p[k] for k in _PROXY_FIELDS},
                redirect_uris=[
                    wire.oauth2.RedirectURIResponse.model_construct(**u) for u in o["redirect_uris"]
                ],
                jwt_federation_sources=[],
                jwt_federation_providers=[],
                access_token_validity=o["access_token_validity"],
                refresh_token_validity=o["refresh_token_validity"],
                outpost_set=[f"Outpost {name}" for name in served_by[base["pk"]]],
            )
        )
    return out


# The ak_proxy scope mapping -------------------------------------------------------------------


async def ensure_proxy_mapping(db: store.Store) -> None:
    """authentik's system mapping of the `ak_proxy` scope, made once."""
    async with db.read() as tx:
        if await crud.exists(tx, MAPPINGS, managed=SCOPE_PROXY):
            return
    async with db.transaction() as tx:
        await crud.lock(tx, "proxy-default-mapping")
        if await crud.exists(tx, MAPPINGS, managed=SCOPE_PROXY):
            return
        name = PROXY_MAPPING_NAME
        if await crud.exists(tx, MAPPINGS, name=name):
            name = f"{name} ({util.new_uuid()[:8]})"
        await crud.insert(
            tx,
            MAPPINGS,
            {
                "pk": util.new_uuid(),
                "name": name,
                "scope_name": "ak_proxy",
                "description": "authentik Proxy - User information",
                "expression": PROXY_MAPPING_EXPRESSION,
                "managed": SCOPE_PROXY,
                "created": util.now(),
            },
        )
