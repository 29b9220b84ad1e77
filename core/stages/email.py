"""Email stage (`ak-stage-email`): prove control of the pending user's address with a link.

On first reach it mails a single-use link `/if/flow/<slug>/?flow_token=<key>` and shows "check
your email". Opening the link (in any browser) resumes the flow after this stage, with
`email_verified` and, for recovery, `auth_method = "email"` in the context.

# SECURITY: the key is 256 random bits, kept in the cache only as its sha256 with the flow state,
# popped atomically (single use) and gone after `token_expiry` (authentik's duration form). An
# unknown account (when identification pretends users exist) sees the same page and no mail is
# sent. The mail is written to the outbox (`mail.outbox`, sealed: the link is a credential) by a
# background task, so that the page takes as long for an unknown account as for a known one
# (waiting for a database write only for real accounts would tell them apart); the outbox's
# drainer (`tasks.mail`) delivers it, with retries, and records `email_sent` or the failure. A
# stopping server finishes these writes first (`flush`). At most `recovery_max_attempts` mails (5)
# go to one account within `recovery_cache_timeout` (an hour), so the form cannot be used to
# flood a mailbox; the outbox does not send a link past its validity.

Unless `use_global_settings` is on (the default), the mail goes through the stage's own SMTP
server (no password: those are set globally).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import html
import secrets
from typing import Annotated, Any, ClassVar

import structlog
from pydantic import AfterValidator, BeforeValidator, Field

from tessera.core import config, crypto, events, mail, wire
from tessera.core.identity import users
from tessera.core.stages import base, email_change
from tessera.core.wire import durations

TOKEN_PREFIX = "flowtoken:"  # noqa: S105 - a cache key prefix
ACTIVATE_KEY = "email_activate_user"  # context of a resumed flow: activate the pending user

log = structlog.get_logger(__name__)
_sending: set[asyncio.Task[None]] = set()  # strong references until each mail is handed over


def _legacy_minutes(value: Any) -> Any:
    """Older settings hold the token validity as a number of minutes."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"minutes={value}" if value > 0 else value
    return value


class Config(base.StageConfig):
    write_only: ClassVar[frozenset[str]] = frozenset({"password"})

    # Off: the connection below, instead of the server's AUTHENTIK_EMAIL__* settings (on by
    # default in Tessera, whose stages always used those).
    use_global_settings: bool = True
    host: Annotated[str, Field(min_length=1, max_length=255)] = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    username: Annotated[str, Field(max_length=255)] = ""
    # SECURITY: no SMTP password is kept in a stage's settings (they are not encrypted); a
    # server that needs one is configured globally.
    password: Annotated[
        str | None,
        wire.flows.only(None, ""),
        Field(description="Not kept: use the global settings for a server that needs one."),
    ] = None
    use_tls: bool = False
    use_ssl: bool = False
    timeout: Annotated[int, Field(ge=1, le=300)] = 10
    from_address: Annotated[str, Field(min_length=1, max_length=254)] = "system@authentik.local"
    token_expiry: Annotated[
        str,
        BeforeValidator(_legacy_minutes),
        Field(max_length=durations.MAX_LENGTH),
        AfterValidator(durations.bounded(60, 86400)),
    ] = "minutes=30"  # noqa: S105 - a duration, not a secret
    subject: Annotated[str, Field(min_length=1, max_length=200)] = "authentik"
    # authentik's template names; Tessera's mail is the same for all of them.
    template: Annotated[str, Field(min_length=1, max_length=200)] = "email/password_reset.html"
    activate_user_on_success: bool = False
    # At most this many mails to one account within the window (see the module's docstring).
    recovery_max_attempts: Annotated[int, Field(ge=1, le=1000)] = 5
    recovery_cache_timeout: Annotated[
        str, Field(max_length=durations.MAX_LENGTH), AfterValidator(durations.bounded(1, 86400))
    ] = "hours=1"

    def connection(self, global_settings: config.Email) -> config.Email:
        """The SMTP server and sender of this stage's mails."""
        if self.use_global_settings:
            return global_settings
        return config.Email.model_validate(
            {
                "host": self.host,
                "port": self.port,
                "username": self.username,
                "use_tls": self.use_tls,
                "use_ssl": self.use_ssl,
                "timeout": self.timeout,
                "from": self.from_address,
            }
        )


class EmailStage(base.Stage):
    kind = "email"
    component = "ak-stage-email"
    Config = Config

    async def challenge(self, run: base.Run) -> dict[str, Any]:
        if run.state.context.get("email_sent_for") != run.stage_pk:
            run.state.context["email_sent_for"] = run.stage_pk
            await self._send(run)
        return {}

    async def on_valid(self, run: base.Run, response: base.ChallengeResponse) -> base.Outcome:
        # Posting the "check your email" page sends nothing further; only the link continues.
        return base.Outcome.retry("non_field_errors", "Open the link we sent you by email.")

    def _validity(self) -> int:
        """Seconds a link stays valid."""
        assert isinstance(self.config, Config)
        return int(durations.seconds(self.config.token_expiry))

    async def _send(self, run: base.Run) -> None:
        assert isinstance(self.config, Config)
        found = await email_change.target(run)
        if found is None:
            return  # the same page either way: no enumeration
        user, new_address = found
        window = int(durations.seconds(self.config.recovery_cache_timeout)) or 1
        sent = await run.services.cache.incr(f"email:sent:{user['pk']}", window)
        if sent > self.config.recovery_max_attempts:
            log.warning("email_not_sent", reason="too many mails to this account", user=user["pk"])
            return
        key = secrets.token_urlsafe(32)
        resumed = run.state.dump() | {"index": run.state.index + 1}
        context = resumed["context"]
        if new_address is not None:  # proves the new address only (`email_change`)
            resumed["context"] = email_change.resumed_context(context, user, new_address)
        else:
            resumed["context"] = {**context, "email_verified": True, "auth_method": "email"}
            if self.config.activate_user_on_success:
                resumed["context"][ACTIVATE_KEY] = user["pk"]
        await run.services.cache.set(
            TOKEN_PREFIX + crypto.secrets.sha256_hex(key), resumed, self._validity()
        )
        # SECURITY: never the request's Host header, which an attacker could point elsewhere to
        # receive the victim's link (reset poisoning).
        settings_ = run.services.settings
        base_url = settings_.web.public_url.rstrip("/") or f"http://{settings_.listen.http}"
        link = f"{base_url}/if/flow/{run.state.slug}/?flow_token={key}"
        text = f"Hello {user['name'] or user['username']},\n\nOpen this link to continue:\n{link}\n"
        body = f"<p>Hello {html.escape(user['name'] or user['username'])},</p>"
        minutes = self._validity() // 60
        body += f'<p><a href="{html.escape(link)}">Continue</a> (valid {minutes} min)</p>'
        own = None if self.config.use_global_settings else self.config.connection(settings_.email)
        sender = (own or settings_.email).from_
        to = new_address or user["email"]
        msg = mail.message(sender, to, self.config.subject, text, body)
        origin = {
            "user": events.actor(user),
            "client_ip": run.client_ip,
            "context": {"flow": run.state.slug},
        }
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self._validity())
        task = asyncio.create_task(_enqueue(run.services, msg, origin, own, expires))
        _sending.add(task)
        task.add_done_callback(_sending.discard)


async def _enqueue(
    services: base.Services,
    msg: Any,
    origin: dict[str, Any],
    connection: config.Email | None,
    expires: dt.datetime,
) -> None:
    """Write a mail to the outbox; a failure is logged only (the page the visitor saw is the
    same either way, and a new link can be asked for)."""
    try:
        async with services.store.transaction() as tx:
            await mail.outbox.enqueue(
                tx, services.keyring, msg, origin=origin, connection=connection, expires=expires
            )
    except Exception:  # a background task has no caller to tell
        log.exception("email_not_queued", flow=origin["context"]["flow"])


async def flush() -> None:
    """Wait for the outbox writes still under way (a stopping server calls this)."""
    while _sending:
        await asyncio.gather(*list(_sending), return_exceptions=True)


async def activate(services: base.Services, context: dict[str, Any]) -> None:
    """For a flow resumed from a link of a stage with `activate_user_on_success`: activate its
    user (created inactive by user_write, e.g.), now that the address is proven."""
    user_pk = context.pop(ACTIVATE_KEY, None)
    if not isinstance(user_pk, int):
        return
    async with services.store.transaction() as tx:
        await users.activate(tx, user_pk)


async def redeem(services: base.Services, key: str) -> dict[str, Any] | None:
    """The flow state a link resumes, once; None when unknown, used or expired."""
    if not 20 <= len(key) <= 128:
        return None
    state = await services.cache.pop(TOKEN_PREFIX + crypto.secrets.sha256_hex(key))
    return state if isinstance(state, dict) else None
