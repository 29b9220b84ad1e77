"""The HTTP edge of the API: JSON bodies in, JSON problems out.

`read_body` turns a request into a validated pydantic model (415 for a wrong content type, 413 for
an oversized body, 400 for malformed JSON or invalid fields). `error_middleware` renders every
error in its wire form; only here does an unknown exception become a 500, with a request id.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

import pydantic
import structlog
from aiohttp import web

from tessera.core import errors, logs, store

log = structlog.get_logger(__name__)
M = TypeVar("M", bound=pydantic.BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_MESSAGES = {
    "missing": "This field is required.",
    "extra_forbidden": "Unexpected field.",
}


def dumps(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


def respond(value: Any, status: int = 200) -> web.Response:
    if isinstance(value, pydantic.BaseModel):
        text = value.model_dump_json()
    elif isinstance(value, list) and value and isinstance(value[0], pydantic.BaseModel):
        text = "[" + ",".join(v.model_dump_json() for v in value) + "]"
    else:
        text = dumps(value)
    return web.Response(text=text, status=status, content_type="application/json")


def field_errors(exc: pydantic.ValidationError) -> errors.ValidationFailed:
    fields: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"] if not str(p).startswith("function-")]
        name = ".".join(loc) if loc else "non_field_errors"
        message = _MESSAGES.get(err["type"], err["msg"])
        fields.setdefault(name, []).append(message)
    return errors.ValidationFailed(fields)


async def read_json(request: web.Request) -> Any:
    if request.content_type != "application/json":
        raise errors.UnsupportedMediaType(
            f'Unsupported media type "{request.content_type}" in request.'
        )
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise errors.PayloadTooLarge("Request body is too large.") from None
    try:
        return json.loads(raw) if raw else {}
    except (ValueError, RecursionError):
        raise errors.BadRequest("JSON parse error.") from None


async def read_body(
    request: web.Request, model: type[M], ignore: Collection[str] = frozenset()
) -> M:
    """Read and validate the JSON body with `model` (`ignore` as for `validate`)."""
    return validate(model, await read_json(request), ignore=ignore)


def validate(
    model: type[M],
    data: Any,
    base: dict[str, Any] | None = None,
    ignore: Collection[str] = frozenset(),
) -> M:
    """Validate parsed JSON with `model`; `base` holds the current values for a PATCH.

    Top-level keys in `ignore` (a resource's read-only fields, `resource.read_only_fields`) are
    dropped unread before validation; any other key the model does not know is an error.
    """
    if not isinstance(data, dict):
        raise errors.ValidationFailed.one("non_field_errors", "Expected a JSON object.")
    if ignore:
        # SECURITY: dropped, never validated nor passed on: a read-only field cannot be set here.
        data = {k: v for k, v in data.items() if k not in ignore}
    if base is not None:
        unknown = [k for k in data if k not in model.model_fields]
        if unknown:
            raise errors.ValidationFailed({k: [_MESSAGES["extra_forbidden"]] for k in unknown})
        data = {**base, **data}
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise field_errors(exc) from None


def _problem(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(text=dumps(body), status=status, content_type="application/json")


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except errors.ApiError as exc:
        return _problem(exc.status, exc.body())
    except errors.Conflict as exc:
        return _problem(400, {exc.field: [exc.message]})
    except errors.NotFound:
        return _problem(404, {"detail": "Not found."})
    except store.StoreUnavailable as exc:
        # SECURITY: the database's own words (hosts, users) go to the log, not to the caller.
        log.warning("store unavailable", reason=str(exc), path=request.path)
        return _problem(503, {"detail": "The store is unavailable; try again shortly."})
    except web.HTTPRequestEntityTooLarge:
        return _problem(413, {"detail": "Request body is too large."})
    except web.HTTPException as exc:
        if exc.status >= 400 and request.path.startswith("/api/"):
            return _problem(exc.status, {"detail": exc.reason})
        raise
    except Exception:  # the edge: anything unexpected becomes a 500 with a request id
        request_id = logs.request_id() or uuid.uuid4().hex  # the access log's, when bound
        log.exception("unhandled error", request_id=request_id, path=request.path)
        return _problem(500, {"detail": "Internal server error.", "request_id": request_id})
