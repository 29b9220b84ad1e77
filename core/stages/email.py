"""Email stage (`ak-stage-email`): prove control of the pending user's address with a link.

On first reach it mails a single-use link `/if/flow/<slug>/?flow_token=<key>` and shows "check
your email". Opening the link (in any browser) resumes the flow after this stage, with
`email_verified` and, for recovery, `auth_method = "email"` in the context.

# SECURITY: the key is 256 random bits, kept in the cache only as its sha256 with the flow state,
# popped atomically (single use) and gone after `token_expiry` minutes. An unknown account (when
# identification pretends users exist) sees the same page and no mail is sent. The mail goes out
# in a background task, so that the page takes as long for an unknown account as for a known one
# (waiting for the SMTP server only for real accounts would tell them apart), and at most
# `MAILS_PER_HOUR` mails go to one account, so the form cannot be used to flood a mailbox.
"""

from __future__ import annotations

import asyncio
import html
import secrets
from typing import Annotated, Any

import structlog
from pydantic import Field

from tessera.core import crypto, events, mail
from tessera.core.identity import users
from tessera.core.stages import base, email_change

TOKEN_PREFIX = "flowtoken:"  # noqa: S105 - a cache key prefix
MAILS_PER_HOUR = 5
ACTIVATE_KEY = "email_activate_user"  # context of a resumed flow: activate the pending user

log = structlog.get_logger(__name__)
_sending: set[asyncio.Task[None]] = set()  # strong references until each mail is handed over


class Config(base.StageConfig):
    subject: Annotated[str, Field(max_length=200)] = "authentik"
    token_expiry: Annotated[int, Field(ge=1, le=24 * 60)] = 30  # minutes
    activate_user_on_success: bool = False


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

    async def _send(self, run: base.Run) -> None:
        assert isinstance(self.config, Config)
        found = await email_change.target(run)
        if found is None:
            return  # the same page either way: no enumeration
        user, new_address = found
        sent = await run.services.cache.incr(f"email:sent:{user['pk']}", 3600)
        if sent > MAILS_PER_HOUR:
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
            TOKEN_PREFIX + crypto.secrets.sha256_hex(key), resumed, self.config.token_expiry * 60
        )
        # SECURITY: never the request's Host header, which an attacker could point elsewhere to
        # receive the victim's link (reset poisoning).
        settings_ = run.services.settings
        base_url = settings_.web.public_url.rstrip("/") or f"http://{settings_.listen.http}"
        link = f"{base_url}/if/flow/{run.state.slug}/?flow_token={key}"
        text = f"Hello {user['name'] or user['username']},\n\nOpen this link to continue:\n{link}\n"
        body = f"<p>Hello {html.escape(user['name'] or user['username'])},</p>"
        minutes = self.config.token_expiry
        body += f'<p><a href="{html.escape(link)}">Continue</a> (valid {minutes} min)</p>'
        settings = run.services.settings.email
        to = new_address or user["email"]
        msg = mail.message(settings.from_, to, self.config.subject, text, body)
        event = {
            "user": user,
            "client_ip": run.client_ip,
            "context": {"subject": self.config.subject, "flow": run.state.slug},
            "retention": run.retention,
        }
        task = asyncio.create_task(_deliver(run.services, settings, msg, event))
        _sending.add(task)
        task.add_done_callback(_sending.discard)


async def _deliver(services: base.Services, settings: Any, msg: Any, event: dict[str, Any]) -> None:
    """Hand a mail to the SMTP server and record `email_sent`; failures are logged only (the
    page the visitor saw is the same either way)."""
    try:
        await mail.send(settings, msg)
    except mail.MailError:
        return  # logged by mail.send
    try:
        async with services.store.transaction() as tx:
            await events.record(tx, "email_sent", **event)
    except Exception:  # a background task has no caller to tell
        log.exception("email_sent_event_failed")


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
