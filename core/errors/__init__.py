"""Tessera's error families; each knows its wire form.

`TesseraError` is the root. `ApiError` and its subclasses render as the admin API's JSON problem
bodies (DRF's shapes: `{"field": ["message"]}`, `{"detail": "..."}`). The store raises the sentinels
`NotFound` and `Conflict`, which the API edge maps to 404 and 400. Only the HTTP edge turns an
unknown exception into a 500 with a request id.
"""

from __future__ import annotations

from typing import Any


class TesseraError(Exception):
    """Root of every error Tessera raises on purpose."""


class NotFound(TesseraError):
    """The object does not exist (or is not visible to the caller)."""


class Conflict(TesseraError):
    """A uniqueness rule was violated; `field` names the input field when known."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class ApiError(TesseraError):
    """An error with an HTTP status and a JSON body."""

    status = 400

    def body(self) -> dict[str, Any]:
        return {"detail": str(self)}


class ValidationFailed(ApiError):
    """400 with DRF's field-keyed body: `{"field": ["message", ...]}`."""

    status = 400

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in fields.items()))
        self.fields = fields

    @classmethod
    def one(cls, field: str, message: str) -> ValidationFailed:
        return cls({field: [message]})

    def body(self) -> dict[str, Any]:
        return dict(self.fields)


class BadRequest(ApiError):
    status = 400


class NotAuthenticated(ApiError):
    status = 401


class PermissionDenied(ApiError):
    status = 403


class ObjectNotFound(ApiError):
    status = 404


class MethodNotAllowed(ApiError):
    status = 405


class ConflictError(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class ServiceUnavailable(ApiError):
    status = 503
