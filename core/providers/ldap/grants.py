"""authentik's permission "search full directory" (`search_full_directory`) on LDAP providers.

A grant names a provider and a user or a group (`ldap_search_grants`); a group's grant reaches
its members and the members of its descendants, and superusers hold every permission, as in
authentik. A user without it who searches sees only themselves and their groups (`directory`).

authentik 2026 assigns object permissions to roles only (`/rbac/permissions/assigned_by_roles/`),
and Tessera has no roles; the whole set is read and replaced at
`/api/v3/providers/ldap/<pk>/search_access/` instead (`resources`), a decision recorded in
`docs/decisions/`. Writes go through the journal's triggers, so outposts drop the cached binds
of the users concerned (`push`).
"""

from __future__ import annotations

from typing import Any

from tessera.core import errors, store, wire
from tessera.core.identity import groups, users, util
from tessera.core.store import crud

TABLE = "ldap_search_grants"


async def holders(tx: store.Tx, provider_pk: int) -> wire.ldap.LDAPSearchAccess:
    rows = await crud.rows(tx, TABLE, [crud.Filter("provider", "eq", provider_pk)], limit=100_000)
    return wire.ldap.LDAPSearchAccess(
        users=sorted(r["user_pk"] for r in rows if r["user_pk"] is not None),
        groups=sorted(r["group_pk"] for r in rows if r["group_pk"] is not None),
    )


async def replace(
    tx: store.Tx, provider_pk: int, body: wire.ldap.LDAPSearchAccessRequest
) -> wire.ldap.LDAPSearchAccess:
    """Make the grants of `provider_pk` exactly `body`'s (400 naming a user or group that does
    not exist); only what changes is written."""
    wanted_users = list(dict.fromkeys(body.users))
    wanted_groups = list(dict.fromkeys(body.groups))
    found_users = {r["pk"] for r in await crud.find_many(tx, users.TABLE, "pk", wanted_users)}
    for pk in wanted_users:
        if pk not in found_users:
            raise errors.ValidationFailed.one(
                "users", f'Invalid pk "{pk}" - object does not exist.'
            )
    await groups.existing(tx, wanted_groups, field="groups")
    current = await holders(tx, provider_pk)
    for column, have, want in (
        ("user_pk", current.users, wanted_users),
        ("group_pk", current.groups, wanted_groups),
    ):
        for value in set(have) - set(want):
            await crud.delete(tx, TABLE, provider=provider_pk, **{column: value})
        for value in [v for v in want if v not in set(have)]:
            await crud.insert(
                tx,
                TABLE,
                {
                    "pk": util.new_uuid(),
                    "provider": provider_pk,
                    column: value,
                    "created": util.now(),
                },
            )
    return await holders(tx, provider_pk)


async def may_search(
    tx: store.Tx,
    provider_pk: int,
    user: dict[str, Any],
    tree: groups.Tree | None = None,
    direct: list[str] | None = None,
) -> bool:
    """Whether `user` holds `search_full_directory` on the provider: a superuser, a grant to
    them, or a grant to one of their groups or those groups' ancestors. `tree` and `direct`
    (the user's own groups): when the caller has read them."""
    if tree is not None and direct is not None:
        if tree.any_superuser(direct):
            return True
    elif await users.is_superuser(tx, user["pk"]):
        return True
    rows = await crud.rows(tx, TABLE, [crud.Filter("provider", "eq", provider_pk)], limit=100_000)
    if any(r["user_pk"] == user["pk"] for r in rows):
        return True
    granted = {r["group_pk"] for r in rows if r["group_pk"] is not None}
    if not granted:
        return False
    tree = tree or await groups.Tree.load(tx)
    if direct is None:
        direct = (await crud.groups_of_users(tx, [user["pk"]]))[user["pk"]]
    return any(a in granted for g in direct for a in tree.ancestors(g))
