"""The mail outbox: every outgoing mail is a row of `mail_outbox` before it is a connection to
an SMTP server.

Callers (the email stage) `enqueue` a message in a transaction of theirs; the drainer
(`tasks.mail`, in `tessera worker` or, without one, in the server) takes `due` rows, `claim`s
each (a conditional update: of several drainers, one wins), sends it, and marks it `delivered`,
`retry_later` or `given_up`. A claimed row's `next_attempt` is pushed past the send's time limit:
if its sender dies mid-send, the row is due again afterwards (at least once, never lost).

# SECURITY: the whole MIME message is sealed with the instance key (`crypto.Keyring.seal`, bound
to the row's pk): recovery and verification mails carry a link that works as a credential, and a
database dump must not hand it out. The recipient and subject are kept in clear for the
operator and the events; no body, link or token ever reaches a log line or an event.
"""

from __future__ import annotations

import datetime as dt
import email
import email.message
import email.policy
import uuid
from typing import Any

from tessera.core import config, crypto, errors, store
from tessera.core.store import crud

TABLE = "mail_outbox"
QUEUED, SENT, FAILED = "queued", "sent", "failed"
MAX_ERROR = 500  # characters of the SMTP server's words kept


def _seal_context(pk: str) -> str:
    return f"{TABLE}:{pk}"


async def enqueue(
    tx: store.Tx,
    keyring: crypto.Keyring,
    msg: email.message.EmailMessage,
    *,
    origin: dict[str, Any],
    connection: config.Email | None = None,
    expires: dt.datetime | None = None,
) -> str:
    """Write `msg` to the outbox, due at once; its pk. `origin` goes to the delivery's events
    (`user`: the actor, `client_ip`, `context`); `connection` is a stage's own SMTP server
    (None: the global settings at sending time); after `expires` (a link's end) it is not
    sent."""
    pk = str(uuid.uuid4())
    now = dt.datetime.now(dt.UTC)
    await crud.append(
        tx,
        TABLE,
        {
            "pk": pk,
            "created": now,
            "status": QUEUED,
            "next_attempt": now,
            "attempts": 0,
            "expires": expires,
            "recipient": str(msg["To"])[:254],
            "subject": str(msg["Subject"])[:200],
            "message": keyring.seal(msg.as_string(), _seal_context(pk)),
            "connection": None if connection is None else _stored_connection(connection),
            "origin": origin,
            "last_error": "",
            "done": None,
        },
    )
    return pk


def _stored_connection(connection: config.Email) -> dict[str, Any]:
    # SECURITY: never a password (a stage's own server has none; the global one is read at
    # sending time).
    return connection.model_dump(mode="json", by_alias=True, exclude={"password"})


def connection_of(row: dict[str, Any], global_settings: config.Email) -> config.Email:
    """The SMTP server a row goes through."""
    stored = row["connection"]
    return global_settings if stored is None else config.Email.model_validate(stored)


def opened(keyring: crypto.Keyring, row: dict[str, Any]) -> email.message.EmailMessage:
    """The row's message (`crypto.secrets.UnsealError` when sealed under another secret key)."""
    text = keyring.unseal(row["message"], _seal_context(row["pk"]))
    parsed = email.message_from_string(text, policy=email.policy.default)
    assert isinstance(parsed, email.message.EmailMessage)
    return parsed


async def due(tx: store.Tx, now: dt.datetime, limit: int) -> list[dict[str, Any]]:
    """Queued rows whose next attempt has come, oldest first."""
    filters = [crud.Filter("status", "eq", QUEUED), crud.Filter("next_attempt", "lte", now)]
    return await crud.rows(tx, TABLE, filters, ("next_attempt",), limit)


async def claim(tx: store.Tx, row: dict[str, Any], until: dt.datetime) -> dict[str, Any] | None:
    """Take `row` for one attempt, leased until `until`; None when another drainer took it
    first (its `next_attempt` or `attempts` moved on)."""
    where = {
        "pk": row["pk"],
        "status": QUEUED,
        "next_attempt": row["next_attempt"],
        "attempts": row["attempts"],
    }
    try:
        return await crud.update(
            tx, TABLE, where, {"next_attempt": until, "attempts": row["attempts"] + 1}
        )
    except errors.NotFound:
        return None


async def delivered(tx: store.Tx, pk: str, now: dt.datetime) -> None:
    await crud.update(tx, TABLE, {"pk": pk}, {"status": SENT, "done": now, "last_error": ""})


async def retry_later(tx: store.Tx, pk: str, when: dt.datetime, error: str) -> None:
    await crud.update(
        tx, TABLE, {"pk": pk}, {"next_attempt": when, "last_error": error[:MAX_ERROR]}
    )


async def given_up(tx: store.Tx, pk: str, now: dt.datetime, error: str) -> None:
    values = {"status": FAILED, "done": now, "last_error": error[:MAX_ERROR]}
    await crud.update(tx, TABLE, {"pk": pk}, values)


async def remove_done(tx: store.Tx, limit: int | None = None, keep_days: int = 7) -> int:
    """Delete sent and failed rows finished more than `keep_days` ago (at most `limit`)."""
    before = dt.datetime.now(dt.UTC) - dt.timedelta(days=keep_days)
    return await crud.delete_matching(tx, TABLE, [crud.Filter("done", "lt", before)], limit)
