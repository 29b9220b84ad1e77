"""Generic row operations over the tables of `tables.py`, for the layers above the store.

Rows go in and come out as plain dicts. Listing takes a `Query` (filters, search, ordering,
window) built by the API from validated query parameters; column names in it have already been
checked against the resource's allow-list, and are checked again here. Integrity violations
become `errors.Conflict` or `errors.NotFound` so that the API can name the field.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import sqlalchemy as sa

from tessera.core import errors
from tessera.core.store import sqlite, tables

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

Op = Literal["eq", "ieq", "ne", "in", "icontains", "startswith", "gt", "gte", "lt", "lte", "isnull"]


# PostgreSQL's asyncpg connection, or the embedded SQLite connection used on the loop; both
# offer awaitable `execute`, `scalar` and `begin_nested`.
Connection: TypeAlias = "AsyncConnection | sqlite.LoopConnection"


@dataclass(frozen=True)
class Tx:
    """An open transaction; opaque to the layers above."""

    conn: Connection
    dialect: str
    written: set[str] = field(default_factory=set)  # tables this transaction changed
    # What the transaction tells the store's commit listeners once it has committed, by topic
    # (`identity.sessions.ENDED`: the digests of the sessions it deleted).
    announced: dict[str, set[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Filter:
    column: str
    op: Op
    value: Any


@dataclass(frozen=True)
class Member:
    """Rows related through group membership: users in groups, or groups of users."""

    by: Literal["group_pk", "group_name", "user_pk", "username"]
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Lookup:
    """A filter value naming rows of another table: `Filter(column, "in", Lookup(...))` keeps
    the rows whose `column` is the `key` of a row of `table` whose `where` equals `value`
    (e.g. invitations by their creator's username)."""

    table: str
    key: str
    where: str
    value: Any


@dataclass
class Query:
    filters: list[Filter] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)
    search: str = ""
    search_columns: tuple[str, ...] = ()
    ordering: tuple[str, ...] = ()
    offset: int = 0
    limit: int = 20


def table(name: str) -> sa.Table:
    try:
        return tables.metadata.tables[name]
    except KeyError:
        raise ValueError(f"no table {name!r}") from None


def _col(t: sa.Table, name: str) -> sa.Column[Any]:
    if name not in t.c:
        raise ValueError(f"table {t.name} has no column {name!r}")
    return t.c[name]


def _where(t: sa.Table, where: Mapping[str, Any]) -> list[sa.ColumnElement[bool]]:
    return [_col(t, k) == v for k, v in where.items()]


# Statements built once per shape and executed with bound parameters: building and keying a
# statement costs more than running a primary-key lookup, and these run on every request. The
# embedded SQLite engine runs them on its prepared path (`sqlite.Prepared`).
_PREPARED = {sqlite.PREPARED: True}


@functools.lru_cache(maxsize=1024)
def _select_by(table_name: str, keys: tuple[str, ...]) -> sa.Select[Any]:
    t = table(table_name)
    stmt = sa.select(t).where(*(_col(t, k) == sa.bindparam(f"w_{k}") for k in keys))
    return stmt.execution_options(**_PREPARED)


@functools.lru_cache(maxsize=1024)
def _insert_into(table_name: str, columns: tuple[str, ...], returning: bool = True) -> sa.Insert:
    t = table(table_name)
    stmt = sa.insert(t).values({_col(t, c): sa.bindparam(f"v_{c}") for c in columns})
    return (stmt.returning(*t.c) if returning else stmt).execution_options(**_PREPARED)


@functools.lru_cache(maxsize=1024)
def _update_by(table_name: str, keys: tuple[str, ...], columns: tuple[str, ...]) -> sa.Update:
    t = table(table_name)
    return (
        sa.update(t)
        .where(*(_col(t, k) == sa.bindparam(f"w_{k}") for k in keys))
        .values({_col(t, c): sa.bindparam(f"v_{c}") for c in columns})
        .returning(*t.c)
        .execution_options(**_PREPARED)
    )


def _bound(where: Mapping[str, Any]) -> bool:
    """Whether `where` can use a prepared statement (`= NULL` would never match)."""
    return all(v is not None for v in where.values())


def _apply(t: sa.Table, f: Filter) -> sa.ColumnElement[bool]:
    c = _col(t, f.column)
    value: object = f.value  # typed as object so the comparison operators keep their types
    match f.op:
        case "eq":
            return c == value
        case "ieq":
            return sa.func.lower(c) == str(f.value).lower()
        case "ne":
            return c != value
        case "in":
            if isinstance(f.value, Lookup):
                other = table(f.value.table)
                match = _col(other, f.value.where) == f.value.value
                return c.in_(sa.select(_col(other, f.value.key)).where(match))
            return c.in_(list(f.value))
        case "icontains":
            return sa.func.lower(c).contains(str(f.value).lower(), autoescape=True)
        case "startswith":
            return c.startswith(str(f.value), autoescape=True)
        case "gt":
            return c > value
        case "gte":
            return c >= value
        case "lt":
            return c < value
        case "lte":
            return c <= value
        case "isnull":
            return c.is_(None) if f.value else c.is_not(None)
    raise ValueError(f"unknown filter op {f.op!r}")


def _member(t: sa.Table, m: Member) -> sa.ColumnElement[bool]:
    gm, g, u = tables.group_members, tables.groups, tables.users
    if m.by == "group_pk":
        sub = sa.select(gm.c.user_pk).where(gm.c.group_pk.in_(m.values))
        return t.c.pk.in_(sub)
    if m.by == "group_name":
        sub = sa.select(gm.c.user_pk).join(g, g.c.pk == gm.c.group_pk).where(g.c.name.in_(m.values))
        return t.c.pk.in_(sub)
    if m.by == "user_pk":
        return t.c.pk.in_(sa.select(gm.c.group_pk).where(gm.c.user_pk.in_(m.values)))
    sub = sa.select(gm.c.group_pk).join(u, u.c.pk == gm.c.user_pk).where(u.c.username.in_(m.values))
    return t.c.pk.in_(sub)


def _conditions(t: sa.Table, q: Query) -> list[sa.ColumnElement[bool]]:
    conds = [_apply(t, f) for f in q.filters] + [_member(t, m) for m in q.members]
    if q.search and q.search_columns:
        needle = q.search.lower()
        conds.append(
            sa.or_(
                *(
                    sa.func.lower(_col(t, c)).contains(needle, autoescape=True)
                    for c in q.search_columns
                )
            )
        )
    return conds


async def page(tx: Tx, table_name: str, q: Query) -> tuple[list[dict[str, Any]], int]:
    """One page of rows matching `q`, and the count of all matching rows."""
    t = table(table_name)
    conds = _conditions(t, q)
    count = await tx.conn.scalar(sa.select(sa.func.count()).select_from(t).where(*conds))
    order = [_col(t, o[1:]).desc() if o.startswith("-") else _col(t, o).asc() for o in q.ordering]
    order.append(t.primary_key.columns.values()[0].asc())  # a stable order between pages
    stmt = sa.select(t).where(*conds).order_by(*order).offset(q.offset).limit(q.limit)
    rows = (await tx.conn.execute(stmt)).mappings().all()
    return [dict(r) for r in rows], int(count or 0)


async def rows(
    tx: Tx,
    table_name: str,
    filters: Sequence[Filter],
    ordering: Sequence[str] = (),
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Matching rows without counting them (the listing's `page` also counts)."""
    columns = tuple(f.column for f in filters)
    if all(f.op == "eq" and f.value is not None for f in filters) and len(set(columns)) == len(
        columns
    ):  # equality only: a prepared statement, as for `find`
        stmt = _select_where(table_name, columns, tuple(ordering), limit)
        params = {f"w_{f.column}": f.value for f in filters}
        return [dict(r) for r in (await tx.conn.execute(stmt, params)).mappings().all()]
    t = table(table_name)
    stmt = sa.select(t).where(*(_apply(t, f) for f in filters)).order_by(*_order(t, ordering))
    return [dict(r) for r in (await tx.conn.execute(stmt.limit(limit))).mappings().all()]


def _order(t: sa.Table, ordering: Sequence[str]) -> list[sa.UnaryExpression[Any]]:
    return [_col(t, o[1:]).desc() if o.startswith("-") else _col(t, o).asc() for o in ordering]


@functools.lru_cache(maxsize=1024)
def _select_where(
    table_name: str, keys: tuple[str, ...], ordering: tuple[str, ...], limit: int
) -> sa.Select[Any]:
    t = table(table_name)
    stmt = sa.select(t).where(*(_col(t, k) == sa.bindparam(f"w_{k}") for k in keys))
    return stmt.order_by(*_order(t, ordering)).limit(limit).execution_options(**_PREPARED)


async def all_rows(tx: Tx, table_name: str) -> list[dict[str, Any]]:
    t = table(table_name)
    return [dict(r) for r in (await tx.conn.execute(sa.select(t))).mappings().all()]


async def find(tx: Tx, table_name: str, **where: Any) -> dict[str, Any] | None:
    if _bound(where):
        stmt = _select_by(table_name, tuple(where))
        params = {f"w_{k}": v for k, v in where.items()}
        row = (await tx.conn.execute(stmt, params)).mappings().first()
    else:
        t = table(table_name)
        row = (await tx.conn.execute(sa.select(t).where(*_where(t, where)))).mappings().first()
    return dict(row) if row is not None else None


async def get(tx: Tx, table_name: str, **where: Any) -> dict[str, Any]:
    row = await find(tx, table_name, **where)
    if row is None:
        raise errors.NotFound(f"{table_name}: no such object")
    return row


async def find_many(
    tx: Tx, table_name: str, column: str, values: Iterable[Any]
) -> list[dict[str, Any]]:
    t = table(table_name)
    stmt = sa.select(t).where(_col(t, column).in_(list(values)))
    return [dict(r) for r in (await tx.conn.execute(stmt)).mappings().all()]


async def exists(tx: Tx, table_name: str, **where: Any) -> bool:
    t = table(table_name)
    stmt = sa.select(sa.literal(1)).select_from(t).where(*_where(t, where)).limit(1)
    return (await tx.conn.scalar(stmt)) is not None


async def insert(
    tx: Tx, table_name: str, values: Mapping[str, Any], *, recoverable: bool = True
) -> dict[str, Any]:
    """Insert a row; an integrity error becomes a field error. With `recoverable` (the default)
    the row is written under a savepoint, so the transaction stays usable after that error;
    writers that never continue after one (audit events, new sessions) skip the savepoint."""
    t = table(table_name)
    tx.written.add(table_name)
    stmt = _insert_into(table_name, tuple(values))  # checks the column names
    params = {f"v_{c}": v for c, v in values.items()}
    try:
        async with tx.conn.begin_nested() if recoverable else contextlib.nullcontext():
            result = await tx.conn.execute(stmt, params)
            return dict(result.mappings().one())
    except sa.exc.IntegrityError as exc:
        raise _integrity(t, exc) from None


async def append(tx: Tx, table_name: str, values: Mapping[str, Any]) -> None:
    """Insert a row that nobody reads back at once (an audit event, a new session) without a
    savepoint or RETURNING; an integrity error still becomes a field error."""
    t = table(table_name)
    tx.written.add(table_name)
    stmt = _insert_into(table_name, tuple(values), returning=False)  # checks the column names
    try:
        await tx.conn.execute(stmt, {f"v_{c}": v for c, v in values.items()})
    except sa.exc.IntegrityError as exc:
        raise _integrity(t, exc) from None


async def update(
    tx: Tx,
    table_name: str,
    where: Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    recoverable: bool = True,
) -> dict[str, Any]:
    """Update the row matching `where` (NotFound when none); `recoverable` as for `insert`."""
    t = table(table_name)
    tx.written.add(table_name)
    if _bound(where):
        stmt = _update_by(table_name, tuple(where), tuple(values))
        params = {f"w_{k}": v for k, v in where.items()} | {f"v_{c}": v for c, v in values.items()}
    else:
        stmt = sa.update(t).where(*_where(t, where)).values(**values).returning(*t.c)
        params = {}
    try:
        async with tx.conn.begin_nested() if recoverable else contextlib.nullcontext():
            row = (await tx.conn.execute(stmt, params)).mappings().first()
    except sa.exc.IntegrityError as exc:
        raise _integrity(t, exc) from None
    if row is None:
        raise errors.NotFound(f"{table_name}: no such object")
    return dict(row)


async def delete(tx: Tx, table_name: str, **where: Any) -> int:
    t = table(table_name)
    tx.written.add(table_name)
    result = await tx.conn.execute(sa.delete(t).where(*_where(t, where)))
    return int(result.rowcount or 0)


async def delete_matching(
    tx: Tx, table_name: str, filters: Sequence[Filter], limit: int | None = None
) -> int:
    """Delete the matching rows, or at most `limit` of them (by primary key), and count them."""
    t = table(table_name)
    tx.written.add(table_name)
    where = [_apply(t, f) for f in filters]
    if limit is not None:
        keys = list(t.primary_key.columns)
        chosen = sa.select(*keys).where(*where).limit(limit)
        where = [(keys[0] if len(keys) == 1 else sa.tuple_(*keys)).in_(chosen)]
    result = await tx.conn.execute(sa.delete(t).where(*where))
    return int(result.rowcount or 0)


async def max_value(tx: Tx, table_name: str, column: str) -> Any:
    t = table(table_name)
    return await tx.conn.scalar(sa.select(sa.func.max(_col(t, column))))


# Group membership ----------------------------------------------------------------------------


async def groups_of_users(tx: Tx, user_pks: Sequence[int]) -> dict[int, list[str]]:
    gm = tables.group_members
    out: dict[int, list[str]] = {pk: [] for pk in user_pks}
    if user_pks:
        stmt = sa.select(gm.c.user_pk, gm.c.group_pk).where(gm.c.user_pk.in_(list(user_pks)))
        for user_pk, group_pk in (await tx.conn.execute(stmt.order_by(gm.c.group_pk))).all():
            out[user_pk].append(group_pk)
    return out


async def users_of_groups(tx: Tx, group_pks: Sequence[str]) -> dict[str, list[int]]:
    gm = tables.group_members
    out: dict[str, list[int]] = {pk: [] for pk in group_pks}
    if group_pks:
        stmt = sa.select(gm.c.group_pk, gm.c.user_pk).where(gm.c.group_pk.in_(list(group_pks)))
        for group_pk, user_pk in (await tx.conn.execute(stmt.order_by(gm.c.user_pk))).all():
            out[group_pk].append(user_pk)
    return out


async def in_superuser_group(tx: Tx, user_pk: int) -> bool:
    """True when a group of the user, or an ancestor of one, is a superuser group.

    One recursive query; UNION (not UNION ALL) ends the walk on a cycle.
    """
    return (await tx.conn.scalar(_SUPERUSER_QUERY, {"user_pk": user_pk})) is not None


def _superuser_query() -> sa.Select[tuple[int]]:
    gm, g, gp = tables.group_members, tables.groups, tables.group_parents
    start = sa.select(gm.c.group_pk.label("pk")).where(gm.c.user_pk == sa.bindparam("user_pk"))
    tree = start.cte("ancestors", recursive=True)
    step = sa.select(gp.c.parent_pk).join(tree, gp.c.group_pk == tree.c.pk)
    tree = tree.union(step)
    member = g.c.pk.in_(sa.select(tree.c.pk))
    return sa.select(sa.literal(1)).where(member, g.c.is_superuser.is_(True)).limit(1)


_SUPERUSER_QUERY = _superuser_query()  # built once: it runs on every authenticated request


async def set_members(
    tx: Tx, *, user_pk: int | None = None, group_pk: str | None = None, others: Sequence[Any]
) -> None:
    """Replace the groups of a user (or the users of a group) with `others`."""
    gm = tables.group_members
    tx.written.add("group_members")
    if user_pk is not None:
        await tx.conn.execute(sa.delete(gm).where(gm.c.user_pk == user_pk))
        rows = [{"user_pk": user_pk, "group_pk": g} for g in dict.fromkeys(others)]
    else:
        await tx.conn.execute(sa.delete(gm).where(gm.c.group_pk == group_pk))
        rows = [{"group_pk": group_pk, "user_pk": u} for u in dict.fromkeys(others)]
    if rows:
        await tx.conn.execute(sa.insert(gm), rows)


async def add_member(tx: Tx, *, user_pk: int, group_pk: str) -> None:
    if not await exists(tx, "group_members", user_pk=user_pk, group_pk=group_pk):
        tx.written.add("group_members")
        await tx.conn.execute(
            sa.insert(tables.group_members).values(user_pk=user_pk, group_pk=group_pk)
        )


async def remove_member(tx: Tx, *, user_pk: int, group_pk: str) -> None:
    await delete(tx, "group_members", user_pk=user_pk, group_pk=group_pk)


# Group parents -------------------------------------------------------------------------------


async def group_links(
    tx: Tx, by: Literal["group_pk", "parent_pk"], pks: Sequence[str] | None = None
) -> dict[str, list[str]]:
    """Parent links keyed by `by`: each group's parents (`group_pk`) or children (`parent_pk`),
    of the groups `pks` (every group's when None)."""
    gp = tables.group_parents
    key, other = (
        (gp.c.group_pk, gp.c.parent_pk) if by == "group_pk" else (gp.c.parent_pk, gp.c.group_pk)
    )
    out: dict[str, list[str]] = {pk: [] for pk in pks or ()}
    order = (gp.c.position, other) if by == "group_pk" else (other,)
    stmt = sa.select(key, other).order_by(key, *order)
    if pks is not None:
        if not pks:
            return out
        stmt = stmt.where(key.in_(list(pks)))
    for pk, linked in (await tx.conn.execute(stmt)).all():
        out.setdefault(pk, []).append(linked)
    return out


async def set_parents(tx: Tx, group_pk: str, parents: Sequence[str]) -> None:
    """Replace the parents of a group (cycles are the caller's to refuse)."""
    gp = tables.group_parents
    tx.written.add("group_parents")
    await tx.conn.execute(sa.delete(gp).where(gp.c.group_pk == group_pk))
    rows = [
        {"group_pk": group_pk, "parent_pk": p, "position": i}
        for i, p in enumerate(dict.fromkeys(parents))
    ]
    if rows:
        await tx.conn.execute(sa.insert(gp), rows)


async def lock(tx: Tx, name: str) -> None:
    """Serialise transactions that take the same named lock (released at commit or rollback).

    PostgreSQL: a transaction-scoped advisory lock. SQLite: write transactions already hold the
    database's write lock from BEGIN IMMEDIATE, which serialises them across processes.
    """
    if tx.dialect == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        await tx.conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


# Leases --------------------------------------------------------------------------------------


async def take_lease(tx: Tx, name: str, holder: str, now: dt.datetime, ttl: dt.timedelta) -> bool:
    """Take or renew the lease `name` for `holder` unless another holder's lease is current."""
    t = tables.leases
    stmt = (
        sa.update(t)
        .where(t.c.name == name, sa.or_(t.c.holder == holder, t.c.expires < now))
        .values(holder=holder, expires=now + ttl)
    )
    if (await tx.conn.execute(stmt)).rowcount:
        return True
    try:
        async with tx.conn.begin_nested():
            await tx.conn.execute(sa.insert(t).values(name=name, holder=holder, expires=now + ttl))
    except sa.exc.IntegrityError:
        return False
    return True


# Integrity errors ----------------------------------------------------------------------------


def _integrity(t: sa.Table, exc: sa.exc.IntegrityError) -> errors.TesseraError:
    text = str(exc.orig).lower()
    if "foreign key" in text:
        for fk in t.foreign_keys:
            if fk.parent.name in text:
                return errors.NotFound(fk.parent.name)
        return errors.NotFound("reference")
    for column in sorted(t.c, key=lambda c: len(c.name), reverse=True):
        if column.name in text:
            name = column.name.removesuffix("_folded")
            return errors.Conflict(name, f"{t.name} with this {name} already exists.")
    return errors.Conflict("non_field_errors", f"{t.name}: a uniqueness rule was violated")
