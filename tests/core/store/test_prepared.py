"""crud's cached statements (lookups, inserts, updates) run on SQLite's prepared path, straight on
the driver: rows must come back exactly as SQLAlchemy's own execution gives them, on both
backends, and errors must keep their meaning."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

import pytest
import sqlalchemy as sa

from tessera.core import errors, store
from tessera.core.store import crud, sqlite

NOW = dt.datetime(2026, 11, 29, 4, 30, 15, 123456, tzinfo=dt.UTC)


def _user(name: str) -> dict[str, object]:
    return {
        "uuid": str(uuid.uuid4()),
        "username": name,
        "username_folded": name.casefold(),
        "attributes": {"nested": {"list": [1, "two", None]}, "flag": True},
        "date_joined": NOW,
        "is_active": False,
    }


async def _general(tx: store.Tx, table_name: str, **where: object) -> dict[str, object]:
    """The same row through SQLAlchemy's general path (a statement built on the spot)."""
    t = crud.table(table_name)
    stmt = sa.select(t).where(*(t.c[k] == v for k, v in where.items()))
    row = (await tx.conn.execute(stmt)).mappings().one()
    return dict(row)


async def test_rows_come_back_as_sqlalchemy_gives_them(db: store.Store) -> None:
    async with db.transaction() as tx:
        inserted = await crud.insert(tx, "users", _user("Typed"))
        event = await crud.insert(
            tx,
            "events",
            {
                "pk": str(uuid.uuid4()),
                "action": "login",
                "app": "tests",
                "user": {"pk": inserted["pk"], "username": "Typed"},
                "context": {"k": [1, 2.5, "x"], "empty": {}},
                "client_ip": None,
                "created": NOW,
                "expires": NOW + dt.timedelta(days=1),
            },
            recoverable=False,
        )
    async with db.read() as tx:
        found = await crud.find(tx, "users", pk=inserted["pk"])
        listed = await crud.rows(tx, "users", [crud.Filter("username", "eq", "Typed")])
        general = await _general(tx, "users", pk=inserted["pk"])
        event_found = await crud.find(tx, "events", pk=event["pk"])
        event_general = await _general(tx, "events", pk=event["pk"])
    assert found == general == listed[0] == inserted
    assert found["date_joined"] == NOW and found["date_joined"].tzinfo is dt.UTC
    assert found["is_active"] is False and found["attributes"]["flag"] is True
    assert event_found == event_general == event
    assert event_found["client_ip"] is None


async def test_updates_return_the_row_and_convert_values(db: store.Store) -> None:
    async with db.transaction() as tx:
        row = await crud.insert(tx, "users", _user("changing"))
        later = NOW + dt.timedelta(hours=3)
        updated = await crud.update(
            tx, "users", {"pk": row["pk"]}, {"last_login": later, "is_active": True}
        )
    assert updated["last_login"] == later and updated["is_active"] is True
    async with db.read() as tx:
        assert await _general(tx, "users", pk=row["pk"]) == updated


async def test_a_duplicate_is_still_a_conflict_and_the_transaction_goes_on(
    db: store.Store,
) -> None:
    async with db.transaction() as tx:
        await crud.insert(tx, "users", _user("twice"))
        with pytest.raises(errors.Conflict):
            await crud.insert(tx, "users", _user("twice"))
        await crud.insert(tx, "users", _user("after"))  # the savepoint kept the rest
    async with db.read() as tx:
        names = {r["username"] for r in await crud.all_rows(tx, "users")}
    assert names == {"twice", "after"}


async def test_an_unknown_column_is_refused_before_any_sql(db: store.Store) -> None:
    async with db.transaction() as tx:
        with pytest.raises(ValueError, match="no column"):
            await crud.insert(tx, "users", {**_user("x"), "is_superuser; --": True})


async def test_an_error_never_carries_the_bound_values(db: store.Store) -> None:
    """Neither path puts parameters (a password hash, a sealed secret) into error messages,
    which end up in logs."""
    secret = "canary-" + uuid.uuid4().hex
    values = {**_user("dup"), "password": secret}
    async with db.transaction() as tx:
        await crud.insert(tx, "users", values)
    prepared = crud._insert_into("users", tuple(values))
    general = sa.insert(crud.table("users")).values(values)
    for stmt, params in ((prepared, {f"v_{k}": v for k, v in values.items()}), (general, None)):
        with pytest.raises(sa.exc.IntegrityError) as caught:
            async with db.transaction() as tx:
                await tx.conn.execute(stmt, params)
        assert secret not in str(caught.value)


async def test_a_connection_left_mid_transaction_is_rolled_back_before_reuse(
    db: store.Store, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite's own connection pool")
    pool = db._sqlite
    assert pool is not None
    async with pool.connect() as conn:
        conn.begin()
        conn.exec_driver_sql(
            "INSERT INTO groups (pk, num_pk, name, attributes) VALUES ('g', 1, 'g', '{}')"
        )
    # Returned without a commit: the next user finds no half-written row, and the write lock
    # is free at once for the next writer.
    started = time.monotonic()
    async with db.transaction() as tx:
        assert await crud.find(tx, "groups", pk="g") is None
        await crud.insert(tx, "groups", {"pk": "h", "num_pk": 2, "name": "h", "attributes": {}})
    assert time.monotonic() - started < sqlite.WRITE_LOCK_TIMEOUT / 2


async def test_a_missing_parameter_is_refused_not_bound_as_null(
    db: store.Store, backend: str
) -> None:
    stmt = crud._select_by("users", ("username",))
    with pytest.raises(sa.exc.SQLAlchemyError, match="value is required"):
        async with db.read() as tx:
            await tx.conn.execute(stmt, {"w_other": "x"})


async def test_a_write_transaction_inside_another_is_refused_not_left_waiting(
    db: store.Store,
) -> None:
    """On SQLite the inner transaction would wait for ever for the lock the outer one holds."""
    async with db.transaction() as tx:
        await crud.insert(tx, "groups", {"pk": "o", "num_pk": 1, "name": "o", "attributes": {}})
        with pytest.raises(RuntimeError, match="inside another"):
            async with db.transaction():
                pass

    async def elsewhere() -> None:  # another task may write once the first has committed
        async with db.transaction() as inner:
            await crud.insert(
                inner, "groups", {"pk": "t", "num_pk": 2, "name": "t", "attributes": {}}
            )

    async with db.transaction() as tx:
        task = asyncio.create_task(elsewhere())
    await asyncio.wait_for(task, 5)
    async with db.read() as tx:
        assert {r["pk"] for r in await crud.all_rows(tx, "groups")} == {"o", "t"}


async def test_a_broken_connection_is_dropped_and_its_slot_given_back(
    db: store.Store, backend: str
) -> None:
    if backend != "sqlite":
        pytest.skip("SQLite's own connection pool")
    for _ in range(sqlite.POOL_SIZE + 1):  # more than the pool holds: no slot may leak
        with pytest.raises(sa.exc.DBAPIError):
            async with db.read() as tx:
                tx.conn.sync.connection.dbapi_connection.close()  # type: ignore[union-attr]
                await crud.find(tx, "users", pk=1)
    async with asyncio.timeout(5), db.read() as tx:
        assert await crud.find(tx, "users", pk=1) is None
    async with asyncio.timeout(5), db.transaction() as tx:
        await crud.insert(tx, "groups", {"pk": "b", "num_pk": 1, "name": "b", "attributes": {}})
