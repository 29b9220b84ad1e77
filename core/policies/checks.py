"""Policy kinds that check facts: password, password expiry and event matcher.

- `password`: length, character classes and a zxcvbn strength score of the password being set
  (the prompt field `password` in the flow context, as authentik's password policy reads it).
- `password_expiry`: fails when the user's password is older than `days`.
- `event_matcher`: passes for an event in the context matching action, app and client IP.

Reputation has its own kind (`reputation.py`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from tessera.core.policies import kinds

if TYPE_CHECKING:
    from tessera.core.policies.engine import Request

ZXCVBN_MAX = 72  # characters zxcvbn accepts


class PasswordConfig(kinds.PolicyConfig):
    password_field: Annotated[str, Field(max_length=100)] = "password"  # noqa: S105 - a field
    length_min: Annotated[int, Field(ge=0, le=1024)] = 8
    amount_uppercase: Annotated[int, Field(ge=0, le=100)] = 0
    amount_lowercase: Annotated[int, Field(ge=0, le=100)] = 0
    amount_digits: Annotated[int, Field(ge=0, le=100)] = 0
    amount_symbols: Annotated[int, Field(ge=0, le=100)] = 0
    check_zxcvbn: bool = True
    zxcvbn_score_threshold: Annotated[int, Field(ge=0, le=4)] = 2
    error_message: Annotated[str, Field(max_length=500)] = ""


class Password(kinds.Kind):
    kind = "password"
    Config = PasswordConfig

    async def evaluate(self, request: Request) -> kinds.Verdict:
        assert isinstance(self.config, PasswordConfig)
        c = self.config
        prompt = request.context.get("prompt_data", {})
        password = str(prompt.get(c.password_field, request.context.get(c.password_field, "")))
        problems = []
        if len(password) < c.length_min:
            problems.append(f"Password must be at least {c.length_min} characters long.")
        for count, pattern, what in (
            (c.amount_uppercase, r"[A-Z]", "uppercase letters"),
            (c.amount_lowercase, r"[a-z]", "lowercase letters"),
            (c.amount_digits, r"[0-9]", "digits"),
            (c.amount_symbols, r"[^A-Za-z0-9]", "symbols"),
        ):
            if len(re.findall(pattern, password)) < count:
                problems.append(f"Password needs at least {count} {what}.")
        if c.check_zxcvbn and password:
            user = request.user or {}
            hints = [str(user.get(k, "")) for k in ("username", "name", "email") if user.get(k)]
            score = await asyncio.to_thread(_zxcvbn_score, password, hints)
            if score < c.zxcvbn_score_threshold:
                problems.append("Password is too weak: it is too easy to guess.")
        if problems:
            return kinds.Verdict(False, [c.error_message] if c.error_message else problems)
        return kinds.Verdict(True)


def _zxcvbn_score(password: str, hints: list[str]) -> int:
    """zxcvbn's 0-4 score (about 0.1 s of CPU, hence a thread). zxcvbn refuses passwords over 72
    characters; what lies beyond that only makes a password harder to guess, so the first 72 are
    scored."""
    import zxcvbn

    score: int = zxcvbn.zxcvbn(password[:ZXCVBN_MAX], user_inputs=[h[:100] for h in hints])["score"]
    return score


class ExpiryConfig(kinds.PolicyConfig):
    days: Annotated[int, Field(ge=1, le=36500)] = 90
    deny_only: bool = False


class PasswordExpiry(kinds.Kind):
    kind = "password_expiry"
    Config = ExpiryConfig

    async def evaluate(self, request: Request) -> kinds.Verdict:
        assert isinstance(self.config, ExpiryConfig)
        changed = (request.user or {}).get("password_change_date")
        if changed is None:
            return kinds.Verdict(True)
        if dt.datetime.now(dt.UTC) - changed > dt.timedelta(days=self.config.days):
            return kinds.Verdict(False, ["Password expired."])
        return kinds.Verdict(True)


class EventMatcherConfig(kinds.PolicyConfig):
    action: Annotated[str, Field(max_length=64)] | None = None
    app: Annotated[str, Field(max_length=200)] | None = None
    client_ip: Annotated[str, Field(max_length=45)] | None = None


class EventMatcher(kinds.Kind):
    kind = "event_matcher"
    Config = EventMatcherConfig

    async def evaluate(self, request: Request) -> kinds.Verdict:
        assert isinstance(self.config, EventMatcherConfig)
        event: dict[str, Any] = request.context.get("event") or {}
        if not event:
            return kinds.Verdict(False, ["No event to match."])
        wanted = {
            "action": self.config.action,
            "app": self.config.app,
            "client_ip": self.config.client_ip,
        }
        ok = all(value is None or event.get(key) == value for key, value in wanted.items())
        return kinds.Verdict(ok)


KINDS = (Password, PasswordExpiry, EventMatcher)
