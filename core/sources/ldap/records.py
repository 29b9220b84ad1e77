"""Stored LDAP sources: validation, writes, their wire form, and what a sync or a login needs.

A source is a row of `ldap_sources`. Its bind password is sealed by the keyring (context
`ldap_sources:<pk>`), is never answered, and is kept when a write leaves it out. The objects a
source created are linked to it (`ldap_source_users`, `ldap_source_groups`).

# SECURITY: `sync_users_password` may be on for one source only (a password is written back to
# one directory); the bind password leaves the store only unsealed into a `crypto.Secret`, and
# a change of where it is sent (server, bind DN, TLS) needs it given again, so that the stored
# one cannot be sent to a server of the caller's choosing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tessera.core import crypto, errors, store, wire
from tessera.core.identity import util
from tessera.core.sources.ldap import client, mappings
from tessera.core.store import crud

TABLE = "ldap_sources"
SYNCS = "ldap_source_syncs"
USERS = "ldap_source_users"
GROUPS = "ldap_source_groups"
COMPONENT = "ak-source-ldap-form"
MODEL = "authentik_sources_ldap.ldapsource"
MAPPING_COMPONENT = "ak-property-mapping-source-ldap-form"
MAPPING_MODEL = "authentik_sources_ldap.ldapsourcepropertymapping"
_FIELDS = tuple(
    f for f in wire.sources.LDAPSourceRequest.model_fields if f not in ("bind_password",)
)
MAX_MESSAGES = 100
# Settings that decide where the bind password is sent, and how: changing one needs the password.
_WHERE_THE_PASSWORD_GOES = ("server_uri", "bind_cn", "start_tls", "peer_certificate", "sni")


def _context(pk: str) -> str:
    return f"{TABLE}:{pk}"


def _missing(field: str, value: object) -> errors.ValidationFailed:
    return errors.ValidationFailed.one(field, f'Invalid pk "{value}" - object does not exist.')


async def _check(tx: store.Tx, body: wire.sources.LDAPSourceRequest, pk: str | None) -> None:
    for field, message in (("name", "name"), ("slug", "slug")):
        same = await crud.find(tx, TABLE, **{field: getattr(body, field)})
        if same is not None and same["pk"] != pk:
            raise errors.ValidationFailed.one(
                field, f"LDAP Source with this {message} already exists."
            )
    named = client.uris(body.server_uri)
    if not named:
        raise errors.ValidationFailed.one("server_uri", "Name at least one server.")
    for uri in named:
        problem = client.check_uri(uri)
        if problem is not None:
            raise errors.ValidationFailed.one("server_uri", problem)
    for field in ("user_object_filter", "group_object_filter"):
        problem = client.check_filter(getattr(body, field))
        if problem is not None:
            raise errors.ValidationFailed.one(field, problem)
    for field in ("authentication_flow", "enrollment_flow"):
        value = getattr(body, field)
        if value is not None and not await crud.exists(tx, "flows", pk=value):
            raise _missing(field, value)
    for field in ("peer_certificate", "client_certificate"):
        value = getattr(body, field)
        if value is not None and not await crud.exists(tx, "certificate_keypairs", pk=value):
            raise _missing(field, value)
    if body.client_certificate is not None:
        raise errors.ValidationFailed.one(
            "client_certificate", "Tessera binds with the bind DN; leave this empty."
        )
    if body.sync_parent_group is not None and not await crud.exists(
        tx, "groups", pk=body.sync_parent_group
    ):
        raise _missing("sync_parent_group", body.sync_parent_group)
    for field in ("user_property_mappings", "group_property_mappings"):
        wanted = getattr(body, field)
        if wanted:
            found = {m["pk"] for m in await crud.find_many(tx, mappings.TABLE, "pk", wanted)}
            missing = [v for v in wanted if v not in found]
            if missing:
                raise _missing(field, missing[0])
    if body.sync_users_password:
        others = [
            r
            for r in await crud.rows(tx, TABLE, [crud.Filter("sync_users_password", "eq", True)])
            if r["pk"] != pk
        ]
        if others:
            raise errors.ValidationFailed.one(
                "sync_users_password",
                "Only one LDAP Source may write passwords back; "
                f"{others[0]['name']!r} already does.",
            )
    try:
        body.user_path_template % {"slug": body.slug}
    except (KeyError, ValueError, TypeError):
        raise errors.ValidationFailed.one(
            "user_path_template", "Use %(slug)s as the only placeholder."
        ) from None


def _values(body: wire.sources.LDAPSourceRequest) -> dict[str, Any]:
    data = body.model_dump(include=set(_FIELDS))
    for field in ("user_property_mappings", "group_property_mappings"):
        data[field] = list(dict.fromkeys(data[field]))
    return data


async def create(
    tx: store.Tx, keyring: crypto.Keyring, body: wire.sources.LDAPSourceRequest
) -> dict[str, Any]:
    await _check(tx, body, None)
    pk = util.new_uuid()
    sealed = keyring.seal(body.bind_password, _context(pk)) if body.bind_password else ""
    row = await crud.insert(
        tx,
        TABLE,
        {**_values(body), "pk": pk, "bind_password_sealed": sealed, "created": util.now()},
    )
    await crud.insert(tx, SYNCS, {"source": pk, "counts": {}, "messages": []})
    return row


async def update(
    tx: store.Tx,
    keyring: crypto.Keyring,
    row: dict[str, Any],
    body: wire.sources.LDAPSourceRequest,
) -> dict[str, Any]:
    await _check(tx, body, row["pk"])
    values = _values(body)
    moved = [f for f in _WHERE_THE_PASSWORD_GOES if values[f] != row[f]]
    if moved and body.bind_password is None and row["bind_password_sealed"]:
        # SECURITY: the stored password is never answered; it must not be sent elsewhere (or
        # in the clear) by a change that leaves it out either.
        raise errors.ValidationFailed.one(
            "bind_password",
            f"Enter the bind password again: {', '.join(moved)} changed where it is sent.",
        )
    if body.bind_password is not None:  # left out: the stored one stays
        values["bind_password_sealed"] = (
            keyring.seal(body.bind_password, _context(row["pk"])) if body.bind_password else ""
        )
    return await crud.update(tx, TABLE, {"pk": row["pk"]}, values)


def writable(row: dict[str, Any]) -> dict[str, Any]:
    """The request-shaped values (no password: it is write-only)."""
    return {k: row[k] for k in _FIELDS}


def bind_password(keyring: crypto.Keyring, row: dict[str, Any]) -> crypto.Secret:
    """The unsealed bind password; DirectoryError when it cannot be unsealed (the secret key
    changed, or the row was tampered with)."""
    sealed = row["bind_password_sealed"]
    try:
        return crypto.Secret(keyring.unseal(sealed, _context(row["pk"])) if sealed else "")
    except crypto.secrets.UnsealError:
        raise client.DirectoryError(
            "the bind password cannot be unsealed (was the secret key changed?); set it again"
        ) from None


async def connection_settings(
    tx: store.Tx, keyring: crypto.Keyring, row: dict[str, Any]
) -> client.Settings:
    ca_pem = None
    if row["peer_certificate"]:
        pair = await crud.find(tx, "certificate_keypairs", pk=row["peer_certificate"])
        ca_pem = pair["certificate_data"] if pair else None
    return client.Settings(
        uris=client.uris(row["server_uri"]),
        bind_dn=row["bind_cn"],
        bind_password=bind_password(keyring, row),
        start_tls=bool(row["start_tls"]),
        ca_pem=ca_pem,
        sni=bool(row["sni"]),
    )


def user_path(row: dict[str, Any]) -> str:
    try:
        return str(row["user_path_template"] % {"slug": row["slug"]})
    except (KeyError, ValueError, TypeError):
        return f"goauthentik.io/sources/{row['slug']}"


# Wire form -----------------------------------------------------------------------------------


def serialize(rows: list[dict[str, Any]]) -> list[wire.sources.LDAPSource]:
    return [
        wire.sources.LDAPSource.model_construct(
            pk=r["pk"],
            **{k: r[k] for k in _FIELDS},
            component=COMPONENT,
            verbose_name="LDAP Source",
            verbose_name_plural="LDAP Sources",
            meta_model_name=MODEL,
            managed=r["managed"],
            icon_url="/static/dist/assets/icons/icon.svg",
            icon_themed_urls=None,
            connectivity=None,
        )
        for r in rows
    ]


def serialize_any(rows: list[dict[str, Any]]) -> list[wire.sources.Source]:
    """`/sources/all/`: the shared fields of LDAP sources."""
    shared = wire.sources.Source.model_fields
    return [
        wire.sources.Source.model_construct(
            **{k: v for k, v in s.model_dump().items() if k in shared}
        )
        for s in serialize(rows)
    ]


def serialize_mappings(
    rows: list[dict[str, Any]],
) -> list[wire.sources.LDAPSourcePropertyMapping]:
    return [
        wire.sources.LDAPSourcePropertyMapping(
            pk=r["pk"],
            managed=r["managed"],
            name=r["name"],
            expression=r["expression"],
            component=MAPPING_COMPONENT,
            verbose_name="LDAP Source Property Mapping",
            verbose_name_plural="LDAP Source Property Mappings",
            meta_model_name=MAPPING_MODEL,
        )
        for r in rows
    ]


# Sync status ---------------------------------------------------------------------------------


def status(row: dict[str, Any] | None, running: bool) -> wire.sources.SyncStatus:
    if row is None or row["started"] is None:
        return wire.sources.SyncStatus(is_running=running)
    last = wire.sources.LastSync(
        started=row["started"],
        finished=row["finished"],
        status=row["status"] or "running",
        counts=wire.sources.SyncCounts(**(row["counts"] or {})),
        messages=list(row["messages"] or []),
    )
    return wire.sources.SyncStatus(
        is_running=running,
        last_successful_sync=row["last_successful"],
        last_sync_status=row["status"] if row["finished"] else None,
        last_sync=last,
    )


async def read_status(tx: store.Tx, pk: str, now: dt.datetime) -> wire.sources.SyncStatus:
    row = await crud.find(tx, SYNCS, source=pk)
    lease = await crud.find(tx, "leases", name=lease_name(pk))
    running = lease is not None and lease["expires"] > now and row is not None
    running = running and row is not None and row["running_since"] is not None
    return status(row, running)


def lease_name(pk: str) -> str:
    return f"ldap-source-sync:{pk}"
