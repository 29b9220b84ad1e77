"""Outgoing email through SMTP (aiosmtplib), configured by `AUTHENTIK_EMAIL__*`.

Called by the email stage (verification and recovery links); writes an `email_sent` event.
Connection problems raise `MailError`, which callers show as a generic failure: the address and
the server's words go to the log only.
"""

from __future__ import annotations

import email.message

import structlog

from tessera.core import config, errors

log = structlog.get_logger(__name__)


class MailError(errors.TesseraError):
    """The message could not be handed to the SMTP server."""


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
        log.warning("email not sent", server=f"{settings.host}:{settings.port}", reason=str(exc))
        raise MailError("The email could not be sent.") from None
