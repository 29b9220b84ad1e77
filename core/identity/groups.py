"""Groups: nesting (several parents, as in authentik) without cycles, superuser inheritance,
membership, and the API representation.

A group's ancestors are its parents, their parents, and so on; a member of a group is treated as
a member of every ancestor (superuser flag, policy group checks, claims). Writes refuse a parent
that would make a group its own ancestor, so the graph stays acyclic; readers still stop on a
cycle rather than loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tessera.core import crypto, errors, store, wire
from tessera.core.identity import people, util
from tessera.core.store import crud

TABLE = "groups"


@dataclass
class Tree:
    """Every group's row and parents, loaded once per request (or per definitions snapshot)."""

    rows: dict[str, dict[str, Any]]
    parents: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    async def load(cls, tx: store.Tx) -> Tree:
        rows = {r["pk"]: r for r in await crud.all_rows(tx, TABLE)}
        return cls(rows, await crud.group_links(tx, "group_pk"))

    def ancestors(self, pk: str) -> list[str]:
        """`pk` and its ancestors, nearest first, each once; stops on a cycle rather than
        looping."""
        seen: dict[str, None] = {}
        queue = [pk]
        while queue:
            current = queue.pop(0)
            if current in seen or current not in self.rows:
                continue
            seen[current] = None
            queue.extend(self.parents.get(current, ()))
        return list(seen)

    def any_superuser(self, group_pks: list[str]) -> bool:
        return any(self.rows[a]["is_superuser"] for g in group_pks for a in self.ancestors(g))

    def brief(self, pk: str) -> wire.core.PartialGroup:
        r = self.rows[pk]
        return wire.core.PartialGroup.model_construct(
            pk=r["pk"],
            num_pk=r["num_pk"],
            name=r["name"],
            is_superuser=r["is_superuser"],
            attributes=r["attributes"],
        )


def related(row: dict[str, Any]) -> wire.core.RelatedGroup:
    """authentik's `RelatedGroup` of a group row (a parent or a child)."""
    return wire.core.RelatedGroup.model_construct(
        pk=row["pk"],
        name=row["name"],
        is_superuser=row["is_superuser"],
        attributes=row["attributes"],
        group_uuid=row["pk"],
    )


async def existing(tx: store.Tx, pks: list[str], field: str) -> list[str]:
    """Canonical forms of `pks`; ValidationFailed on `field` when one does not exist."""
    canonical = [util.normalise_uuid(p) for p in pks]
    found = {r["pk"] for r in await crud.find_many(tx, TABLE, "pk", canonical)}
    missing = [p for p in canonical if p not in found]
    if missing:
        raise errors.ValidationFailed.one(
            field, f'Invalid pk "{missing[0]}" - object does not exist.'
        )
    return list(dict.fromkeys(canonical))


def no_roles(roles: list[str]) -> None:
    """Tessera has no roles yet: a role named in a request does not exist (authentik's answer
    for an unknown pk); the empty list is accepted."""
    if roles:
        raise errors.ValidationFailed.one(
            "roles", f'Invalid pk "{roles[0]}" - object does not exist.'
        )


async def _check(tx: store.Tx, body: wire.core.GroupRequest, pk: str | None) -> list[str]:
    """The body's parents, checked: they exist, and none has the group among its ancestors."""
    clash = await crud.find(tx, TABLE, name=body.name)
    if clash is not None and clash["pk"] != pk:
        raise errors.ValidationFailed.one("name", "group with this name already exists.")
    no_roles(body.roles)
    parents = await existing(tx, body.parents, field="parents")
    if pk is not None and parents:
        tree = await Tree.load(tx)
        if any(pk in tree.ancestors(p) for p in parents):
            raise errors.ValidationFailed.one("parents", "A group cannot be its own ancestor.")
    return parents


async def _users(tx: store.Tx, pks: list[int]) -> list[int]:
    found = {r["pk"] for r in await crud.find_many(tx, "users", "pk", pks)}
    for p in pks:
        if p not in found:
            raise errors.ValidationFailed.one("users", f'Invalid pk "{p}" - object does not exist.')
    return list(dict.fromkeys(pks))


_NOT_COLUMNS = {"users", "parents", "roles"}


async def create(tx: store.Tx, body: wire.core.GroupRequest) -> dict[str, Any]:
    parents = await _check(tx, body, None)
    users = await _users(tx, body.users)
    await crud.lock(tx, "groups.num_pk")  # max + 1 must not race between replicas
    num_pk = int(await crud.max_value(tx, TABLE, "num_pk") or 0) + 1
    values = body.model_dump(exclude=_NOT_COLUMNS)
    row = await crud.insert(tx, TABLE, {**values, "pk": util.new_uuid(), "num_pk": num_pk})
    await crud.set_parents(tx, row["pk"], parents)
    await crud.set_members(tx, group_pk=row["pk"], others=users)
    return row


async def update(tx: store.Tx, row: dict[str, Any], body: wire.core.GroupRequest) -> dict[str, Any]:
    # SECURITY: two concurrent writes could each add one half of a cycle; the lock serialises
    # the check and the write of parents between transactions.
    await crud.lock(tx, "groups.parents")
    parents = await _check(tx, body, row["pk"])
    users = await _users(tx, body.users)
    updated = await crud.update(tx, TABLE, {"pk": row["pk"]}, body.model_dump(exclude=_NOT_COLUMNS))
    await crud.set_parents(tx, row["pk"], parents)
    await crud.set_members(tx, group_pk=row["pk"], others=users)
    return updated


async def writable(tx: store.Tx, row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in wire.core.GroupRequest.model_fields if k in row}
    out["parents"] = (await crud.group_links(tx, "group_pk", [row["pk"]]))[row["pk"]]
    out["users"] = (await crud.users_of_groups(tx, [row["pk"]]))[row["pk"]]
    out["roles"] = []
    return out


async def ensure(tx: store.Tx, name: str, *, is_superuser: bool) -> dict[str, Any]:
    row = await crud.find(tx, TABLE, name=name)
    if row is None:
        row = await create(tx, wire.core.GroupRequest(name=name, is_superuser=is_superuser))
    return row


@dataclass(frozen=True)
class Include:
    """Which nested lists a listing carries (authentik's `include_*` query parameters): the
    members by default, parents and children when asked; the others are null."""

    users: bool = True
    parents: bool = False
    children: bool = False
    inherited_roles: bool = False


async def serialize(
    tx: store.Tx,
    keyring: crypto.Keyring,
    rows: list[dict[str, Any]],
    include: Include = Include(),
) -> list[wire.core.Group]:
    pks = [r["pk"] for r in rows]
    members = await crud.users_of_groups(tx, pks)
    parents = await crud.group_links(tx, "group_pk", pks)
    children = await crud.group_links(tx, "parent_pk", pks)
    related_pks = {p for r in rows for p in parents[r["pk"]] + children[r["pk"]]}
    by_pk = {g["pk"]: g for g in await crud.find_many(tx, TABLE, "pk", related_pks)}
    named: dict[int, wire.core.PartialUser] = {}
    if include.users:
        user_pks = {u for r in rows for u in members[r["pk"]]}
        named = {
            u["pk"]: people.partial(keyring, u)
            for u in await crud.find_many(tx, "users", "pk", user_pks)
        }

    def objs(pks: list[str], wanted: bool) -> list[wire.core.RelatedGroup] | None:
        return [related(by_pk[p]) for p in pks if p in by_pk] if wanted else None

    return [
        wire.core.Group.model_construct(
            pk=r["pk"],
            num_pk=r["num_pk"],
            name=r["name"],
            is_superuser=r["is_superuser"],
            parents=parents[r["pk"]],
            parents_obj=objs(parents[r["pk"]], include.parents),
            users=members[r["pk"]],
            users_obj=[named[u] for u in members[r["pk"]] if u in named] if include.users else None,
            attributes=r["attributes"],
            roles=[],
            roles_obj=[],
            inherited_roles_obj=[] if include.inherited_roles else None,
            children=children[r["pk"]],
            children_obj=objs(children[r["pk"]], include.children),
        )
        for r in rows
    ]
