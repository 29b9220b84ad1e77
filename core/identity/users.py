"""Users: creation and update rules, group membership, passwords, and the API representation."""

from __future__ import annotations

from typing import Any

from tessera.core import crypto, store, wire
from tessera.core.identity import avatars, groups, identifiers, people, sessions, util
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


_NOT_COLUMNS = {"groups", "roles"}


async def create(
    tx: store.Tx, body: wire.core.UserRequest, *, self_service: bool = False
) -> dict[str, Any]:
    """`self_service`: the new user chose these values (enrollment), see `identifiers.check`."""
    await identifiers.check(tx, username=body.username, email=body.email, self_service=self_service)
    groups.no_roles(body.roles)
    group_pks = await groups.existing(tx, body.groups, field="groups")
    values = body.model_dump(exclude=_NOT_COLUMNS)
    now = util.now()
    row = await crud.insert(
        tx,
        TABLE,
        {
            **values,
            "username_folded": fold(body.username),
            "uuid": util.new_uuid(),
            "date_joined": now,
            # authentik stamps the password change date at creation, password or not.
            "password_change_date": now,
            "last_updated": now,
            "password": "",
        },
    )
    await crud.set_members(tx, user_pk=row["pk"], others=group_pks)
    return row


async def update(
    tx: store.Tx, row: dict[str, Any], body: wire.core.UserRequest, *, self_service: bool = False
) -> dict[str, Any]:
    """`self_service`: the user changes their own values (a flow), see `identifiers.check`."""
    await identifiers.check(
        tx, username=body.username, email=body.email, current=row, self_service=self_service
    )
    groups.no_roles(body.roles)
    group_pks = await groups.existing(tx, body.groups, field="groups")
    values = body.model_dump(exclude=_NOT_COLUMNS) | {"username_folded": fold(body.username)}
    if "last_login" not in body.model_fields_set:
        del values["last_login"]  # a PUT that leaves it out keeps it
    current = (await crud.groups_of_users(tx, [row["pk"]]))[row["pk"]]
    if any(row.get(k) != v for k, v in values.items()) or set(current) != set(group_pks):
        values["last_updated"] = util.now()  # a write that changes nothing leaves it
    updated = await crud.update(tx, TABLE, {"pk": row["pk"]}, values)
    await crud.set_members(tx, user_pk=row["pk"], others=group_pks)
    if row["is_active"] and not body.is_active:
        # SECURITY: a deactivated user's sessions end now (and at every outpost), rather than
        # lingering to come back should the user be activated again.
        await sessions.end_all(tx, row["pk"])
    return updated


async def delete(tx: store.Tx, row: dict[str, Any]) -> None:
    """Delete the user; their sessions end first, so that the outposts are told."""
    await sessions.end_all(tx, row["pk"])
    await crud.delete(tx, TABLE, pk=row["pk"])


async def writable(tx: store.Tx, row: dict[str, Any]) -> dict[str, Any]:
    """The request-shaped view of a row, for PATCH merging and change detection."""
    fields = wire.core.UserRequest.model_fields
    out = {k: row[k] for k in fields if k in row}
    out["groups"] = (await crud.groups_of_users(tx, [row["pk"]]))[row["pk"]]
    out["roles"] = []
    return out


async def set_password(tx: store.Tx, pk: int, password: str) -> None:
    hashed = await crypto.work.run(crypto.passwords.hash_password, password)
    now = util.now()
    await crud.update(
        tx,
        TABLE,
        {"pk": pk},
        {"password": hashed, "password_change_date": now, "last_updated": now},
    )


async def activate(tx: store.Tx, pk: int) -> None:
    """Mark the user active (an email stage with `activate_user_on_success`); no error if gone."""
    if await crud.find(tx, TABLE, pk=pk) is not None:
        await crud.update(tx, TABLE, {"pk": pk}, {"is_active": True, "last_updated": util.now()})


async def set_unusable_password(tx: store.Tx, pk: int) -> None:
    """No password logs this user in until a new one is set (Django's `set_unusable_password`;
    the change date stays, as there)."""
    values = {"password": crypto.passwords.UNUSABLE, "last_updated": util.now()}
    await crud.update(tx, TABLE, {"pk": pk}, values)


async def is_superuser(tx: store.Tx, pk: int) -> bool:
    return await crud.in_superuser_group(tx, pk)


# Where other modules name a user: kept here for them (`people` holds the code).
uid = people.uid
partial = people.partial


async def avatar_modes(tx: store.Tx) -> str:
    """authentik's `avatars` setting: an admin's choice (`/admin/settings/`), else the default."""
    chosen = (await store.system_settings.stored(tx)).get("avatars")
    return chosen if isinstance(chosen, str) and chosen else avatars.DEFAULT_MODES


async def serialize(
    tx: store.Tx,
    keyring: crypto.Keyring,
    rows: list[dict[str, Any]],
    *,
    include_groups: bool = True,
    include_roles: bool = True,
) -> list[wire.core.User]:
    """The users as authentik's `User`; without `include_groups` (`include_roles`) their
    `groups_obj` (`roles_obj`) is null, as authentik's listing sends it when asked so."""
    modes = await avatar_modes(tx)
    memberships = await crud.groups_of_users(tx, [r["pk"] for r in rows])
    tree = await groups.Tree.load(tx)
    # Rows come from our own store, already typed: construct without re-validating (a test
    # checks that every serialized user also validates).
    return [
        wire.core.User.model_construct(
            **{k: row[k] for k in _PLAIN},
            is_superuser=tree.any_superuser(memberships[row["pk"]]),
            groups=memberships[row["pk"]],
            groups_obj=[tree.brief(g) for g in memberships[row["pk"]]] if include_groups else None,
            roles=[],
            roles_obj=[] if include_roles else None,
            avatar=avatars.avatar(row, modes),
            uid=uid(keyring, row["pk"]),
            # Rows written before these were kept fall back to the date of joining.
            password_change_date=row["password_change_date"] or row["date_joined"],
            last_updated=row["last_updated"] or row["date_joined"],
        )
        for row in rows
    ]


async def serialize_self(
    tx: store.Tx, keyring: crypto.Keyring, row: dict[str, Any]
) -> wire.core.UserSelf:
    """authentik's `UserSelf`: what `/core/users/me/` tells a user about themselves."""
    member_of = (await crud.groups_of_users(tx, [row["pk"]]))[row["pk"]]
    tree = await groups.Tree.load(tx)
    return wire.core.UserSelf.model_construct(
        pk=row["pk"],
        username=row["username"],
        name=row["name"],
        is_active=row["is_active"],
        is_superuser=tree.any_superuser(member_of),
        is_current=True,
        groups=[
            wire.core.UserSelfGroup.model_construct(name=tree.rows[g]["name"], pk=g)
            for g in member_of
            if g in tree.rows
        ],
        roles=[],
        email=row["email"],
        avatar=avatars.avatar(row, await avatar_modes(tx)),
        uid=uid(keyring, row["pk"]),
        settings=settings(tree, member_of, row),
        type=row["type"],
        system_permissions=[],
    )


def settings(tree: groups.Tree, member_of: list[str], row: dict[str, Any]) -> dict[str, object]:
    """The user's interface settings: the `settings` attribute of their groups (ancestors first,
    so a nearer group overrides a farther one), then of the user, merged key by key."""
    order: list[str] = []
    for g in member_of:
        order.extend(a for a in reversed(tree.ancestors(g)) if a not in order)
    merged: dict[str, object] = {}
    for attributes in [tree.rows[g]["attributes"] for g in order] + [row["attributes"]]:
        found = attributes.get("settings") if isinstance(attributes, dict) else None
        if isinstance(found, dict):
            merged = _merge(merged, found)
    return merged


def _merge(base: dict[str, object], over: dict[str, object]) -> dict[str, object]:
    out = dict(base)
    for key, value in over.items():
        current = out.get(key)
        if isinstance(current, dict) and isinstance(value, dict):
            out[key] = _merge(current, value)
        else:
            out[key] = value
    return out


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
)
