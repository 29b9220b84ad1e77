"""Stored SAML providers and SAML property mappings: validation, writes and their wire form.

A SAML provider is a row of `providers` (component `saml`) and a row of `saml_providers` with the
same pk. Its keys are certificate-key pairs: `signing_kp` must hold a private key, while
`verification_kp` (the SP's request-signing certificate) and `encryption_kp` (the SP's
encryption certificate) need only the certificate. The system SAML property mappings (authentik's
`goauthentik.io/providers/saml/*`) are created at start-up and cannot be changed or deleted.
"""

from __future__ import annotations

from typing import Any

from tessera.core import errors, store, wire
from tessera.core.identity import util
from tessera.core.store import crud

KIND = "saml"  # the `providers` table's component
TABLE = "saml_providers"
MAPPINGS = "saml_property_mappings"
SESSIONS = "saml_sessions"
COMPONENT = "ak-provider-saml-form"
MODEL = "authentik_providers_saml.samlprovider"
MAPPING_COMPONENT = "ak-property-mapping-provider-saml-form"
MAPPING_MODEL = "authentik_providers_saml.samlpropertymapping"
_FIELDS = tuple(
    f
    for f in wire.saml.SAMLProviderRequest.model_fields
    if f not in ("name", "managed", "authentication_flow")
)
_KEYS = ("signing_kp", "verification_kp", "encryption_kp")


def managed_name(short: str) -> str:
    return f"goauthentik.io/providers/saml/{short}"


# authentik's system SAML mappings: managed suffix -> (name, SAML attribute name, expression).
DEFAULT_MAPPINGS: dict[str, tuple[str, str, str]] = {
    "upn": (
        "authentik default SAML Mapping: UPN",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
        'return request.user.attributes.get("upn", request.user.email)',
    ),
    "name": (
        "authentik default SAML Mapping: Name",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "return request.user.name",
    ),
    "email": (
        "authentik default SAML Mapping: Email",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        "return request.user.email",
    ),
    "username": (
        "authentik default SAML Mapping: Username",
        "http://schemas.goauthentik.io/2021/02/saml/username",
        "return request.user.username",
    ),
    "uid": (
        "authentik default SAML Mapping: User ID",
        "http://schemas.goauthentik.io/2021/02/saml/uid",
        "return request.user.pk",
    ),
    "groups": (
        "authentik default SAML Mapping: Groups",
        "http://schemas.xmlsoap.org/claims/Group",
        "return [group.name for group in request.user.ak_groups.all()]",
    ),
    "ms-windowsaccountname": (
        "authentik default SAML Mapping: WindowsAccountname (Username)",
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/windowsaccountname",
        "return request.user.username",
    ),
}


def _missing(field: str, value: object) -> errors.ValidationFailed:
    return errors.ValidationFailed.one(field, f'Invalid pk "{value}" - object does not exist.')


async def _check(tx: store.Tx, body: wire.saml.SAMLProviderRequest, pk: int | None) -> None:
    named = await crud.find(tx, "providers", name=body.name)
    if named is not None and named["pk"] != pk:
        raise errors.ValidationFailed.one("name", "Provider with this name already exists.")
    for field in ("authentication_flow", "authorization_flow", "invalidation_flow"):
        value = getattr(body, field)
        if value is not None and not await crud.exists(tx, "flows", pk=value):
            raise _missing(field, value)
    for field in _KEYS:
        value = getattr(body, field)
        if value is None:
            continue
        key = await crud.find(tx, "certificate_keypairs", pk=value)
        if key is None:
            raise _missing(field, value)
        if field == "signing_kp" and not key["key_sealed"]:
            raise errors.ValidationFailed.one(
                field, "This certificate has no private key to sign with."
            )
        if field == "encryption_kp" and key["key_type"] not in (None, "rsa"):
            raise errors.ValidationFailed.one(
                field, "Assertions are encrypted with RSA-OAEP: choose an RSA certificate."
            )
    wanted = list(body.property_mappings)
    for field in ("name_id_mapping", "authn_context_class_ref_mapping"):
        value = getattr(body, field)
        if value is not None:
            wanted.append(value)
    if wanted:
        found = {m["pk"] for m in await crud.find_many(tx, MAPPINGS, "pk", wanted)}
        for field in ("property_mappings", "name_id_mapping", "authn_context_class_ref_mapping"):
            value = getattr(body, field)
            values = value if isinstance(value, list) else [value] if value else []
            missing = [v for v in values if v not in found]
            if missing:
                raise _missing(field, missing[0])


def _values(body: wire.saml.SAMLProviderRequest) -> dict[str, Any]:
    data = body.model_dump(include=set(_FIELDS))
    data["authentication_flow"] = body.authentication_flow
    data["property_mappings"] = list(dict.fromkeys(body.property_mappings))
    return data


async def create(tx: store.Tx, body: wire.saml.SAMLProviderRequest) -> dict[str, Any]:
    await _check(tx, body, None)
    base = await crud.insert(
        tx,
        "providers",
        {"name": body.name, "component": KIND, "managed": body.managed, "created": util.now()},
    )
    await crud.insert(tx, TABLE, {**_values(body), "pk": base["pk"]})
    return base


async def update(
    tx: store.Tx, base: dict[str, Any], body: wire.saml.SAMLProviderRequest
) -> dict[str, Any]:
    await _check(tx, body, base["pk"])
    await crud.update(tx, TABLE, {"pk": base["pk"]}, _values(body))
    return await crud.update(
        tx, "providers", {"pk": base["pk"]}, {"name": body.name, "managed": body.managed}
    )


async def writable(tx: store.Tx, base: dict[str, Any]) -> dict[str, Any]:
    row = await crud.get(tx, TABLE, pk=base["pk"])
    return {
        "name": base["name"],
        "managed": base["managed"],
        "authentication_flow": row["authentication_flow"],
        **{k: row[k] for k in _FIELDS},
    }


# URLs -----------------------------------------------------------------------------------------


def urls(base_url: str, slug: str) -> dict[str, str]:
    """authentik's `url_*` fields: where an SP reaches this provider."""
    root = f"{base_url}/application/saml/{slug}/"
    return {
        "url_download_metadata": f"{root}metadata/?download",
        "url_issuer": f"{root}metadata/",
        "url_unified": root,
        "url_unified_init": f"{root}init/",
        "url_sso_post": f"{root}sso/binding/post/",
        "url_sso_redirect": f"{root}sso/binding/redirect/",
        "url_sso_init": f"{root}sso/binding/init/",
        "url_slo_post": f"{root}slo/binding/post/",
        "url_slo_redirect": f"{root}slo/binding/redirect/",
    }


def issuer(row: dict[str, Any], base_url: str, slug: str) -> str:
    """The IdP's EntityID: the override when set, else the metadata URL."""
    return str(row["issuer_override"]) or urls(base_url, slug)["url_issuer"]


async def _default_invalidation(tx: store.Tx) -> str | None:
    flow = await crud.find(tx, "flows", slug="default-invalidation-flow")
    return flow["pk"] if flow else None


async def serialize(
    tx: store.Tx, bases: list[dict[str, Any]], base_url: str
) -> list[wire.saml.SAMLProvider]:
    pks = [b["pk"] for b in bases]
    if not pks:
        return []
    rows = {r["pk"]: r for r in await crud.find_many(tx, TABLE, "pk", pks)}
    apps = {a["provider"]: a for a in await crud.find_many(tx, "applications", "provider", pks)}
    fallback = None
    if any(r["invalidation_flow"] is None for r in rows.values()):
        fallback = await _default_invalidation(tx)
    out = []
    for base in bases:
        row, app = rows[base["pk"]], apps.get(base["pk"])
        slug = app["slug"] if app else "-"
        links: dict[str, Any] = urls(base_url, slug)
        out.append(
            wire.saml.SAMLProvider.model_construct(
                pk=base["pk"],
                name=base["name"],
                authentication_flow=row["authentication_flow"],
                **{k: row[k] for k in _FIELDS},
                component=COMPONENT,
                assigned_application_slug=app["slug"] if app else None,
                assigned_application_name=app["name"] if app else None,
                assigned_backchannel_application_slug=None,
                assigned_backchannel_application_name=None,
                verbose_name="SAML Provider",
                verbose_name_plural="SAML Providers",
                meta_model_name=MODEL,
                managed=base["managed"],
                **links,
            )
        )
        if row["invalidation_flow"] is None:
            out[-1].invalidation_flow = fallback  # type: ignore[assignment]
    return out


async def serialize_any(tx: store.Tx, bases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `/providers/all/` fields of SAML providers, by pk order of `bases`."""
    pks = [b["pk"] for b in bases]
    rows = {r["pk"]: r for r in await crud.find_many(tx, TABLE, "pk", pks)} if pks else {}
    return [rows.get(b["pk"], {}) for b in bases]


# Property mappings ---------------------------------------------------------------------------


async def ensure_default_mappings(db: store.Store) -> None:
    """Create authentik's system SAML property mappings once (they are `managed`)."""
    async with db.read() as tx:
        have = {m["managed"] for m in await crud.all_rows(tx, MAPPINGS) if m["managed"]}
    missing = [s for s in DEFAULT_MAPPINGS if managed_name(s) not in have]
    if not missing:
        return
    async with db.transaction() as tx:
        await crud.lock(tx, "saml-default-mappings")
        have = {m["managed"] for m in await crud.all_rows(tx, MAPPINGS) if m["managed"]}
        for short in missing:
            if managed_name(short) in have:
                continue
            name, saml_name, expression = DEFAULT_MAPPINGS[short]
            if await crud.exists(tx, MAPPINGS, name=name):
                name = f"{name} ({util.new_uuid()[:8]})"
            await crud.insert(
                tx,
                MAPPINGS,
                {
                    "pk": util.new_uuid(),
                    "name": name,
                    "saml_name": saml_name,
                    "friendly_name": None,
                    "expression": expression,
                    "managed": managed_name(short),
                    "created": util.now(),
                },
            )


def serialize_mappings(rows: list[dict[str, Any]]) -> list[wire.saml.SAMLPropertyMapping]:
    return [
        wire.saml.SAMLPropertyMapping(
            pk=r["pk"],
            managed=r["managed"],
            name=r["name"],
            expression=r["expression"],
            saml_name=r["saml_name"],
            friendly_name=r["friendly_name"],
            component=MAPPING_COMPONENT,
            verbose_name="SAML Provider Property Mapping",
            verbose_name_plural="SAML Provider Property Mappings",
            meta_model_name=MAPPING_MODEL,
        )
        for r in rows
    ]


async def default_mapping_pks(tx: store.Tx) -> list[str]:
    """The system mappings' pks (what a provider made from metadata starts with)."""
    rows = await crud.find_many(
        tx, MAPPINGS, "managed", [managed_name(s) for s in DEFAULT_MAPPINGS]
    )
    order = {managed_name(s): i for i, s in enumerate(DEFAULT_MAPPINGS)}
    return [r["pk"] for r in sorted(rows, key=lambda r: order[r["managed"]])]
