"""Stored OAuth2 providers and scope mappings: validation, writes and their wire form.

A provider is a row of `providers` (name, component, managed; what applications point at) plus a
row of `oauth2_providers` with the same pk. The client secret is sealed with the keyring. When the
signing key changes, the old key stays in `previous_keys` until every token it signed has expired,
so relying parties that cached the JWKS keep verifying during the overlap.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from typing import Any

from tessera.core import crypto, errors, store, wire
from tessera.core.identity import util
from tessera.core.store import crud

TABLE = "oauth2_providers"
COMPONENT = "ak-provider-oauth2-form"
MODEL = "authentik_providers_oauth2.oauth2provider"
MAPPINGS = "scope_mappings"
MAPPING_COMPONENT = "ak-property-mapping-provider-scope-form"
MAPPING_MODEL = "authentik_providers_oauth2.scopemapping"
DEFAULT_INVALIDATION_FLOW = "default-invalidation-flow"
_FIELDS = (
    "authorization_flow",
    "invalidation_flow",
    "client_type",
    "client_id",
    "redirect_uris",
    "signing_key",
    "access_code_validity",
    "access_token_validity",
    "refresh_token_validity",
    "sub_mode",
    "issuer_mode",
    "include_claims_in_id_token",
    "property_mappings",
    "logout_uri",
    "logout_method",
    "grant_types",
)
# Fields the wire form computes from the stored value rather than copying it.
_COMPUTED = ("redirect_uris", "invalidation_flow", "grant_types")
# The scope mappings every install has (authentik's system blueprint), by scope.
DEFAULT_MAPPINGS: dict[str, tuple[str, str, str]] = {
    "openid": ("authentik default OAuth Mapping: OpenID 'openid'", "", "return {}"),
    "email": (
        "authentik default OAuth Mapping: OpenID 'email'",
        "Email address",
        'return {\n    "email": request.user.email,\n    "email_verified": False,\n}',
    ),
    "profile": (
        "authentik default OAuth Mapping: OpenID 'profile'",
        "General Profile Information",
        "return {\n"
        '    "name": request.user.name,\n'
        '    "given_name": request.user.name,\n'
        '    "preferred_username": request.user.username,\n'
        '    "nickname": request.user.username,\n'
        '    "groups": [group.name for group in request.user.ak_groups.all()],\n'
        "}",
    ),
    "entitlements": (
        "authentik default OAuth Mapping: OpenID 'entitlements'",
        "Application entitlements",
        'return {\n    "entitlements": [],\n    "roles": [],\n}',
    ),
    "offline_access": (
        "authentik default OAuth Mapping: OpenID 'offline_access'",
        "Access to request new tokens without interaction",
        "return {}",
    ),
}


def managed_name(scope: str) -> str:
    return f"goauthentik.io/providers/oauth2/scope-{scope.replace('_', '-')}"


def _secret_context(pk: int) -> str:
    return f"oauth2_providers:{pk}:client_secret"


def client_secret(keyring: crypto.Keyring, row: dict[str, Any]) -> str:
    sealed = row["client_secret_sealed"]
    return keyring.unseal(sealed, _secret_context(row["pk"])) if sealed else ""


async def _check(tx: store.Tx, body: wire.oauth2.OAuth2ProviderRequest, pk: int | None) -> None:
    named = await crud.find(tx, "providers", name=body.name)
    if named is not None and named["pk"] != pk:
        raise errors.ValidationFailed.one("name", "Provider with this name already exists.")
    for field in ("authorization_flow", "invalidation_flow"):
        value = getattr(body, field)
        if value is not None and not await crud.exists(tx, "flows", pk=value):
            raise errors.ValidationFailed.one(
                field, f'Invalid pk "{value}" - object does not exist.'
            )
    if body.signing_key is not None:
        key = await crud.find(tx, "certificate_keypairs", pk=body.signing_key)
        if key is None:
            raise errors.ValidationFailed.one(
                "signing_key", f'Invalid pk "{body.signing_key}" - object does not exist.'
            )
        if not key["key_sealed"]:
            raise errors.ValidationFailed.one(
                "signing_key", "This certificate has no private key to sign with."
            )
    if body.property_mappings:
        found = await crud.find_many(tx, MAPPINGS, "pk", body.property_mappings)
        missing = set(body.property_mappings) - {m["pk"] for m in found}
        if missing:
            raise errors.ValidationFailed.one(
                "property_mappings", f'Invalid pk "{sorted(missing)[0]}" - object does not exist.'
            )
    if body.client_id is not None:
        taken = await crud.find(tx, TABLE, client_id=body.client_id)
        if taken is not None and taken["pk"] != pk:
            raise errors.ValidationFailed.one("client_id", "This client ID is already in use.")


def _values(body: wire.oauth2.OAuth2ProviderRequest) -> dict[str, Any]:
    data = body.model_dump(include=set(_FIELDS))
    data["redirect_uris"] = [u.model_dump() for u in body.redirect_uris]
    return data


async def create(
    tx: store.Tx, keyring: crypto.Keyring, body: wire.oauth2.OAuth2ProviderRequest
) -> dict[str, Any]:
    await _check(tx, body, None)
    if body.client_id is None:
        body.client_id = crypto.secrets.new_token(40)
    base = await crud.insert(
        tx,
        "providers",
        {"name": body.name, "component": "oauth2", "managed": body.managed, "created": util.now()},
    )
    secret = body.client_secret or crypto.secrets.new_token(128)
    await crud.insert(
        tx,
        TABLE,
        {
            **_values(body),
            "pk": base["pk"],
            "client_secret_sealed": keyring.seal(secret, _secret_context(base["pk"])),
            "previous_keys": [],
        },
    )
    return base


async def update(
    tx: store.Tx,
    keyring: crypto.Keyring,
    base: dict[str, Any],
    body: wire.oauth2.OAuth2ProviderRequest,
) -> dict[str, Any]:
    await _check(tx, body, base["pk"])
    row = await crud.get(tx, TABLE, pk=base["pk"])
    values = _values(body)
    if body.client_id is None:
        values["client_id"] = row["client_id"]
    if body.client_secret is not None:
        values["client_secret_sealed"] = keyring.seal(
            body.client_secret, _secret_context(base["pk"])
        )
    if row["signing_key"] and row["signing_key"] != body.signing_key:
        # Rotation: keep publishing the old key until the last token it signed expires.
        lifetime = max(
            wire.durations.parse(row["access_token_validity"]),
            wire.durations.parse(body.access_token_validity),
        )
        until = (util.now() + lifetime).isoformat()
        kept = [k for k in row["previous_keys"] if k["pk"] != body.signing_key]
        values["previous_keys"] = [*kept, {"pk": row["signing_key"], "until": until}]
    await crud.update(tx, TABLE, {"pk": base["pk"]}, values)
    return await crud.update(
        tx, "providers", {"pk": base["pk"]}, {"name": body.name, "managed": body.managed}
    )


async def writable(tx: store.Tx, base: dict[str, Any]) -> dict[str, Any]:
    row = await crud.get(tx, TABLE, pk=base["pk"])
    return {
        "name": base["name"],
        "managed": base["managed"],
        **{k: row[k] for k in _FIELDS},
        "invalidation_flow": row["invalidation_flow"] or await default_invalidation_flow(tx),
        "grant_types": grant_types(row),
    }


def live_previous_keys(row: dict[str, Any], now: dt.datetime | None = None) -> list[str]:
    now = now or util.now()
    return [k["pk"] for k in row["previous_keys"] if dt.datetime.fromisoformat(k["until"]) > now]


async def _assigned(tx: store.Tx, pks: list[int]) -> dict[int, dict[str, Any]]:
    apps = await crud.find_many(tx, "applications", "provider", pks)
    return {a["provider"]: a for a in apps}


# How each kind of provider (`providers.component`) names itself in `/providers/all/`: its form
# component, verbose names and model (authentik's). A proxy provider is also an OAuth2 client.
KINDS = {
    "oauth2": (COMPONENT, "OAuth2/OpenID Provider", "OAuth2/OpenID Providers", MODEL),
    "proxy": (
        "ak-provider-proxy-form",
        "Proxy Provider",
        "Proxy Providers",
        "authentik_providers_proxy.proxyprovider",
    ),
    "saml": (
        "ak-provider-saml-form",
        "SAML Provider",
        "SAML Providers",
        "authentik_providers_saml.samlprovider",
    ),
    "ldap": (
        "ak-provider-ldap-form",
        "LDAP Provider",
        "LDAP Providers",
        "authentik_providers_ldap.ldapprovider",
    ),
}
# Kinds whose flows and mappings live in a table of their own rather than `oauth2_providers`.
_OWN_TABLES = {"saml": "saml_providers", "ldap": "ldap_providers"}


def _base_fields(base: dict[str, Any], app: dict[str, Any] | None) -> dict[str, Any]:
    component, verbose, plural, model = KINDS.get(
        base["component"], (base["component"], *KINDS["oauth2"][1:])
    )
    return {
        "pk": base["pk"],
        "name": base["name"],
        "component": component,
        "assigned_application_slug": app["slug"] if app else None,
        "assigned_application_name": app["name"] if app else None,
        "assigned_backchannel_application_slug": None,
        "assigned_backchannel_application_name": None,
        "verbose_name": verbose,
        "verbose_name_plural": plural,
        "meta_model_name": model,
        "managed": base["managed"],
    }


def grant_types(row: dict[str, Any]) -> list[wire.oauth2.GrantType]:
    """The grants a provider's client may use (every one for rows from before they were set)."""
    stored = row.get("grant_types")
    return list(wire.oauth2.GRANT_TYPES) if stored is None else list(stored)


async def default_invalidation_flow(tx: store.Tx) -> str | None:
    """The flow run at logout for a provider whose own invalidation flow was deleted (as
    authentik falls back to the brand's): the default invalidation flow, where it exists."""
    flow = await crud.find(tx, "flows", slug=DEFAULT_INVALIDATION_FLOW)
    return flow["pk"] if flow else None


def _computed(row: dict[str, Any], fallback: str | None) -> dict[str, Any]:
    """The wire values that are not the stored ones. A provider whose invalidation flow was
    deleted shows the one its logout runs (`fallback`); with no default flow either, none."""
    return {
        "invalidation_flow": row["invalidation_flow"] or fallback,
        "grant_types": grant_types(row),
        "refresh_token_threshold": wire.oauth2.REFRESH_TOKEN_THRESHOLD,
    }


async def serialize(
    tx: store.Tx, keyring: crypto.Keyring, bases: list[dict[str, Any]]
) -> list[wire.oauth2.OAuth2Provider]:
    pks = [b["pk"] for b in bases]
    rows = {r["pk"]: r for r in await crud.find_many(tx, TABLE, "pk", pks)}
    apps = await _assigned(tx, pks)
    fallback = None
    if any(r["invalidation_flow"] is None for r in rows.values()):
        fallback = await default_invalidation_flow(tx)
    out = []
    for base in bases:
        row = rows[base["pk"]]
        out.append(
            wire.oauth2.OAuth2Provider.model_construct(
                **_base_fields(base, apps.get(base["pk"])),
                authentication_flow=None,
                **{k: row[k] for k in _FIELDS if k not in _COMPUTED},
                **_computed(row, fallback),
                redirect_uris=[
                    wire.oauth2.RedirectURIResponse.model_construct(
                        **{"matching_mode": "strict", "redirect_uri_type": "authorization", **u}
                    )
                    for u in row["redirect_uris"]
                ],
                client_secret=client_secret(keyring, row),
                encryption_key=None,
                jwt_federation_sources=[],
                jwt_federation_providers=[],
            )
        )
    return out


async def serialize_any(tx: store.Tx, bases: list[dict[str, Any]]) -> list[wire.oauth2.Provider]:
    pks = [b["pk"] for b in bases]
    rows = {r["pk"]: r for r in await crud.find_many(tx, TABLE, "pk", pks)}
    for kind, table in _OWN_TABLES.items():
        own = [b["pk"] for b in bases if b["component"] == kind]
        if own:
            rows.update({r["pk"]: r for r in await crud.find_many(tx, table, "pk", own)})
    apps = await _assigned(tx, pks)
    out = []
    for base in bases:
        row = rows.get(base["pk"], {})
        out.append(
            wire.oauth2.Provider(
                **_base_fields(base, apps.get(base["pk"])),
                authentication_flow=None,
                authorization_flow=row.get("authorization_flow"),
                invalidation_flow=row.get("invalidation_flow"),
                property_mappings=row.get("property_mappings", []),
            )
        )
    return out


async def launch_urls(tx: store.Tx, pks: list[int]) -> dict[int, str]:
    """Where an application served by each provider starts, as authentik guesses it when the
    application names no launch URL: the origin of the first authorization redirect URI (a
    regex is no address, so regex URIs are skipped)."""
    out: dict[int, str] = {}
    for row in await crud.find_many(tx, TABLE, "pk", pks) if pks else []:
        for uri in row["redirect_uris"]:
            if uri.get("matching_mode") != "strict":
                continue
            if uri.get("redirect_uri_type", "authorization") != "authorization":
                continue
            parts = urllib.parse.urlsplit(uri["url"])
            if parts.scheme in ("http", "https") and parts.netloc:
                out[row["pk"]] = f"{parts.scheme}://{parts.netloc}"
            break
    return out


# Scope mappings ------------------------------------------------------------------------------


async def ensure_default_mappings(db: store.Store) -> None:
    """Create authentik's system scope mappings once (they are `managed`, so never duplicated)."""
    async with db.read() as tx:
        have = {m["managed"] for m in await crud.all_rows(tx, MAPPINGS) if m["managed"]}
    missing = [s for s in DEFAULT_MAPPINGS if managed_name(s) not in have]
    if not missing:
        return
    async with db.transaction() as tx:
        await crud.lock(tx, "oauth2-default-mappings")
        have = {m["managed"] for m in await crud.all_rows(tx, MAPPINGS) if m["managed"]}
        for scope in missing:
            if managed_name(scope) in have:
                continue
            name, description, expression = DEFAULT_MAPPINGS[scope]
            await crud.insert(
                tx,
                MAPPINGS,
                {
                    "pk": util.new_uuid(),
                    "name": name,
                    "scope_name": scope,
                    "description": description,
                    "expression": expression,
                    "managed": managed_name(scope),
                    "created": util.now(),
                },
            )


def serialize_mappings(rows: list[dict[str, Any]]) -> list[wire.oauth2.ScopeMapping]:
    return [
        wire.oauth2.ScopeMapping(
            pk=r["pk"],
            managed=r["managed"],
            name=r["name"],
            expression=r["expression"],
            scope_name=r["scope_name"],
            description=r["description"],
            component=MAPPING_COMPONENT,
            verbose_name="Scope Mapping",
            verbose_name_plural="Scope Mappings",
            meta_model_name=MAPPING_MODEL,
        )
        for r in rows
    ]
