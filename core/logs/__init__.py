"""Structured logging (structlog, JSON lines) with secret redaction.

# SECURITY: `redact` runs on every event before rendering; values under secret-looking keys are
# replaced, and known secret values registered with `register_secret` are masked wherever they
# appear, so that secrets never reach the log even when embedded in a message.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

MASK = "********"
_SECRET_KEY = re.compile(
    r"password|passwd|secret|private|credential|authorization|cookie|session_key"
    r"|(^|[_-])(pass|token|key|key_data|signature|otp|code)$",
    re.IGNORECASE,
)
_known: set[str] = set()


def register_secret(value: str) -> None:
    """Mask `value` wherever it appears in a log line (the secret key, bootstrap secrets)."""
    if len(value) >= 8:
        _known.add(value)


def is_secret_key(name: object) -> bool:
    """True for mapping keys whose values must never be logged or stored in events."""
    return bool(_SECRET_KEY.search(str(name)))


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _known:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {k: MASK if is_secret_key(k) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key != "event" and is_secret_key(key):
            event[key] = MASK
        else:
            event[key] = _scrub(event[key])
    return event


def request_id() -> str:
    """The id of the request being served (bound by the access log), or ""."""
    return str(structlog.contextvars.get_contextvars().get("request_id", ""))


def configure(level: str = "info") -> None:
    numeric = logging.DEBUG if level in {"trace", "debug"} else getattr(logging, level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    # A person at a terminal reads columns; anything else (a container's log collector) JSON.
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=True)
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    processors = [*shared, renderer]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Standard-library records (aiohttp, asyncio, alembic) go through the same chain as JSON.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                renderer,
            ],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    # aiohttp's own access log (ours is `app.access`); Alembic's plugin set-up and revision lines.
    for noisy in ("aiohttp.access", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
