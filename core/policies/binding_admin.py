"""Policy bindings as the admin API sees them: existing targets and subjects, one subject each
(an update that names none keeps the stored one). Bindings never expire: `expires` and
`expiring` carry authentik's values for that.

Called by the API's `/policies/bindings/` resource, and by the flow and stage rules when they
delete a binding target (a target is not a foreign key: it may be a flow, a flow-stage binding or
an application, so its bindings are removed here).
"""

from __future__ import annotations

from typing import Any

from tessera.core import crypto, errors, store, wire
from tessera.core.identity import users, util
from tessera.core.policies import admin
from tessera.core.store import crud

TABLE = "policy_bindings"
TARGETS = ("flows", "flow_stage_bindings", "applications")
UNIQUE = "The fields policy, target, order must make a unique set."


def _missing(field: str, value: object) -> errors.ValidationFailed:
    return errors.ValidationFailed.one(field, f'Invalid pk "{value}" - object does not exist.')


async def _target(tx: store.Tx, target: str) -> str:
    pk = util.normalise_uuid(target)
    for table in TARGETS:
        if await crud.exists(tx, table, pk=pk):
            return pk
    raise _missing("target", target)


async def _subject(tx: store.Tx, body: wire.policies.PolicyBindingRequest) -> dict[str, Any]:
    """`policy`, `group` and `user` as stored; the one that is set must exist."""
    out: dict[str, Any] = {"policy": None, "group": None, "user": body.user}
    for field, table in (("policy", "policies"), ("group", "groups")):
        value = getattr(body, field)
        if value is not None:
            out[field] = util.normalise_uuid(value)
            if not await crud.exists(tx, table, pk=out[field]):
                raise _missing(field, value)
    if body.user is not None and not await crud.exists(tx, "users", pk=body.user):
        raise _missing("user", body.user)
    return out


def _kept_subject(
    body: wire.policies.PolicyBindingRequest, row: dict[str, Any] | None
) -> wire.policies.PolicyBindingRequest:
    """`body`, with the stored subject when it names none (an update); a new binding needs one."""
    if any(v is not None for v in body.subject().values()):
        return body
    if row is None:
        raise errors.ValidationFailed.one("non_field_errors", wire.policies.NO_SUBJECT)
    return body.model_copy(update={k: row[k] for k in body.subject()})


async def _values(
    tx: store.Tx, body: wire.policies.PolicyBindingRequest, row: dict[str, Any] | None
) -> dict[str, Any]:
    body = _kept_subject(body, row)
    pk = row["pk"] if row else None
    values = body.model_dump() | {"target": await _target(tx, body.target)}
    values |= await _subject(tx, body)
    if values["policy"] is not None:
        await crud.lock(tx, TABLE)  # the check below must not race between replicas
        same = await crud.find(
            tx, TABLE, policy=values["policy"], target=values["target"], order=values["order"]
        )
        if same is not None and same["pk"] != pk:
            raise errors.ValidationFailed.one("non_field_errors", UNIQUE)
    return values


async def create(tx: store.Tx, body: wire.policies.PolicyBindingRequest) -> dict[str, Any]:
    values = await _values(tx, body, None)
    return await crud.insert(tx, TABLE, {**values, "pk": util.new_uuid()})


async def update(
    tx: store.Tx, row: dict[str, Any], body: wire.policies.PolicyBindingRequest
) -> dict[str, Any]:
    return await crud.update(tx, TABLE, {"pk": row["pk"]}, await _values(tx, body, row))


def writable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in wire.policies.PolicyBindingRequest.model_fields}


async def unbind(tx: store.Tx, targets: list[str]) -> None:
    """Remove the bindings of `targets` (objects being deleted)."""
    if targets:
        await crud.delete_matching(tx, TABLE, [crud.Filter("target", "in", targets)])


def _group(row: dict[str, Any]) -> wire.core.PartialGroup:
    return wire.core.PartialGroup.model_construct(
        pk=row["pk"],
        num_pk=row["num_pk"],
        name=row["name"],
        is_superuser=row["is_superuser"],
        attributes=row["attributes"],
    )


async def serialize(
    tx: store.Tx, keyring: crypto.Keyring, rows: list[dict[str, Any]]
) -> list[wire.policies.PolicyBinding]:
    policy_rows = await crud.find_many(tx, "policies", "pk", {r["policy"] for r in rows} - {None})
    policies = {p.pk: p for p in await admin.serialize(tx, policy_rows)}
    group_rows = await crud.find_many(tx, "groups", "pk", {r["group"] for r in rows} - {None})
    found = {g["pk"]: _group(g) for g in group_rows}
    user_rows = await crud.find_many(tx, "users", "pk", {r["user"] for r in rows} - {None})
    people = {u["pk"]: users.partial(keyring, u) for u in user_rows}
    return [
        wire.policies.PolicyBinding.model_construct(
            **writable(r),
            pk=r["pk"],
            policy_obj=policies.get(r["policy"]),
            group_obj=found.get(r["group"]),
            user_obj=people.get(r["user"]),
            expires=None,
            expiring=False,
        )
        for r in rows
    ]
