"""A chunk of entries is written in one transaction without savepoints; when one entry fails
anyway (a name taken between the check and the write), that attempt is rolled back and the
chunk written again with a savepoint per entry: the others are written once, the failing one is
skipped and reported."""

from __future__ import annotations

from typing import Any

import pytest

from tessera.core import store
from tessera.core.identity import util
from tessera.core.sources.ldap import client, sync
from tessera.core.store import crud


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
async def test_a_failing_entry_rolls_the_chunk_back_and_is_skipped_on_the_retry(
    db: store.Store,
) -> None:
    async with db.transaction() as tx:
        await crud.insert(
            tx, "groups", {"pk": util.new_uuid(), "num_pk": 1, "name": "taken", "attributes": {}}
        )
    attempts: list[bool] = []

    async def load(tx: store.Tx) -> sync.Known:
        return sync.Known({}, {}, {})

    async def write(
        tx: store.Tx,
        job: Any,
        known: Any,
        entry: Any,
        ident: str,
        values: dict[str, Any],
        report: sync.Report,
        recoverable: bool,
    ) -> str:
        attempts.append(recoverable)
        row = {
            "pk": util.new_uuid(),
            "num_pk": 10 + int(ident),
            "name": values["name"],
            "attributes": {},
        }
        await crud.insert(tx, "groups", row, recoverable=recoverable)
        report.counts["groups_created"] += 1
        return str(row["pk"])

    prepared = [
        (client.Entry(f"cn={name},dc=example,dc=org"), str(n), {"name": name})
        for n, name in enumerate(["first", "taken", "third"])
    ]
    report = sync.Report()
    written = await sync._write_chunk(db, None, prepared, load, write, report)  # type: ignore[arg-type]
    assert [ident for _, ident, _ in written] == ["0", "2"]
    assert attempts == [False, False, True, True, True]
    assert report.counts == {"groups_created": 2, "skipped": 1}
    assert "cn=taken" in report.messages[0]
    async with db.read() as tx:
        names = sorted(r["name"] for r in await crud.all_rows(tx, "groups"))
    assert names == ["first", "taken", "third"]
