"""The mail outbox and its drainer (`mail.outbox`, `tasks.mail`) against a real SMTP server
(aiosmtpd, `mailkit`) on SQLite and PostgreSQL: a mail is sealed at rest, delivered once with an
`email_sent` event, survives an SMTP outage and a restart, is retried with growing delays up to
its cap and then failed with an event, is never sent twice by two drainers, and is not sent past
its link's end; no link reaches an event or a log line."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from helpers import free_port
from mailkit import Inbox
from structlog import testing

from tessera.core import app, config, crypto, events, mail, store, tasks
from tessera.core.mail import outbox
from tessera.core.store import crud

TOKEN = "canary-flow-token-0123456789abcdefghijklmnopq"
LINK = f"https://sso.example.com/if/flow/recovery/?flow_token={TOKEN}"
# The claims, the restart and the SMTP outage run on both stores; what does not depend on the
# store runs on SQLite only.
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
def smtp_settings(
    make_settings: Callable[..., config.Settings], inbox: tuple[Inbox, int]
) -> Callable[..., config.Settings]:
    """Settings whose SMTP server is the inbox (`up`) or a port nobody listens on (`down`)."""
    closed = free_port()

    def make(
        *, up: bool = True, worker: dict[str, Any] | None = None, **email: Any
    ) -> config.Settings:
        port = inbox[1] if up else closed
        values = {"host": "127.0.0.1", "port": port, "from": "sso@example.com", "timeout": 2}
        return make_settings(
            email={**values, "outbox_retry_seconds": 0.05, **email},
            web={"public_url": "https://sso.example.com"},
            worker=worker or {},
        )

    return make


def _keyring(settings: config.Settings) -> crypto.Keyring:
    assert settings.secret_key is not None
    return crypto.Keyring(settings.secret_key.get_secret_value())


async def _enqueue(
    db: store.Store, keyring: crypto.Keyring, *, expires: dt.datetime | None = None
) -> str:
    msg = mail.message("sso@example.com", "bob@example.com", "Reset", f"Open {LINK}\n", LINK)
    origin = {
        "user": {"pk": None, "username": "bob", "email": "bob@example.com"},
        "client_ip": "192.0.2.7",
        "context": {"flow": "recovery"},
    }
    async with db.transaction() as tx:
        return await outbox.enqueue(tx, keyring, msg, origin=origin, expires=expires)


async def _row(db: store.Store, pk: str) -> dict[str, Any]:
    async with db.read() as tx:
        return await crud.get(tx, outbox.TABLE, pk=pk)


async def _events(db: store.Store, action: str) -> list[dict[str, Any]]:
    async with db.read() as tx:
        return await crud.rows(tx, events.TABLE, [crud.Filter("action", "eq", action)])


async def _nothing_secret(db: store.Store) -> None:
    async with db.read() as tx:
        stored = json.dumps(
            [*await crud.all_rows(tx, events.TABLE), *await crud.all_rows(tx, outbox.TABLE)],
            default=str,
        )
    assert TOKEN not in stored


async def test_a_mail_is_sealed_then_delivered_once_with_an_email_sent_event(
    db: store.Store, smtp_settings: Callable[..., config.Settings], inbox: tuple[Inbox, int]
) -> None:
    settings = smtp_settings()
    keyring = _keyring(settings)
    pk = await _enqueue(db, keyring)
    row = await _row(db, pk)
    assert row["status"] == "queued" and row["recipient"] == "bob@example.com"
    assert row["message"].startswith("v1:") and TOKEN not in row["message"]
    metric = ("tessera_mail_deliveries_total", {"result": "sent"})
    before = tasks.mail.REGISTRY.get_sample_value(*metric) or 0
    with testing.capture_logs() as logs:
        done = await tasks.mail.deliver_due(db, keyring, settings)
    assert done == {"sent": 1, "retrying": 0, "failed": 0, "taken": 0}
    assert tasks.mail.REGISTRY.get_sample_value(*metric) == before + 1
    await inbox[0].arrived(1)
    assert inbox[0].link() == TOKEN and inbox[0].messages[0]["To"] == "bob@example.com"
    assert (await _row(db, pk))["status"] == "sent"
    [event] = await _events(db, "email_sent")
    assert event["context"]["to_email"] == ["bob@example.com"]
    assert event["context"]["message"] == "Email to bob@example.com sent"
    assert event["context"]["flow"] == "recovery" and event["client_ip"] == "192.0.2.7"
    assert event["app"] == "tessera.core.stages.email"
    assert await tasks.mail.deliver_due(db, keyring, settings) == dict.fromkeys(done, 0)
    await _nothing_secret(db)
    assert TOKEN not in json.dumps(logs, default=str)


async def test_an_smtp_outage_delays_the_mail_and_records_each_failure(
    db: store.Store, smtp_settings: Callable[..., config.Settings], inbox: tuple[Inbox, int]
) -> None:
    down, up = smtp_settings(up=False, outbox_retry_seconds=0.5), smtp_settings()
    keyring = _keyring(up)
    pk = await _enqueue(db, keyring)
    with testing.capture_logs() as logs:
        assert (await tasks.mail.deliver_due(db, keyring, down))["retrying"] == 1
    row = await _row(db, pk)
    assert row["status"] == "queued" and row["attempts"] == 1 and row["last_error"]
    first_delay = row["next_attempt"] - dt.datetime.now(dt.UTC)
    assert (await tasks.mail.deliver_due(db, keyring, down))["retrying"] == 0  # not due yet
    await asyncio.sleep(0.6)
    assert (await tasks.mail.deliver_due(db, keyring, down))["retrying"] == 1
    second = await _row(db, pk)
    assert second["next_attempt"] - dt.datetime.now(dt.UTC) > first_delay  # backoff grows
    failures = await _events(db, "system_task_exception")
    assert [e["context"]["attempt"] for e in failures] == [1, 2]
    assert failures[0]["context"]["to_email"] == ["bob@example.com"]
    assert (
        failures[0]["context"]["task"] == "send_mail" and "next_attempt" in failures[0]["context"]
    )
    assert not inbox[0].messages
    await asyncio.sleep(1.1)
    assert (await tasks.mail.deliver_due(db, keyring, up))["sent"] == 1  # the server is back
    await inbox[0].arrived(1)
    await _nothing_secret(db)
    assert TOKEN not in json.dumps(logs, default=str)


@SQLITE_ONLY
async def test_attempts_are_capped_then_the_mail_is_failed_with_an_event(
    db: store.Store, smtp_settings: Callable[..., config.Settings], inbox: tuple[Inbox, int]
) -> None:
    down = smtp_settings(up=False, outbox_max_attempts=2, outbox_retry_seconds=0.01)
    keyring = _keyring(down)
    pk = await _enqueue(db, keyring)
    assert (await tasks.mail.deliver_due(db, keyring, down))["retrying"] == 1
    await asyncio.sleep(0.05)
    assert (await tasks.mail.deliver_due(db, keyring, down))["failed"] == 1
    row = await _row(db, pk)
    assert row["status"] == "failed" and row["attempts"] == 2 and row["done"] is not None
    last = (await _events(db, "system_task_exception"))[-1]["context"]
    assert last["given_up"] is True and last["attempt"] == last["max_attempts"] == 2
    assert "given up" in last["message"]
    await asyncio.sleep(0.05)
    assert await tasks.mail.deliver_due(db, keyring, smtp_settings()) == {
        "sent": 0,
        "retrying": 0,
        "failed": 0,
        "taken": 0,
    }
    assert not inbox[0].messages


def test_the_backoff_doubles_up_to_an_hour() -> None:
    settings = config.Email(outbox_retry_seconds=30)
    assert [tasks.mail.backoff(settings, n) for n in (1, 2, 3)] == [30.0, 60.0, 120.0]
    assert tasks.mail.backoff(settings, 20) == 3600.0


async def test_a_restart_loses_nothing_and_a_dead_senders_claim_lapses(
    db: store.Store, smtp_settings: Callable[..., config.Settings], inbox: tuple[Inbox, int]
) -> None:
    settings = smtp_settings()
    keyring = _keyring(settings)
    queued, claimed = await _enqueue(db, keyring), await _enqueue(db, keyring)
    # A drainer took `claimed` and died before sending it.
    async with db.transaction() as tx:
        row = await crud.get(tx, outbox.TABLE, pk=claimed)
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.3)
        assert await outbox.claim(tx, row, until) is not None
    await db.close()
    restarted = store.Store(settings)  # a new process on the same database
    await restarted.open()
    try:
        assert (await tasks.mail.deliver_due(restarted, keyring, settings))["sent"] == 1
        await inbox[0].arrived(1)
        assert (await _row(restarted, claimed))["status"] == "queued"  # its claim still holds
        await asyncio.sleep(0.35)
        assert (await tasks.mail.deliver_due(restarted, keyring, settings))["sent"] == 1
        await inbox[0].arrived(2)
        assert {(await _row(restarted, pk))["status"] for pk in (queued, claimed)} == {"sent"}
    finally:
        await restarted.close()


async def test_two_drainers_send_a_mail_once(
    db: store.Store, smtp_settings: Callable[..., config.Settings], inbox: tuple[Inbox, int]
) -> None:
    settings = smtp_settings()
    keyring = _keyring(settings)
    for _ in range(3):
        await _enqueue(db, keyring)
    passes = await asyncio.gather(
        *(tasks.mail.deliver_due(db, keyring, settings) for _ in range(2))
    )
    assert sum(p["sent"] for p in passes) == 3
    await inbox[0].arrived(3)
    assert len(await _events(db, "email_sent")) == 3


@SQLITE_ONLY
async def test_a_link_past_its_end_is_not_sent(
    db: store.Store, smtp_settings: Callable[..., config.Settings], inbox: tuple[Inbox, int]
) -> None:
    settings = smtp_settings()
    keyring = _keyring(settings)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    pk = await _enqueue(db, keyring, expires=past)
    assert (await tasks.mail.deliver_due(db, keyring, settings))["failed"] == 1
    assert (await _row(db, pk))["status"] == "failed"
    [event] = await _events(db, "system_task_exception")
    assert "expired" in event["context"]["error"] and event["context"]["given_up"] is True
    await asyncio.sleep(0.2)
    assert not inbox[0].messages


@SQLITE_ONLY
async def test_a_message_sealed_under_another_key_is_failed_not_sent(
    db: store.Store, smtp_settings: Callable[..., config.Settings], inbox: tuple[Inbox, int]
) -> None:
    settings = smtp_settings()
    pk = await _enqueue(db, crypto.Keyring("another-secret-key-" + "y" * 40))
    assert (await tasks.mail.deliver_due(db, _keyring(settings), settings))["failed"] == 1
    assert "another secret key" in (await _row(db, pk))["last_error"]


@SQLITE_ONLY
async def test_the_drainer_wakes_when_its_process_writes_the_outbox(
    db: store.Store, smtp_settings: Callable[..., config.Settings], inbox: tuple[Inbox, int]
) -> None:
    settings = smtp_settings()
    keyring = _keyring(settings)
    drainer = asyncio.create_task(tasks.mail.drainer(db, keyring, settings))
    try:
        await asyncio.sleep(0.05)  # its first pass found nothing; now it waits
        await _enqueue(db, keyring)
        started = asyncio.get_running_loop().time()
        while not inbox[0].messages and asyncio.get_running_loop().time() - started < 5:
            await asyncio.sleep(0.01)
        assert inbox[0].messages
        assert asyncio.get_running_loop().time() - started < tasks.mail.POLL  # woken, not polled
    finally:
        drainer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await drainer


@SQLITE_ONLY
async def test_maintenance_removes_finished_mail_after_a_week(
    db: store.Store, smtp_settings: Callable[..., config.Settings]
) -> None:
    settings = smtp_settings()
    keyring = _keyring(settings)
    old, recent, waiting = [await _enqueue(db, keyring) for _ in range(3)]
    async with db.transaction() as tx:
        long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=8)
        await outbox.delivered(tx, old, long_ago)
        await outbox.delivered(tx, recent, dt.datetime.now(dt.UTC))
    removed = await tasks.run_maintenance(db)
    assert removed["mail"] == 1
    async with db.read() as tx:
        assert {r["pk"] for r in await crud.all_rows(tx, outbox.TABLE)} == {recent, waiting}


@SQLITE_ONLY
async def test_a_server_with_a_worker_leaves_mail_queued_for_it(
    aiohttp_client: Any,
    bootstrapped: store.Store,
    smtp_settings: Callable[..., config.Settings],
    inbox: tuple[Inbox, int],
) -> None:
    """`AUTHENTIK_WORKER__EMBEDDED=false`: the recovery mail is written, not sent, by the server."""
    settings = smtp_settings(worker={"embedded": False})
    client = await aiohttp_client(app.create_app(settings, bootstrapped, run_tasks=True))
    async with bootstrapped.transaction() as tx:
        await crud.update(tx, "users", {"username": "akadmin"}, {"email": "admin@example.com"})
    flow = "/api/v3/flows/executor/default-recovery-flow/"
    await client.get(flow)
    body = await (await client.post(flow, json={"uid_field": "akadmin"})).json()
    assert body["component"] == "ak-stage-email"
    await asyncio.sleep(1.5)  # the drainer's poll, had this process one
    assert not inbox[0].messages
    async with bootstrapped.read() as tx:
        [row] = await crud.all_rows(tx, outbox.TABLE)
    assert row["status"] == "queued" and row["recipient"] == "admin@example.com"
    assert TOKEN not in row["message"] and "flow_token" not in row["message"]


@SQLITE_ONLY
async def test_the_drainer_stops_when_cancelled_as_it_is_woken(
    db: store.Store, smtp_settings: Callable[..., config.Settings], inbox: tuple[Inbox, int]
) -> None:
    """A cancellation that arrives as the wake-up does still stops the drainer (on Python 3.11,
    `asyncio.wait_for` would drop it, and a server's stop would wait forever)."""
    settings = smtp_settings()
    keyring = _keyring(settings)
    for _ in range(20):
        drainer = asyncio.create_task(tasks.mail.drainer(db, keyring, settings))
        await asyncio.sleep(0.05)  # its first pass found nothing; now it waits
        await _enqueue(db, keyring)  # the commit wakes it ...
        await asyncio.sleep(0)  # ... the wake-up completes ...
        drainer.cancel()  # ... and the stop comes before the drainer has run again
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(drainer, 5)
