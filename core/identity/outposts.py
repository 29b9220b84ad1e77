"""Outposts: their rows, their providers, and the service account and API token each one has.

An outpost (authentik's `Outpost`) is a proxy or LDAP process that serves some providers. When
it is created the core makes its service account (`ak-outpost-<uuid hex>`, type
`internal_service_account`, path `goauthentik.io/outposts`) and a non-expiring API token of that
account, identifier `ak-outpost-<pk>-api`, which the outpost presents to the API and to the
control channel. Deleting the outpost deletes both.

Callers: the admin API's outpost resource (`api.resources.outposts`), the API's authentication
(an outpost's account may read only its own objects: `of_user`, `readable_keypairs`), the control
channel (`outpost_for_token`) and the proxy provider slice (the embedded outpost,
`ensure_embedded`).

# SECURITY: `outpost_for_token` accepts only the outpost's own API token (found by keyed digest and
# compared in constant time, intent `api`, not expired, its user active and the outpost's account).
"""

from __future__ import annotations

import uuid
from typing import Any

from tessera.core import crypto, errors, store, wire
from tessera.core.identity import tokens, users, util
from tessera.core.store import crud

TABLE = "outposts"
LINKS = "outpost_providers"
USER_PATH = "goauthentik.io/outposts"
SERVICE_ACCOUNT = "internal_service_account"
EMBEDDED_MANAGED = wire.outposts.EMBEDDED_MANAGED
EMBEDDED_NAME = wire.outposts.EMBEDDED_NAME
MAX_KEY = 512  # longer presented keys are refused unread


def token_identifier(outpost_pk: str) -> str:
    """authentik's `Outpost.token_identifier`."""
    return f"ak-outpost-{outpost_pk}-api"


def token_managed(outpost_pk: str) -> str:
    return f"goauthentik.io/outpost/{token_identifier(outpost_pk)}"


def username(outpost_pk: str) -> str:
    """authentik's `Outpost.user_identifier`: the outpost's UUID without hyphens."""
    return f"ak-outpost-{uuid.UUID(outpost_pk).hex}"


def default_config(authentik_host: str = "") -> dict[str, Any]:
    """authentik's `default_outpost_config`: every key with its default (`authentik_host` left
    empty when it is not an http(s) URL: then outposts use the host they reached)."""
    try:
        return wire.outposts.OutpostConfig(authentik_host=authentik_host).model_dump()
    except ValueError:  # pydantic's ValidationError
        return wire.outposts.OutpostConfig().model_dump()


def full_config(config: dict[str, Any]) -> dict[str, Any]:
    """`config` checked against authentik's keys and completed with their defaults (unknown keys
    kept as given); ValueError (pydantic's) when a known key has a wrong value."""
    return wire.outposts.OutpostConfig.model_validate(config).model_dump()


def refresh_interval_s(config: dict[str, Any]) -> int:
    raw = config.get("refresh_interval", "minutes=5")
    try:
        return int(wire.durations.parse(str(raw)).total_seconds())
    except ValueError:
        return 300


# Rows -----------------------------------------------------------------------------------------


async def create(
    tx: store.Tx,
    keyring: crypto.Keyring,
    *,
    name: str,
    type: str,
    config: dict[str, Any],
    providers: list[int],
    managed: str | None = None,
) -> dict[str, Any]:
    """Insert an outpost with its providers, service account and token (providers checked by
    the caller). The name is unique: ValidationFailed on `name` when taken."""
    if await crud.exists(tx, TABLE, name=name):
        raise errors.ValidationFailed.one("name", "Outpost with this name already exists.")
    if managed is not None and await crud.exists(tx, TABLE, managed=managed):
        raise errors.ValidationFailed.one("managed", "Outpost with this managed already exists.")
    row = await crud.insert(
        tx,
        TABLE,
        {
            "pk": util.new_uuid(),
            "name": name,
            "type": type,
            "config": config,
            "managed": managed,
            "user_pk": None,
            "created": util.now(),
        },
    )
    await set_providers(tx, row["pk"], providers)
    return await ensure_credentials(tx, keyring, row)


async def update(
    tx: store.Tx,
    keyring: crypto.Keyring,
    row: dict[str, Any],
    *,
    name: str,
    type: str,
    config: dict[str, Any],
    providers: list[int],
    managed: str | None,
) -> dict[str, Any]:
    clash = await crud.find(tx, TABLE, name=name)
    if clash is not None and clash["pk"] != row["pk"]:
        raise errors.ValidationFailed.one("name", "Outpost with this name already exists.")
    values = {"name": name, "type": type, "config": config, "managed": managed}
    row = await crud.update(tx, TABLE, {"pk": row["pk"]}, values)
    await set_providers(tx, row["pk"], providers)
    row = await ensure_credentials(tx, keyring, row)
    if row["user_pk"] is not None:  # the account's display name follows the outpost's
        await crud.update(tx, "users", {"pk": row["user_pk"]}, {"name": _account_name(name)})
    return row


async def delete(tx: store.Tx, row: dict[str, Any]) -> None:
    """The outpost, its token and its service account (its links go with it)."""
    await crud.delete(tx, tokens.TABLE, identifier=token_identifier(row["pk"]))
    await crud.delete(tx, TABLE, pk=row["pk"])
    if row["user_pk"] is not None:
        await crud.delete(tx, "users", pk=row["user_pk"])  # cascades to its other tokens


async def set_providers(tx: store.Tx, outpost_pk: str, providers: list[int]) -> None:
    await crud.delete(tx, LINKS, outpost=outpost_pk)
    for position, provider in enumerate(providers):
        await crud.insert(
            tx, LINKS, {"outpost": outpost_pk, "provider": provider, "position": position}
        )


async def providers_of(tx: store.Tx, outpost_pks: list[str]) -> dict[str, list[int]]:
    """Each outpost's provider pks, in the order they were given."""
    links = await crud.find_many(tx, LINKS, "outpost", outpost_pks) if outpost_pks else []
    out: dict[str, list[int]] = {pk: [] for pk in outpost_pks}
    for link in sorted(links, key=lambda r: (r["outpost"], r["position"])):
        out[link["outpost"]].append(link["provider"])
    return out


async def outposts_of_providers(tx: store.Tx, provider_pks: list[int]) -> dict[int, list[str]]:
    """The names of the outposts serving each provider (a proxy provider's `outpost_set`)."""
    links = await crud.find_many(tx, LINKS, "provider", provider_pks) if provider_pks else []
    rows = await crud.find_many(tx, TABLE, "pk", {r["outpost"] for r in links}) if links else []
    names = {r["pk"]: r["name"] for r in rows}
    out: dict[int, list[str]] = {pk: [] for pk in provider_pks}
    for link in links:
        if link["outpost"] in names:
            out[link["provider"]].append(names[link["outpost"]])
    return {pk: sorted(found) for pk, found in out.items()}


# The service account and its token ------------------------------------------------------------


def _account_name(outpost_name: str) -> str:
    return f"Outpost {outpost_name} Service-Account"[:256]


async def ensure_credentials(
    tx: store.Tx, keyring: crypto.Keyring, row: dict[str, Any]
) -> dict[str, Any]:
    """The outpost's service account and API token, made when missing (an admin may have deleted
    either); the row, with `user_pk` set."""
    user_pk = row["user_pk"]
    if user_pk is None or not await crud.exists(tx, "users", pk=user_pk):
        user_pk = await _service_account(tx, row)
        row = await crud.update(tx, TABLE, {"pk": row["pk"]}, {"user_pk": user_pk})
    identifier = token_identifier(row["pk"])
    found = await crud.find(tx, tokens.TABLE, identifier=identifier)
    if found is not None and not _is_outpost_token(found, row):
        # SECURITY: a token under the outpost's identifier that is not its own is never kept.
        await crud.delete(tx, tokens.TABLE, pk=found["pk"])
        found = None
    if found is None:
        body = wire.core.TokenRequest(
            identifier=identifier,
            intent="api",
            expiring=False,
            description=f"Autogenerated by authentik for Outpost {row['name']}"[:5000],
        )
        await tokens.create(
            tx, keyring, body, user_pk=user_pk, managed=token_managed(row["pk"]), system=True
        )
    return row


async def _service_account(tx: store.Tx, row: dict[str, Any]) -> int:
    name = username(row["pk"])
    existing = await users.find_by_username(tx, name)
    if existing is not None:
        # Only the system makes `ak-` accounts; one of this name that is not an outpost's
        # service account is not taken over.
        if existing["type"] != SERVICE_ACCOUNT or existing["path"] != USER_PATH:
            raise errors.ValidationFailed.one(
                "name", f"The service account name {name} is taken by another user."
            )
        return int(existing["pk"])
    body = wire.core.UserRequest(
        username=name, name=_account_name(row["name"]), type=SERVICE_ACCOUNT, path=USER_PATH
    )
    account = await users.create(tx, body)
    return int(account["pk"])


def _is_outpost_token(token: dict[str, Any], row: dict[str, Any]) -> bool:
    return bool(
        token["user_pk"] == row["user_pk"]
        and token["intent"] == "api"
        and token["identifier"] == token_identifier(row["pk"])
    )


async def token_key(tx: store.Tx, keyring: crypto.Keyring, row: dict[str, Any]) -> str | None:
    """The outpost's API token key (for the embedded outpost, and the operator's Secret)."""
    found = await crud.find(tx, tokens.TABLE, identifier=token_identifier(row["pk"]))
    if found is None or not _is_outpost_token(found, row):
        return None
    return tokens.view_key(keyring, found)


# Who is calling -------------------------------------------------------------------------------


async def outpost_for_token(
    tx: store.Tx, keyring: crypto.Keyring, outpost_uuid: str, token_key: str
) -> dict[str, Any] | None:
    """The outpost `outpost_uuid` if `token_key` is its API token, else None.

    The token must be the outpost's own (identifier `ak-outpost-<pk>-api`, its service account's),
    of intent `api`, not expired, and its user active. Any malformed input is None."""
    try:
        pk = str(uuid.UUID(outpost_uuid))
    except (ValueError, TypeError, AttributeError):
        return None
    if not token_key or len(token_key) > MAX_KEY:
        return None
    row = await crud.find(tx, TABLE, pk=pk)
    if row is None or row["user_pk"] is None:
        return None
    found = await tokens.authenticate(tx, keyring, token_key, intent="api")
    if found is None:
        return None
    token, _ = found
    if not _is_outpost_token(token, row):
        return None
    return row


async def of_user(tx: store.Tx, user: dict[str, Any]) -> dict[str, Any] | None:
    """The outpost whose service account `user` is, or None (any other user)."""
    if user.get("type") != SERVICE_ACCOUNT:
        return None
    return await crud.find(tx, TABLE, user_pk=user["pk"])


async def readable_keypairs(tx: store.Tx, outpost_pk: str) -> set[str]:
    """The key pairs an outpost may read (certificate and private key): those its providers use,
    the TLS certificates of its proxy and LDAP providers and the signing keys of their OAuth2
    clients."""
    provider_pks = (await providers_of(tx, [outpost_pk]))[outpost_pk]
    if not provider_pks:
        return set()
    out: set[str] = set()
    for table, column in (
        ("proxy_providers", "certificate"),
        ("ldap_providers", "certificate"),
        ("oauth2_providers", "signing_key"),
    ):
        for found in await crud.find_many(tx, table, "pk", provider_pks):
            if found[column]:
                out.add(found[column])
    return out


# The embedded outpost -------------------------------------------------------------------------


async def remove_embedded(tx: store.Tx) -> None:
    """The managed embedded outpost, its token and service account, when there is one."""
    await crud.lock(tx, "outposts-embedded")
    row = await crud.find(tx, TABLE, managed=EMBEDDED_MANAGED)
    if row is not None:
        await delete(tx, row)


async def ensure_embedded(
    tx: store.Tx, keyring: crypto.Keyring, authentik_host: str
) -> dict[str, Any]:
    """authentik's managed "authentik Embedded Outpost" (type proxy), made when missing; its
    `config.authentik_host` is `authentik_host` when it has none (empty: the request's host)."""
    await crud.lock(tx, "outposts-embedded")
    row = await crud.find(tx, TABLE, managed=EMBEDDED_MANAGED)
    if row is None:
        name = EMBEDDED_NAME
        if await crud.exists(tx, TABLE, name=name):
            name = f"{EMBEDDED_NAME} ({util.new_uuid()[:8]})"  # an admin's outpost has the name
        return await create(
            tx,
            keyring,
            name=name,
            type="proxy",
            config=default_config(authentik_host),
            providers=[],
            managed=EMBEDDED_MANAGED,
        )
    if authentik_host and not row["config"].get("authentik_host"):
        row = await crud.update(
            tx,
            TABLE,
            {"pk": row["pk"]},
            {"config": {**row["config"], "authentik_host": authentik_host}},
        )
    return await ensure_credentials(tx, keyring, row)
