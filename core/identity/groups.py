"""Groups: nesting (parent) without cycles, superuser inheritance, membership."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tessera.core import errors, store, wire
from tessera.core.identity import util
from tessera.core.store import crud

TABLE = "groups"


@dataclass
class Tree:
    """Every group's parent, name and flags, loaded once per request."""

    rows: dict[str, dict[str, Any]]

    @classmethod
    async def load(cls, tx: store.Tx) -> Tree:
        return cls({r["pk"]: r for r in await crud.all_rows(tx, TABLE)})

    def ancestors(self, pk: str) -> list[str]:
        """`pk` and its ancestors, nearest first; stops on a cycle rather than looping."""
        seen: list[str] = []
        current: str | None = pk
        while current is not None and current in self.rows and current not in seen:
            seen.append(current)
            current = self.rows[current]["parent"]
        return seen

    def any_superuser(self, group_pks: list[str]) -> bool:
        return any(self.rows[a]["is_superuser"] for g in group_pks for a in self.ancestors(g))

    def brief(self, pk: str) -> wire.core.UserGroup:
        r = self.rows[pk]
        return wire.core.UserGroup.model_construct(
            pk=r["pk"],
            num_pk=r["num_pk"],
            name=r["name"],
            is_superuser=r["is_superuser"],
            parent=r["parent"],
            attributes=r["attributes"],
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


async def _check(tx: store.Tx, body: wire.core.GroupRequest, pk: str | None) -> str | None:
    clash = await crud.find(tx, TABLE, name=body.name)
    if clash is not None and clash["pk"] != pk:
        raise errors.ValidationFailed.one("name", "group with this name already exists.")
    if body.parent is None:
        return None
    parent = (await existing(tx, [body.parent], field="parent"))[0]
    if pk is not None and pk in (await Tree.load(tx)).ancestors(parent):
        raise errors.ValidationFailed.one("parent", "A group cannot be its own ancestor.")
    return parent


async def _users(tx: store.Tx, pks: list[int]) -> list[int]:
    found = {r["pk"] for r in await crud.find_many(tx, "users", "pk", pks)}
    for p in pks:
        if p not in found:
            raise errors.ValidationFailed.one("users", f'Invalid pk "{p}" - object does not exist.')
    return list(dict.fromkeys(pks))


async def create(tx: store.Tx, body: wire.core.GroupRequest) -> dict[str, Any]:
    parent = await _check(tx, body, None)
    users = await _users(tx, body.users)
    await crud.lock(tx, "groups.num_pk")  # max + 1 must not race between replicas
    num_pk = int(await crud.max_value(tx, TABLE, "num_pk") or 0) + 1
    values = body.model_dump(exclude={"users"}) | {"parent": parent}
    row = await crud.insert(tx, TABLE, {**values, "pk": util.new_uuid(), "num_pk": num_pk})
    await crud.set_members(tx, group_pk=row["pk"], others=users)
    return row


async def update(tx: store.Tx, row: dict[str, Any], body: wire.core.GroupRequest) -> dict[str, Any]:
    parent = await _check(tx, body, row["pk"])
    users = await _users(tx, body.users)
    values = body.model_dump(exclude={"users"}) | {"parent": parent}
    updated = await crud.update(tx, TABLE, {"pk": row["pk"]}, values)
    await crud.set_members(tx, group_pk=row["pk"], others=users)
    return updated


async def writable(tx: store.Tx, row: dict[str, Any]) -> dict[str, Any]:
    out = {k: row[k] for k in wire.core.GroupRequest.model_fields if k in row}
    out["users"] = (await crud.users_of_groups(tx, [row["pk"]]))[row["pk"]]
    return out


async def ensure(tx: store.Tx, name: str, *, is_superuser: bool) -> dict[str, Any]:
    row = await crud.find(tx, TABLE, name=name)
    if row is None:
        row = await create(tx, wire.core.GroupRequest(name=name, is_superuser=is_superuser))
    return row


async def serialize(tx: store.Tx, rows: list[dict[str, Any]]) -> list[wire.core.Group]:
    members = await crud.users_of_groups(tx, [r["pk"] for r in rows])
    parents = {
        r["pk"]: r
        for r in await crud.find_many(tx, TABLE, "pk", [r["parent"] for r in rows if r["parent"]])
    }
    return [
        wire.core.Group(
            pk=r["pk"],
            num_pk=r["num_pk"],
            name=r["name"],
            is_superuser=r["is_superuser"],
            parent=r["parent"],
            parent_name=parents[r["parent"]]["name"] if r["parent"] in parents else None,
            users=members[r["pk"]],
            attributes=r["attributes"],
        )
        for r in rows
    ]
