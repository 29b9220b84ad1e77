"""Stored LDAP providers: validation, writes and their wire form (authentik's `LDAPProvider`).

An LDAP provider is a row of `providers` (component `ldap`) and a row of `ldap_providers` with
the same pk. Its base DN is unique among providers regardless of case and of blanks around the
separators (`base_dn_folded`): an outpost routes a bind or a search to the provider whose base DN
ends the request's DN, so two providers must never share a tree. The bind flow is
`authorization_flow` (authentik's name), the unbind flow `invalidation_flow`.

Called by `resources` (the admin API) and by `configs`, `calls` (what the outposts read).
"""

from __future__ import annotations

import re
from typing import Any

from tessera.core import errors, store, wire
from tessera.core.identity import outposts, util
from tessera.core.store import crud

KIND = "ldap"  # the `providers` table's component
TABLE = "ldap_providers"
COMPONENT = "ak-provider-ldap-form"
MODEL = "authentik_providers_ldap.ldapprovider"
VERBOSE = ("LDAP Provider", "LDAP Providers")
# Mappings a provider may name (authentik takes any property mapping; LDAP serves none).
MAPPING_TABLES = ("scope_mappings", "saml_property_mappings")
DEFAULT_INVALIDATION_FLOW = "default-invalidation-flow"
_FIELDS = (
    "authentication_flow",
    "authorization_flow",
    "invalidation_flow",
    "certificate",
    "tls_server_name",
    "uid_start_number",
    "gid_start_number",
    "search_mode",
    "bind_mode",
    "mfa_support",
    "property_mappings",
)
# One RDN: an attribute type (a name or a dotted OID), "=", a value with its special characters
# escaped (RFC 4514 section 3; multi-valued RDNs joined by "+" are taken as they are).
_TYPE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*)$")
_SPLIT = re.compile(r"(?<!\\),")


# Distinguished names ----------------------------------------------------------------------------


def fold_dn(dn: str) -> str:
    """`dn` in the form two spellings of one DN share: attribute types and values lower-cased,
    blanks around `,` and `=` dropped. ValueError when `dn` is not a DN (RFC 4514 syntax)."""
    if not dn.strip():
        raise ValueError("A DN cannot be empty.")
    if any(ch in dn for ch in "\x00\r\n"):
        raise ValueError("A DN cannot hold control characters.")
    out = []
    for rdn in _SPLIT.split(dn):
        kind, sep, value = rdn.partition("=")
        kind, value = kind.strip(), value.strip()
        if not sep or not _TYPE.match(kind) or not value or value.endswith("\\"):
            raise ValueError(f"{rdn.strip()!r} is not an attribute=value pair.")
        out.append(f"{kind.lower()}={value.lower()}")
    return ",".join(out)


def _dn_error(dn: str) -> str | None:
    try:
        fold_dn(dn)
    except ValueError as exc:
        return f"Enter a valid DN: {exc}"
    return None


# Checks -------------------------------------------------------------------------------------


def _missing(field: str, value: object) -> errors.ValidationFailed:
    return errors.ValidationFailed.one(field, f'Invalid pk "{value}" - object does not exist.')


async def _check(tx: store.Tx, body: wire.ldap.LDAPProviderRequest, pk: int | None) -> str:
    """Refuse an invalid request (400 naming the field); the folded base DN."""
    problem = _dn_error(body.base_dn)
    if problem is not None:
        raise errors.ValidationFailed.one("base_dn", problem)
    folded = fold_dn(body.base_dn)
    named = await crud.find(tx, "providers", name=body.name)
    if named is not None and named["pk"] != pk:
        raise errors.ValidationFailed.one("name", "Provider with this name already exists.")
    same = await crud.find(tx, TABLE, base_dn_folded=folded)
    if same is not None and same["pk"] != pk:
        raise errors.ValidationFailed.one(
            "base_dn", "Another LDAP provider serves this base DN; each needs its own."
        )
    for field in ("authentication_flow", "authorization_flow", "invalidation_flow"):
        value = getattr(body, field)
        if value is not None and not await crud.exists(tx, "flows", pk=value):
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
        found: set[str] = set()
        for table in MAPPING_TABLES:
            rows = await crud.find_many(tx, table, "pk", body.property_mappings)
            found |= {m["pk"] for m in rows}
        missing = [pk for pk in body.property_mappings if pk not in found]
        if missing:
            raise _missing("property_mappings", missing[0])
    return folded


def _values(body: wire.ldap.LDAPProviderRequest, folded: str) -> dict[str, Any]:
    return {
        **{k: getattr(body, k) for k in _FIELDS},
        "property_mappings": list(dict.fromkeys(body.property_mappings)),
        "base_dn": body.base_dn.strip(),
        "base_dn_folded": folded,
    }


# Writes -------------------------------------------------------------------------------------


async def create(tx: store.Tx, body: wire.ldap.LDAPProviderRequest) -> dict[str, Any]:
    folded = await _check(tx, body, None)
    base = await crud.insert(
        tx,
        "providers",
        {"name": body.name, "component": KIND, "managed": body.managed, "created": util.now()},
    )
    await crud.insert(tx, TABLE, {**_values(body, folded), "pk": base["pk"]})
    return base


async def update(
    tx: store.Tx, base: dict[str, Any], body: wire.ldap.LDAPProviderRequest
) -> dict[str, Any]:
    folded = await _check(tx, body, base["pk"])
    await crud.update(tx, TABLE, {"pk": base["pk"]}, _values(body, folded))
    return await crud.update(
        tx, "providers", {"pk": base["pk"]}, {"name": body.name, "managed": body.managed}
    )


async def writable(tx: store.Tx, base: dict[str, Any]) -> dict[str, Any]:
    row = await crud.get(tx, TABLE, pk=base["pk"])
    return {
        "name": base["name"],
        "managed": base["managed"],
        "base_dn": row["base_dn"],
        **{k: row[k] for k in _FIELDS},
    }


# Reads --------------------------------------------------------------------------------------


async def rows_of(tx: store.Tx, pks: list[int]) -> dict[int, dict[str, Any]]:
    """The `ldap_providers` rows of these providers, by pk."""
    if not pks:
        return {}
    return {r["pk"]: r for r in await crud.find_many(tx, TABLE, "pk", pks)}


async def applications_of(tx: store.Tx, pks: list[int]) -> dict[int, dict[str, Any]]:
    """The application each provider serves, by provider pk (a provider serves at most one)."""
    if not pks:
        return {}
    return {a["provider"]: a for a in await crud.find_many(tx, "applications", "provider", pks)}


async def invalidation_fallback(tx: store.Tx) -> str | None:
    """The unbind flow of a provider whose own was deleted (authentik falls back to the
    brand's): the default invalidation flow, where it exists."""
    flow = await crud.find(tx, "flows", slug=DEFAULT_INVALIDATION_FLOW)
    return flow["pk"] if flow else None


async def serialize(tx: store.Tx, bases: list[dict[str, Any]]) -> list[wire.ldap.LDAPProvider]:
    pks = [b["pk"] for b in bases]
    rows = await rows_of(tx, pks)
    apps = await applications_of(tx, pks)
    served_by = await outposts.outposts_of_providers(tx, pks)
    fallback = None
    if any(r["invalidation_flow"] is None for r in rows.values()):
        fallback = await invalidation_fallback(tx)
    out = []
    for base in bases:
        row, app = rows[base["pk"]], apps.get(base["pk"])
        out.append(
            wire.ldap.LDAPProvider.model_construct(
                pk=base["pk"],
                name=base["name"],
                **{k: row[k] for k in _FIELDS},
                base_dn=row["base_dn"],
                component=COMPONENT,
                assigned_application_slug=app["slug"] if app else None,
                assigned_application_name=app["name"] if app else None,
                assigned_backchannel_application_slug=None,
                assigned_backchannel_application_name=None,
                verbose_name=VERBOSE[0],
                verbose_name_plural=VERBOSE[1],
                meta_model_name=MODEL,
                managed=base["managed"],
                outpost_set=[f"Outpost {name}" for name in served_by[base["pk"]]],
            )
        )
        if row["invalidation_flow"] is None:
            out[-1].invalidation_flow = fallback  # type: ignore[assignment]
    return out
