"""The outbox drainer: hands the mails of `mail_outbox` to the SMTP server, with retries.

`tessera worker` runs `drainer`; so does every serving process of `tessera server` unless
`AUTHENTIK_WORKER__EMBEDDED` is false (a worker Deployment does it then), which is what makes the
single-process embedded default deliver mail by itself. A drainer looks for due rows every
`POLL` seconds and at once after a transaction of its own process wrote the outbox (the store's
commit listener), so mail written by the serving process that runs it goes out without delay.

Each due row is claimed first (`mail.outbox.claim`: one drainer among many wins it), then sent:
- accepted: `sent`, and authentik's `email_sent` event (message, subject, from and to; never the
  body, whose link is a credential);
- refused or unreachable: a `system_task_exception` event naming the address, the attempt and
  the server's words, and the row is due again after `outbox_retry_seconds` doubled per attempt
  (at most an hour); after `outbox_max_attempts` it is `failed`, with a last such event saying
  it was given up;
- past its link's end (`expires`), or sealed under another secret key: `failed` unsent.
A drainer killed mid-send leaves its claim to lapse: the row is sent again (at least once).

`tessera_mail_deliveries_total{result}` (sent, retrying, failed) counts the attempts, in a
registry of its own (`REGISTRY`) that the metrics of the server and the worker forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter

from tessera.core import config, crypto, events, mail, store
from tessera.core.mail import outbox

log = structlog.get_logger(__name__)
POLL = 1.0  # seconds between looks for due rows when nothing wakes the drainer
BATCH = 50  # rows looked at per pass
PARALLEL = 4  # mails being sent at once
MAX_BACKOFF = 3600.0
TASK = "send_mail"  # authentik's actor (`authentik.stages.email.tasks.send_mail`)
REGISTRY = CollectorRegistry()
DELIVERIES = Counter(
    "tessera_mail_deliveries",
    "Attempts to hand a mail of the outbox to the SMTP server, by result",
    ["result"],
    registry=REGISTRY,
)


def backoff(settings: config.Email, attempts: int) -> float:
    """Seconds before the next attempt after `attempts` failed ones."""
    return float(min(settings.outbox_retry_seconds * 2 ** max(attempts - 1, 0), MAX_BACKOFF))


def _lease(connection: config.Email) -> dt.timedelta:
    """How long a claim holds: longer than a send can take (connect, greet, TLS, each command)."""
    return dt.timedelta(seconds=connection.timeout * 6 + 30)


async def deliver_due(
    db: store.Store, keyring: crypto.Keyring, settings: config.Settings
) -> dict[str, int]:
    """One pass over the due rows; how many were sent, put off, failed, or taken by another."""
    async with db.read() as tx:
        rows = await outbox.due(tx, dt.datetime.now(dt.UTC), BATCH)
    done = {"sent": 0, "retrying": 0, "failed": 0, "taken": 0}
    gate = asyncio.Semaphore(PARALLEL)

    async def one(row: dict[str, Any]) -> None:
        async with gate:
            result = await _deliver(db, keyring, settings, row)
        done[result] += 1
        if result != "taken":
            DELIVERIES.labels(result).inc()

    await asyncio.gather(*(one(row) for row in rows))
    return done


async def _deliver(
    db: store.Store, keyring: crypto.Keyring, settings: config.Settings, row: dict[str, Any]
) -> str:
    connection = outbox.connection_of(row, settings.email)
    now = dt.datetime.now(dt.UTC)
    async with db.transaction() as tx:
        claimed = await outbox.claim(tx, row, now + _lease(connection))
    if claimed is None:
        return "taken"
    if claimed["expires"] is not None and now >= claimed["expires"]:
        return await _failed(db, settings, claimed, "the link in it expired before delivery", True)
    try:
        msg = outbox.opened(keyring, claimed)
    except crypto.secrets.UnsealError:
        return await _failed(db, settings, claimed, "sealed under another secret key", True)
    try:
        await mail.send(connection, msg)
    except mail.MailError as exc:
        last = claimed["attempts"] >= settings.email.outbox_max_attempts
        return await _failed(db, settings, claimed, exc.reason or str(exc), last)
    async with db.transaction() as tx:
        await outbox.delivered(tx, claimed["pk"], dt.datetime.now(dt.UTC))
        await _event(tx, settings, claimed, "email_sent", _sent_context(claimed, msg))
    return "sent"


def _sent_context(row: dict[str, Any], msg: Any) -> dict[str, Any]:
    """authentik's `email_sent` context, without the body (its link is a credential)."""
    return {
        "message": f"Email to {row['recipient']} sent",
        "subject": row["subject"],
        "from_email": str(msg["From"]),
        "to_email": [row["recipient"]],
    }


async def _failed(
    db: store.Store, settings: config.Settings, row: dict[str, Any], reason: str, last: bool
) -> str:
    """Record a failed attempt: due again after the backoff, or failed for good when `last`."""
    now = dt.datetime.now(dt.UTC)
    attempt, most = row["attempts"], settings.email.outbox_max_attempts
    context: dict[str, Any] = {
        "task": TASK,
        "to_email": [row["recipient"]],
        "subject": row["subject"],
        "attempt": attempt,
        "max_attempts": most,
        "error": reason[: outbox.MAX_ERROR],
    }
    async with db.transaction() as tx:
        if last:
            await outbox.given_up(tx, row["pk"], now, reason)
            context["message"] = f"Email to {row['recipient']} not sent, given up: {reason}"
            context["given_up"] = True
        else:
            when = now + dt.timedelta(seconds=backoff(settings.email, attempt))
            await outbox.retry_later(tx, row["pk"], when, reason)
            context["message"] = f"Email to {row['recipient']} not sent yet: {reason}"
            context["next_attempt"] = when.isoformat()
        await _event(tx, settings, row, "system_task_exception", context)
    log.warning(
        "email delivery failed",
        outbox=row["pk"],
        attempt=attempt,
        given_up=last,
        reason=reason[: outbox.MAX_ERROR],
    )
    return "failed" if last else "retrying"


async def _event(
    tx: store.Tx,
    settings: config.Settings,
    row: dict[str, Any],
    action: str,
    context: dict[str, Any],
) -> None:
    origin: dict[str, Any] = row["origin"] if isinstance(row["origin"], dict) else {}
    user = origin.get("user") if isinstance(origin.get("user"), dict) else None
    extra: dict[str, Any] = origin.get("context") or {}
    await events.record(
        tx,
        action,
        user=user,
        client_ip=origin.get("client_ip"),
        context={**extra, **context},
        retention=dt.timedelta(days=settings.events.retention_days),
        app="tessera.core.stages.email",
    )


async def drainer(db: store.Store, keyring: crypto.Keyring, settings: config.Settings) -> None:
    """Deliver due mail until cancelled; store outages are logged and retried."""
    wake = asyncio.Event()

    def written(tables: frozenset[str], _announced: Any) -> None:
        if outbox.TABLE in tables:
            wake.set()

    stop_listening = db.on_commit(written)
    try:
        while True:
            try:
                await deliver_due(db, keyring, settings)
            except store.StoreUnavailable as exc:
                log.warning("mail outbox not drained: store unavailable", reason=str(exc))
            except Exception:  # the loop is an edge: one failed pass must not end all later ones
                log.exception("mail outbox pass failed")
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation that
            # arrives as the event is set, and the drainer would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL):
                    await wake.wait()
            wake.clear()
    finally:
        stop_listening()
