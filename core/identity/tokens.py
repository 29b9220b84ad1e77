"""Tokens: API tokens, app passwords, recovery and verification keys.

# SECURITY: a key is shown once at creation and afterwards only through `view_key`; the store
# keeps a keyed digest for lookup and a sealed copy for viewing. Lookup is by digest, so timing
# reveals nothing about a guessed key; expired tokens and inactive users never authenticate.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tessera.core import crypto, errors, store, wire
from tessera.core.identity import token_rules, users, util
from tessera.core.store import crud

TABLE = "tokens"
DEFAULT_DURATION = dt.timedelta(minutes=30)  # authentik's default_token_duration


SELF_SERVICE_INTENTS = token_rules.SELF_SERVICE_INTENTS


def check_self_service(body: wire.core.TokenRequest, user_pk: int) -> int:
    """The owner of a token a non-superuser writes: themselves. Naming another user is 403, an
    intent other than `api` or `app_password` is 400."""
    # SECURITY: without this a user could mint an API token (or a recovery key) for anyone.
    if body.user is not None and body.user != user_pk:
        raise errors.PermissionDenied("You can only manage your own tokens.")
    if body.intent not in SELF_SERVICE_INTENTS:
        raise errors.ValidationFailed.one("intent", "Choose an API token or an app password.")
    return user_pk


def _check_managed(body: wire.core.TokenRequest, current: str | None) -> None:
    """authentik's `managed` marks the tokens the system makes (outposts, bootstrap): a request
    may send back the value a token has, never set or change it."""
    # SECURITY: a managed token is hidden from its user's own listing; no API write makes one.
    if body.managed is not None and body.managed != current:
        raise errors.ValidationFailed.one(
            "managed", "Only tokens the system makes are managed; this cannot be set."
        )


def _context(pk: str) -> str:
    return f"tokens:{pk}"


async def create(
    tx: store.Tx,
    keyring: crypto.Keyring,
    body: wire.core.TokenRequest,
    *,
    user_pk: int,
    key: str | None = None,
    managed: str | None = None,
    system: bool = False,
) -> tuple[dict[str, Any], str]:
    """Insert a token; return the row and the clear key (to show once). Only the `system` may
    use a reserved identifier (`token_rules.check_identifier`)."""
    if not system:
        token_rules.check_identifier(body.identifier)
    _check_managed(body, managed)
    if await crud.exists(tx, TABLE, identifier=body.identifier):
        raise errors.ValidationFailed.one(
            "identifier", "Token with this identifier already exists."
        )
    if not await crud.exists(tx, "users", pk=user_pk):
        raise errors.ValidationFailed.one(
            "user", f'Invalid pk "{user_pk}" - object does not exist.'
        )
    key = key or crypto.secrets.new_token()
    pk = util.new_uuid()
    expires = body.expires
    if body.expiring and expires is None:
        expires = util.now() + DEFAULT_DURATION
    row = await crud.insert(
        tx,
        TABLE,
        {
            **body.model_dump(exclude={"user", "expires", "managed"}),
            "pk": pk,
            "user_pk": user_pk,
            "expires": expires if body.expiring else None,
            "key_digest": keyring.digest(key),
            "key_sealed": keyring.seal(key, _context(pk)),
            "managed": managed,
            "created": util.now(),
        },
    )
    return row, key


async def update(
    tx: store.Tx, row: dict[str, Any], body: wire.core.TokenRequest, *, user_pk: int
) -> dict[str, Any]:
    token_rules.check_identifier(body.identifier, current=row["identifier"])
    _check_managed(body, row["managed"])
    clash = await crud.find(tx, TABLE, identifier=body.identifier)
    if clash is not None and clash["pk"] != row["pk"]:
        raise errors.ValidationFailed.one(
            "identifier", "Token with this identifier already exists."
        )
    if not await crud.exists(tx, "users", pk=user_pk):
        raise errors.ValidationFailed.one(
            "user", f'Invalid pk "{user_pk}" - object does not exist.'
        )
    values = body.model_dump(exclude={"user", "managed"}) | {"user_pk": user_pk}
    values["expires"] = _expiry_on_update(body, row)
    return await crud.update(tx, TABLE, {"pk": row["pk"]}, values)


def _expiry_on_update(body: wire.core.TokenRequest, row: dict[str, Any]) -> dt.datetime | None:
    """A non-expiring token has no date. Otherwise the date sent, and an explicit null is kept
    as authentik keeps it: no date, so the token does not expire until one is set (the client
    sends null for every field a partial update built with `from_dict` leaves out). A body that
    leaves `expires` out keeps the token's date, or gets the default duration if it had none."""
    if not body.expiring:
        return None
    if "expires" in body.model_fields_set:
        return body.expires
    return row["expires"] or util.now() + DEFAULT_DURATION


async def writable(tx: store.Tx, row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in wire.core.TokenRequest.model_fields if k in row}
    out["user"] = row["user_pk"]
    return out


def view_key(keyring: crypto.Keyring, row: dict[str, Any]) -> str:
    return keyring.unseal(row["key_sealed"], _context(row["pk"]))


def expired(row: dict[str, Any], now: dt.datetime | None = None) -> bool:
    return bool(
        row["expiring"] and row["expires"] is not None and row["expires"] <= (now or util.now())
    )


async def authenticate(
    tx: store.Tx, keyring: crypto.Keyring, key: str, intent: str = "api"
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The (token, user) for a presented key of `intent`, or None."""
    digest = keyring.digest(key)
    row = await crud.find(tx, TABLE, key_digest=digest)
    if row is None or not crypto.secrets.equal(row["key_digest"], digest):
        return None
    if row["intent"] != intent or expired(row):
        return None
    user = await crud.find(tx, "users", pk=row["user_pk"])
    if user is None or not user["is_active"]:
        return None
    return row, user


async def serialize(
    tx: store.Tx, keyring: crypto.Keyring, rows: list[dict[str, Any]]
) -> list[wire.core.Token]:
    owners = await crud.find_many(tx, "users", "pk", {r["user_pk"] for r in rows})
    people = {u.pk: u for u in await users.serialize(tx, keyring, owners)}
    return [
        wire.core.Token.model_construct(
            pk=r["pk"],
            managed=r["managed"],
            identifier=r["identifier"],
            intent=r["intent"],
            user=r["user_pk"],
            user_obj=people[r["user_pk"]],
            description=r["description"],
            expires=r["expires"],
            expiring=r["expiring"],
        )
        for r in rows
    ]


async def remove_expired(tx: store.Tx, limit: int | None = None) -> int:
    """Delete expired expiring tokens (at most `limit`); how many went."""
    now = util.now()
    filters = [crud.Filter("expiring", "eq", True), crud.Filter("expires", "lte", now)]
    return await crud.delete_matching(tx, TABLE, filters, limit)
