"""Users: creation and update rules, group membership, passwords, and the API representation."""

from __future__ import annotations

from typing import Any

from tessera.core import crypto, errors, store, wire
from tessera.core.identity import groups, util
from tessera.core.store import crud

TABLE = "users"


async def taken(tx: store.Tx, username: str, except_pk: int | None = None) -> bool:
    row = await find_by_username(tx, username)
    return row is not None and row["pk"] != except_pk


async def find_by_username(tx: store.Tx, username: str) -> dict[str, Any] | None:
    """Case-insensitive lookup (usernames are unique regardless of case)."""
    return await crud.find(tx, TABLE, username_folded=fold(username))


def fold(username: str) -> str:
    """The case-insensitive form under which usernames are unique."""
    return username.casefold()


async def create(tx: store.Tx, body: wire.core.UserRequest) -> dict[str, Any]:
    if await taken(tx, body.username):
        raise errors.ValidationFailed.one("username", "This username is already taken.")
    group_pks = await groups.existing(tx, body.groups, field="groups")
    values = body.model_dump(exclude={"groups"})
    row = await crud.insert(
        tx,
        TABLE,
        {
            **values,
            "username_folded": fold(body.username),
            "uuid": util.new_uuid(),
            "date_joined": util.now(),
            "password": "",
        },
    )
    await crud.set_members(tx, user_pk=row["pk"], others=group_pks)
    return row


async def update(tx: store.Tx, row: dict[str, Any], body: wire.core.UserRequest) -> dict[str, Any]:
    if await taken(tx, body.username, except_pk=row["pk"]):
        raise errors.ValidationFailed.one("username", "This username is already taken.")
    group_pks = await groups.existing(tx, body.groups, field="groups")
    values = body.model_dump(exclude={"groups"}) | {"username_folded": fold(body.username)}
    updated = await crud.update(tx, TABLE, {"pk": row["pk"]}, values)
    await crud.set_members(tx, user_pk=row["pk"], others=group_pks)
    return updated


async def writable(tx: store.Tx, row: dict[str, Any]) -> dict[str, Any]:
    """The request-shaped view of a row, for PATCH merging and change detection."""
    fields = wire.core.UserRequest.model_fields
    out = {k: row[k] for k in fields if k in row}
    out["groups"] = (await crud.groups_of_users(tx, [row["pk"]]))[row["pk"]]
    return out


async def set_password(tx: store.Tx, pk: int, password: str) -> None:
    hashed = await crypto.work.run(crypto.passwords.hash_password, password)
    await crud.update(
        tx, TABLE, {"pk": pk}, {"password": hashed, "password_change_date": util.now()}
    )


async def activate(tx: store.Tx, pk: int) -> None:
    """Mark the user active (an email stage with `activate_user_on_success`); no error if gone."""
    if await crud.find(tx, TABLE, pk=pk) is not None:
        await crud.update(tx, TABLE, {"pk": pk}, {"is_active": True})


async def set_unusable_password(tx: store.Tx, pk: int) -> None:
    """No password logs this user in until a new one is set (Django's `set_unusable_password`;
    the change date stays, as there)."""
    await crud.update(tx, TABLE, {"pk": pk}, {"password": crypto.passwords.UNUSABLE})


async def is_superuser(tx: store.Tx, pk: int) -> bool:
    return await crud.in_superuser_group(tx, pk)


def uid(keyring: crypto.Keyring, user_pk: int) -> str:
    """A stable, opaque per-install identifier of the user (authentik's `uid`)."""
    return keyring.digest(f"user-uid:{user_pk}")


def partial(keyring: crypto.Keyring, row: dict[str, Any]) -> wire.core.PartialUser:
    """authentik's `PartialUser` of a user row (a binding's `user_obj`, an invitation's
    `created_by`)."""
    return wire.core.PartialUser.model_construct(
        pk=row["pk"],
        username=row["username"],
        name=row["name"],
        is_active=row["is_active"],
        last_login=row["last_login"],
        email=row["email"],
        attributes=row["attributes"],
        uid=uid(keyring, row["pk"]),
    )


async def serialize(
    tx: store.Tx, keyring: crypto.Keyring, rows: list[dict[str, Any]]
) -> list[wire.core.User]:
    memberships = await crud.groups_of_users(tx, [r["pk"] for r in rows])
    tree = await groups.Tree.load(tx)
    # Rows come from our own store, already typed: construct without re-validating (a test
    # checks that every serialized user also validates).
    return [
        wire.core.User.model_construct(
            **{k: row[k] for k in _PLAIN},
            is_superuser=tree.any_superuser(memberships[row["pk"]]),
            groups=memberships[row["pk"]],
            groups_obj=[tree.brief(g) for g in memberships[row["pk"]]],
            uid=uid(keyring, row["pk"]),
        )
        for row in rows
    ]


_PLAIN = (
    "pk",
    "username",
    "name",
    "is_active",
    "last_login",
    "date_joined",
    "email",
    "attributes",
    "path",
    "type",
    "uuid",
    "password_change_date",
)
