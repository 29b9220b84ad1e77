"""Policy kinds that check facts: password, password expiry and event matcher.

- `password`: length and character classes (`check_static_rules`; symbols are the characters of
  `symbol_charset`), a zxcvbn strength score of the password being set (the prompt field
  `password` in the flow context, as authentik's password policy reads it) and Have I Been
  Pwned's range check (`check_have_i_been_pwned`: fails when the password was seen in breaches
  more than `hibp_allowed_count` times, as authentik's; `pwned`). The check needs the server's
  outbound calls (`TESSERA_OUTBOUND__ENABLED`): when they are off the API refuses a policy
  asking for it and turns the default off (`for_server`), and a stored one fails. SECURITY: the
  check fails closed: when the range service cannot be reached or answers nonsense, the policy
  fails with a message saying so and logs a warning; it never passes a password it could not
  check.
- `password_expiry`: fails when the user's password is older than `days`; unless `deny_only`,
  the password is made unusable too (the user must recover it), as in authentik.
- `event_matcher`: passes for an event in the context matching action, app, model
  (`<app>.<model_name>` of the event's `context.model`) and client IP, each one of authentik's
  names (`wire.event_names`). An event's `app` is the Tessera module that recorded it; `app`
  matches it when it is that module's authentik app (`events.origins.label`). authentik's
  `query` (an event search) is not implemented: only an empty one is accepted.

Reputation has its own kind (`reputation.py`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Annotated, Any

import pydantic
import structlog
from pydantic import Field

from tessera.core import config, crypto, errors, events
from tessera.core.identity import users
from tessera.core.policies import kinds, pwned
from tessera.core.wire import event_names

if TYPE_CHECKING:
    from tessera.core.policies.engine import Request

ZXCVBN_MAX = 72  # characters zxcvbn accepts


# authentik's default `symbol_charset` (ASCII punctuation and the space; the backslash twice).
SYMBOL_CHARSET = r"!\"#$%&'()*+,-./:;<=>?@[\]^_`{|}~ "
HIBP_FIELD = "check_have_i_been_pwned"
HIBP_OFF = (
    "This server makes no outbound calls (TESSERA_OUTBOUND__ENABLED is false), so it cannot "
    "check passwords against Have I Been Pwned; set check_have_i_been_pwned to false."
)
HIBP_UNAVAILABLE = (
    "The password could not be checked against known data breaches right now; try again later."
)
log = structlog.get_logger(__name__)


class PasswordConfig(kinds.PolicyConfig):
    password_field: Annotated[str, Field(max_length=100)] = "password"  # noqa: S105 - a field
    length_min: Annotated[int, Field(ge=0, le=1024)] = 8
    amount_uppercase: Annotated[int, Field(ge=0, le=100)] = 0
    amount_lowercase: Annotated[int, Field(ge=0, le=100)] = 0
    amount_digits: Annotated[int, Field(ge=0, le=100)] = 0
    amount_symbols: Annotated[int, Field(ge=0, le=100)] = 0
    symbol_charset: Annotated[str, Field(max_length=1024)] = SYMBOL_CHARSET
    check_static_rules: bool = True
    check_have_i_been_pwned: bool = True
    hibp_allowed_count: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
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
        problems = _static_problems(c, password) if c.check_static_rules else []
        entries: list[dict[str, Any]] = []
        if c.check_have_i_been_pwned and password:
            outbound = request.db.settings.outbound if request.db is not None else None
            problem = await _breached(c, outbound, password, entries)
            if problem:
                problems.append(problem)
        if c.check_zxcvbn and password:
            user = request.user or {}
            hints = [str(user.get(k, "")) for k in ("username", "name", "email") if user.get(k)]
            score = await crypto.work.run(_zxcvbn_score, password, hints)
            if score < c.zxcvbn_score_threshold:
                problems.append("Password is too weak: it is too easy to guess.")
        if problems:
            shown = [c.error_message] if c.error_message else problems
            return kinds.Verdict(False, shown, entries)
        return kinds.Verdict(True, [], entries)

    @classmethod
    def for_server(
        cls, values: dict[str, Any], given: AbstractSet[str], settings: config.Settings
    ) -> dict[str, Any]:
        """Without outbound calls, the breach check is refused when asked for and off when
        only defaulted (authentik's default is on)."""
        if values.get(HIBP_FIELD) and not settings.outbound.enabled:
            if HIBP_FIELD in given:
                raise errors.ValidationFailed.one(HIBP_FIELD, HIBP_OFF)
            return {**values, HIBP_FIELD: False}
        return values


async def _breached(
    c: PasswordConfig,
    outbound: config.Outbound | None,
    password: str,
    entries: list[dict[str, Any]],
) -> str:
    """What the breach check finds wrong with `password` ("" when nothing); fails closed."""
    if outbound is None or not outbound.enabled:
        entries.append(_entry("warning", HIBP_OFF))
        return HIBP_OFF
    try:
        seen = await pwned.count(outbound, password)
    except pwned.Unavailable as exc:
        log.warning("breached password check failed", reason=str(exc))
        entries.append(_entry("warning", f"Have I Been Pwned check failed: {exc}"))
        return HIBP_UNAVAILABLE
    if seen > c.hibp_allowed_count:  # authentik's rule: more than the allowed count fails
        return f"Password exists on {seen} online lists."
    return ""


def _static_problems(c: PasswordConfig, password: str) -> list[str]:
    """What the length and character-class rules find wrong with `password`."""
    problems = []
    if len(password) < c.length_min:
        problems.append(f"Password must be at least {c.length_min} characters long.")
    symbols = sum(1 for char in password if char in c.symbol_charset)
    for count, found, what in (
        (c.amount_uppercase, len(re.findall(r"[A-Z]", password)), "uppercase letters"),
        (c.amount_lowercase, len(re.findall(r"[a-z]", password)), "lowercase letters"),
        (c.amount_digits, len(re.findall(r"[0-9]", password)), "digits"),
        (c.amount_symbols, symbols, "symbols"),
    ):
        if found < count:
            problems.append(f"Password needs at least {count} {what}.")
    return problems


def _entry(level: str, event: str) -> dict[str, Any]:
    return {
        "timestamp": dt.datetime.now(dt.UTC),
        "log_level": level,
        "logger": "",
        "event": event,
        "attributes": {},
    }


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
        user = request.user or {}
        changed = user.get("password_change_date")
        if changed is None:
            return kinds.Verdict(True)
        age = dt.datetime.now(dt.UTC) - changed
        if age <= dt.timedelta(days=self.config.days):
            return kinds.Verdict(True)
        if self.config.deny_only:
            return kinds.Verdict(False, ["Password has expired."])
        if request.db is None:
            raise kinds.PolicyError("the password expiry policy needs the store")
        # As authentik: the expired password stops working until the user sets a new one.
        async with request.db.transaction() as tx:
            await users.set_unusable_password(tx, user["pk"])
        days = (age - dt.timedelta(days=self.config.days)).days
        return kinds.Verdict(
            False, [f"Password expired {days} days ago. Please update your password."]
        )


class EventMatcherConfig(kinds.PolicyConfig):
    action: event_names.EventAction | None = None
    app: event_names.EventApp | None = None
    model: event_names.EventModel | None = None
    client_ip: Annotated[str, Field(max_length=45)] | None = None
    # authentik's event search query; Tessera matches on the fields above only.
    query: Annotated[str, Field(max_length=1000)] | None = None

    @pydantic.field_validator("query")
    @classmethod
    def _no_query(cls, value: str | None) -> None:
        if value:
            raise ValueError("Tessera does not match events by query; leave it empty.")
        return None


class EventMatcher(kinds.Kind):
    kind = "event_matcher"
    Config = EventMatcherConfig

    async def evaluate(self, request: Request) -> kinds.Verdict:
        assert isinstance(self.config, EventMatcherConfig)
        event: dict[str, Any] = request.context.get("event") or {}
        if not event:
            return kinds.Verdict(False, ["No event to match."])
        wanted = {"action": self.config.action, "client_ip": self.config.client_ip}
        ok = all(value is None or event.get(key) == value for key, value in wanted.items())
        if self.config.app is not None:
            origin = str(event.get("app", ""))
            ok = ok and self.config.app in (origin, events.origins.label(origin))
        if self.config.model is not None:
            ok = ok and _event_model(event) == self.config.model
        return kinds.Verdict(ok)


def _event_model(event: dict[str, Any]) -> str:
    """`<app>.<model_name>` of the model an event names in its context (authentik's form)."""
    context = event.get("context")
    model = context.get("model") if isinstance(context, dict) else None
    if not isinstance(model, dict):
        model = {}
    return f"{model.get('app')}.{model.get('model_name')}"


KINDS = (Password, PasswordExpiry, EventMatcher)
