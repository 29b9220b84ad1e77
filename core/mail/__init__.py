"""Outgoing email through SMTP (aiosmtplib), configured by `AUTHENTIK_EMAIL__*`.

Mail is never sent from a request: callers (the email stage's verification and recovery links)
write it to the outbox (`outbox.enqueue`), and the drainer (`tasks.mail`) hands it to the SMTP
server with `send`, retrying with backoff and recording `email_sent` or the failure as events.
Only `tessera admin test-email` sends directly (it reports the outcome to whoever runs it).
Connection problems raise `MailError`: the server's words go to the log and the outbox row only.
"""

from __future__ import annotations

import email.message

import structlog

from tessera.core import config, errors
from tessera.core.mail import outbox as outbox  # the package hands it on

log = structlog.get_logger(__name__)


class MailError(errors.TesseraError):
    """The message could not be handed to the SMTP server; `reason` is the server's or the
    connection's words (for the log and the outbox row, never for the visitor)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


def message(sender: str, to: str, subject: str, text: str, html: str) -> email.message.EmailMessage:
    msg = email.message.EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg


async def send(settings: config.Email, msg: email.message.EmailMessage) -> None:
    import aiosmtplib

    try:
        await aiosmtplib.send(
            msg,
            hostname=settings.host,
            port=settings.port,
            username=settings.username or None,
            password=settings.password.get_secret_value() or None,
            use_tls=settings.use_ssl,
            start_tls=settings.use_tls or None,
            timeout=settings.timeout,
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        log.warning("email not sent", server=f"{settings.host}:{settings.port}", reason=reason)
        raise MailError("The email could not be sent.", reason) from None
