"""Revision 0017 on a database at 0016, on SQLite and PostgreSQL: the mail outbox appears as
`store.tables` declares it (columns, key, indexes) and holds a queued mail; back at 0016 it is
gone, and up again it returns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import migrationkit
import pytest

from tessera.core import config, crypto, mail, store
from tessera.core.mail import outbox
from tessera.core.store import crud

NEW = ("mail_outbox",)


@pytest.fixture(params=["sqlite", "postgresql"])
def settings_0016(request: pytest.FixtureRequest, tmp_path: Path) -> config.Settings:
    return migrationkit.settings_on(request.param, tmp_path, request)


async def test_0017_creates_the_mail_outbox_as_declared(settings_0016: config.Settings) -> None:
    keyring = crypto.Keyring("k" * 40)

    async def exercise(db: store.Store) -> dict[str, Any]:
        msg = mail.message("a@example.com", "b@example.com", "Hi", "text", "<p>html</p>")
        async with db.transaction() as tx:
            pk = await outbox.enqueue(tx, keyring, msg, origin={"user": None})
        async with db.read() as tx:
            row = await crud.get(tx, outbox.TABLE, pk=pk)
        return {"status": row["status"], "body": outbox.opened(keyring, row)["Subject"]}

    outcome = await migrationkit.new_tables(settings_0016, "0016", "0017", NEW, exercise)
    assert outcome["before"] == set()
    assert outcome["differences"] == []
    assert outcome["after"] == {"status": "queued", "body": "Hi"}
    assert outcome["gone"] == set()
    assert outcome["again"] == set(NEW)
