"""Building blocks shared by every wire model: strict base classes, bounded strings, pagination."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializeAsAny,
    WithJsonSchema,
    model_validator,
)

MAX_ATTRIBUTES_BYTES = 64 * 1024
MAX_DEPTH = 16


def _check_text(value: Any, depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise ValueError("value is nested too deeply")
    if isinstance(value, str):
        # SECURITY: NUL bytes and lone surrogates cannot be stored by PostgreSQL; refuse them here.
        if "\x00" in value:
            raise ValueError("NUL characters are not allowed")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("invalid unicode (lone surrogate)") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, depth + 1)
            _check_text(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_text(item, depth + 1)


class Request(BaseModel):
    """Base of every request body: unknown fields are errors, text is storable."""

    model_config = ConfigDict(extra="forbid", str_max_length=65536)

    @model_validator(mode="before")
    @classmethod
    def _storable_text(cls, data: Any) -> Any:
        _check_text(data)
        return data


class Response(BaseModel):
    model_config = ConfigDict(from_attributes=False)


def _attributes(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value, default=str)) > MAX_ATTRIBUTES_BYTES:
        raise ValueError(f"attributes must be at most {MAX_ATTRIBUTES_BYTES} bytes as JSON")
    return value


Attributes = Annotated[dict[str, Any], AfterValidator(_attributes)]


def check_json_object(value: dict[str, Any], limit: int) -> dict[str, Any]:
    """`value` if it is at most `limit` bytes as compact JSON, without NaN or infinities
    (PostgreSQL's JSON types refuse them: they would fail at the store instead of here)."""
    try:
        size = len(json.dumps(value, allow_nan=False, separators=(",", ":")))
    except ValueError:
        raise ValueError("NaN and infinite numbers are not allowed") from None
    if size > limit:
        raise ValueError(f"must be at most {limit} bytes as JSON")
    return value


def _iso_text(value: Any) -> Any:
    # Pydantic would also take a number as a Unix time; the API speaks ISO 8601 only.
    if value is not None and not isinstance(value, str | dt.datetime):
        raise ValueError("Enter a date and time in ISO 8601 format.")
    return value


def _as_utc(value: dt.datetime) -> dt.datetime:
    """A naive time is UTC; every time is stored in UTC, so it must be representable there."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("Enter a date and time between the years 1 and 9999.") from None


IsoDateTime = Annotated[dt.datetime, BeforeValidator(_iso_text), AfterValidator(_as_utc)]
Slug = Annotated[
    str,
    Field(
        min_length=1,
        max_length=50,
        pattern=r"^[-a-zA-Z0-9_]+$",
        description="letters, digits, underscores or hyphens",
    ),
]


def _canonical_uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError("Must be a valid UUID.") from None


# A UUID on the wire: text in canonical form, described as `format: uuid` (authentik's schema).
Uuid = Annotated[str, AfterValidator(_canonical_uuid), Field(json_schema_extra={"format": "uuid"})]
Name = Annotated[str, Field(min_length=1, max_length=200)]
ShortText = Annotated[str, Field(max_length=200)]
LongText = Annotated[str, Field(max_length=5000)]
Url = Annotated[str, Field(max_length=2000)]


# An integer that authentik's schema describes as "integer or number" (its pagination fields).
Number = Annotated[int, WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "number"}]})]


class Pagination(Response):
    next: Number
    previous: Number
    count: Number
    current: Number
    total_pages: Number
    start_index: Number
    end_index: Number


class Paginated(Response):
    """A page of a listing; built from already validated models (`model_construct`)."""

    pagination: Pagination
    results: list[SerializeAsAny[BaseModel]]
    autocomplete: dict[str, Any] = Field(default_factory=dict)


class ErrorDetail(Response):
    detail: str


class ValidationErrorBody(Response):
    """400: keys are field names (or `non_field_errors`), values lists of messages."""

    model_config = ConfigDict(extra="allow")
    non_field_errors: list[str] | None = None
