"""Revision 0008 on data written at 0007, on SQLite and PostgreSQL: each group's `parent`
becomes its one parent link and the column goes, with memberships and bindings of groups kept
(SQLite rebuilds the table); users get `last_updated` and a `password_change_date`; going back
to 0007 gives each group its first parent again."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import migrationkit
import pytest
import sqlalchemy as sa

from tessera.core import config, store

JOINED = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
CHANGED = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
TOP, MID, LEAF = (f"00000000-0000-4000-8000-00000000000{i}" for i in (1, 2, 3))
# The tables as 0007 left them (tables.py describes the newest schema).
GROUPS = sa.table(
    "groups", *(sa.column(c) for c in ("pk", "num_pk", "name", "parent", "is_superuser")),
    sa.column("attributes", sa.JSON),
)  # fmt: skip
USERS = sa.table(
    "users",
    *(sa.column(c) for c in ("pk", "uuid", "username", "username_folded", "date_joined")),
    sa.column("password_change_date"),
    sa.column("attributes", sa.JSON),
)
MEMBERS = sa.table("group_members", sa.column("group_pk"), sa.column("user_pk"))


def _seed(connection: sa.Connection) -> None:
    for num, (pk, parent) in enumerate(((TOP, None), (MID, TOP), (LEAF, MID)), start=1):
        connection.execute(
            GROUPS.insert().values(
                pk=pk, num_pk=num, name=f"g{num}", parent=parent, is_superuser=num == 1,
                attributes={},
            )
        )  # fmt: skip
    for pk, changed in ((1, None), (2, CHANGED)):
        connection.execute(
            USERS.insert().values(
                pk=pk, uuid=f"00000000-0000-4000-8000-0000000001{pk:02d}", username=f"u{pk}",
                username_folded=f"u{pk}", date_joined=JOINED, password_change_date=changed,
                attributes={},
            )
        )  # fmt: skip
    connection.execute(MEMBERS.insert().values(group_pk=LEAF, user_pk=1))


def _read(connection: sa.Connection) -> dict[str, Any]:
    inspector = sa.inspect(connection)
    links = connection.execute(sa.text("SELECT group_pk, parent_pk FROM group_parents"))
    users = connection.execute(
        sa.text("SELECT pk, password_change_date, last_updated FROM users ORDER BY pk")
    )
    members = connection.execute(sa.text("SELECT group_pk, user_pk FROM group_members"))
    return {
        "columns": {c["name"] for c in inspector.get_columns("groups")},
        "links": sorted(tuple(r) for r in links.all()),
        "users": [tuple(r) for r in users.all()],
        "members": [tuple(r) for r in members.all()],
    }


def _parents(connection: sa.Connection) -> dict[str, str | None]:
    rows = connection.execute(sa.text("SELECT pk, parent FROM groups")).all()
    return {pk: parent for pk, parent in rows}


def _second_parent(connection: sa.Connection) -> None:
    connection.execute(
        sa.text("INSERT INTO group_parents (group_pk, parent_pk, position) VALUES (:g, :p, 1)"),
        {"g": LEAF, "p": TOP},
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def settings_0007(request: pytest.FixtureRequest, tmp_path: Path) -> config.Settings:
    return migrationkit.settings_on(request.param, tmp_path, request)


def _when(value: Any) -> dt.datetime:
    """A stored time as an aware UTC datetime (SQLite keeps text without a zone)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


async def test_0008_turns_each_parent_into_a_link_and_back(
    settings_0007: config.Settings,
) -> None:
    db = store.Store(settings_0007)
    await db.open()
    try:
        await migrationkit.run(db, migrationkit.to, "0007")
        await migrationkit.run(db, _seed)
        await migrationkit.run(db, migrationkit.to, "0008")
        after = await migrationkit.run(db, _read)
        await migrationkit.run(db, _second_parent)
        await migrationkit.run(db, migrationkit.back, "0007")
        parents = await migrationkit.run(db, _parents)
    finally:
        await db.close()
    assert "parent" not in after["columns"]
    assert after["links"] == sorted([(MID, TOP), (LEAF, MID)])
    assert after["members"] == [(LEAF, 1)]  # the rebuild of groups cascaded nothing
    (u1, joined1, updated1), (u2, changed2, updated2) = after["users"]
    assert _when(joined1) == JOINED and _when(updated1) == JOINED
    assert _when(changed2) == CHANGED and _when(updated2) == CHANGED
    # Back at 0007 a group with two parents keeps the first by pk.
    assert parents == {TOP: None, MID: TOP, LEAF: min(MID, TOP)}


async def test_0008_refuses_sqlite_with_foreign_keys_on(tmp_path: Path) -> None:
    """A rebuild of `groups` with foreign keys enforced would delete every membership: the
    migration stops instead."""
    settings = config.load(data_dir=tmp_path, secret_key="k" * 40)
    db = store.Store(settings)
    await db.open()
    try:
        await migrationkit.run(db, migrationkit.to, "0007")
        engine = db.engine
        assert isinstance(engine, sa.Engine)
        # The store's own engine: foreign keys on.
        with engine.begin() as connection, pytest.raises(RuntimeError, match="foreign keys off"):
            migrationkit.to(connection, "0008")
    finally:
        await db.close()
