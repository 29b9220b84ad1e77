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
    r"pass(word)?|secret|token|api[-_]?key|^key$|_key$|private|credential|authorization|cookie",
    re.IGNORECASE,
)
_known: set[str] = set()


def register_secret(value: str) -> None:
    """Mask `value` wherever it appears in a log line (the secret key, bootstrap secrets)."""
    if len(value) >= 8:
        _known.add(value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _known:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {k: MASK if _SECRET_KEY.search(str(k)) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key != "event" and _SECRET_KEY.search(key):
            event[key] = MASK
        else:
            event[key] = _scrub(event[key])
    return event


class _ScrubFilter(logging.Filter):
    """Masks known secrets in standard-library log records (aiohttp, asyncio, alembic)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _known:
            record.msg = _scrub(record.getMessage())
            record.args = None
        return True


def configure(level: str = "info") -> None:
    numeric = logging.DEBUG if level in {"trace", "debug"} else getattr(logging, level.upper())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
        structlog.processors.JSONRenderer(),
    ]
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    handler.addFilter(_ScrubFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    for noisy in ("aiohttp.access",):
        logging.getLogger(noisy).setLevel(logging.WARNING)
