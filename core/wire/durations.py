"""authentik's duration strings (`hours=2;minutes=30`, `days=30`, `seconds=0`), parsed in one place.

authentik keeps every configurable duration (token validities, session length, consent expiry) as
semicolon-separated `unit=number` pairs; units are weeks, days, hours, minutes, seconds,
milliseconds and microseconds, numbers may have a fraction. The wire models of the OAuth2
provider and of the stages use the annotated types made here; the code that acts on a value
calls `parse`. We are stricter than authentik, which skips unknown units and lets the last of
two equal units win: an unknown or repeated unit, a negative or non-ASCII number, or a value
beyond the field's bound is a 400 naming the field, never a 500 (no `OverflowError` reaches
`datetime.timedelta`, whose own limit is far above every bound here).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticCustomError

UNITS = ("weeks", "days", "hours", "minutes", "seconds", "milliseconds", "microseconds")
_SECONDS = {
    "weeks": 604800.0,
    "days": 86400.0,
    "hours": 3600.0,
    "minutes": 60.0,
    "seconds": 1.0,
    "milliseconds": 0.001,
    "microseconds": 0.000001,
}
_PART = re.compile(r"([a-z]+)=([0-9]{1,12}(?:\.[0-9]{1,6})?)", re.ASCII)
MAX_LENGTH = 100
EXAMPLE = "Enter a duration such as 'hours=1' or 'days=30;hours=2'."


def _invalid(message: str) -> PydanticCustomError:
    """A ValueError that pydantic reports as the message alone (no "Value error, " prefix);
    the text travels in the context, so braces a client typed are never a template."""
    return PydanticCustomError("duration", "{message}", {"message": message})


def _parts(value: str, *, strict: bool = True) -> list[tuple[str, float]]:
    parts = [p.strip() for p in value.split(";") if p.strip()]
    if not parts or len(value) > MAX_LENGTH:
        raise _invalid(EXAMPLE)
    found: list[tuple[str, float]] = []
    for part in parts:
        match = _PART.fullmatch(part.lower())
        if match is None and "=-" in part.replace(" ", ""):
            raise _invalid("A duration cannot be negative.")
        if match is None or match.group(1) not in _SECONDS:
            raise _invalid(
                f"Invalid duration part {part[:40]!r}; use unit=number with a unit of "
                f"{', '.join(UNITS)} (e.g. 'minutes=5')."
            )
        if strict and match.group(1) in (unit for unit, _ in found):
            raise _invalid(f"The unit {match.group(1)!r} appears twice.")
        found.append((match.group(1), float(match.group(2))))
    return found


def seconds(value: str, *, strict: bool = True) -> float:
    """The duration in seconds (ValueError when `value` is not a duration string)."""
    return sum(amount * _SECONDS[unit] for unit, amount in _parts(value, strict=strict))


def parse(value: str) -> dt.timedelta:
    """The duration of a stored value (checked against its bounds when it was written; a unit
    given twice, which older versions stored, adds up)."""
    return dt.timedelta(seconds=seconds(value, strict=False))


def normal(value: str) -> str:
    """The string as it is stored and shown: lower-case units, no blanks, order kept."""
    return ";".join(f"{unit}={_number(amount)}" for unit, amount in _parts(value))


def _number(amount: float) -> str:
    return str(int(amount)) if amount.is_integer() else repr(amount)


def from_seconds(value: int) -> str:
    """A plain number of seconds (the form older Tessera configs and clients use)."""
    return f"seconds={value}"


def bounded(low: float, high: float, *, strict_low: bool = False) -> Callable[[str], str]:
    """A validator of a duration string between `low` and `high` seconds; it returns the
    normal form (`normal`)."""

    def check(value: str) -> str:
        total = seconds(value)
        if total < low or (strict_low and total == low) or total > high:
            raise _invalid(f"A duration must be {_range(low, high, strict_low)}.")
        return normal(value)

    return check


def _range(low: float, high: float, strict_low: bool) -> str:
    top = f"at most {high / 86400:g} days"
    if low == 0:
        return f"positive and {top}" if strict_low else f"zero or more and {top}"
    return f"at least {low:g} seconds and {top}"


def legacy_seconds(value: Any) -> Any:
    """Before-validator: an integer number of seconds (Tessera's form before authentik's
    strings, still in stored configs and older clients) becomes `seconds=<n>`."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise _invalid("A duration cannot be negative.")
        return from_seconds(value)
    return value


# authentik's provider token validities: positive, at most ten years.
Positive = Annotated[
    str, Field(max_length=MAX_LENGTH), AfterValidator(bounded(0, 3650 * 86400, strict_low=True))
]

# A stage setting of authentik's form whose older stored configs hold seconds: 0 to 366 days
# (user_login's session_duration and remember_me_offset, authenticator_validate's
# last_auth_threshold).
UpToAYear = Annotated[
    str,
    BeforeValidator(legacy_seconds),
    Field(max_length=MAX_LENGTH),
    AfterValidator(bounded(0, 366 * 86400)),
]
