"""`tessera worker` drains the mail outbox: a mail queued in the database (as a server with
`AUTHENTIK_WORKER__EMBEDDED=false` leaves it, `test_mail_outbox.py`) is delivered by the worker
process through a real SMTP server, and its metrics count it."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

from helpers import PG_HOST, PG_USER, SECRET_KEY, Server, pg_env
from mailkit import Inbox

from tessera.core import config, crypto, mail, store


async def test_the_worker_delivers_a_queued_mail(
    tmp_path: Path, fresh_database: str, inbox: tuple[Inbox, int]
) -> None:
    env = pg_env(
        fresh_database,
        AUTHENTIK_WORKER__EMBEDDED="false",
        AUTHENTIK_EMAIL__HOST="127.0.0.1",
        AUTHENTIK_EMAIL__PORT=str(inbox[1]),
    )
    settings = config.load(
        data_dir=tmp_path,
        secret_key=SECRET_KEY,
        postgresql={"host": PG_HOST, "user": PG_USER, "name": fresh_database},
    )
    db = store.Store(settings)
    await db.open()
    try:
        await db.migrate()
        msg = mail.message("sso@example.com", "bob@example.com", "Hello", "Hi Bob", "<p>Hi</p>")
        async with db.transaction() as tx:
            await mail.outbox.enqueue(tx, crypto.Keyring(SECRET_KEY), msg, origin={})
    finally:
        await db.close()
    worker = Server(env, tmp_path, command="worker")
    try:
        deadline = time.monotonic() + 20
        while not inbox[0].messages and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [m["To"] for m in inbox[0].messages] == ["bob@example.com"], worker.output()
        metrics, counted = f"http://127.0.0.1:{worker.metrics_port}/metrics", ""
        sent = 'tessera_mail_deliveries_total{result="sent"} 1.0'
        while sent not in counted and time.monotonic() < deadline:  # counted after the commit
            with urllib.request.urlopen(metrics, timeout=5) as response:
                counted = response.read().decode()
        assert sent in counted
    finally:
        worker.stop()
