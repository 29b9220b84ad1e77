"""Structured logging (structlog, JSON lines) with secret redaction.

# SECURITY: `redact` runs on every event before rendering; values under secret-looking keys are
# replaced, and known secret values registered with `register_secret` are masked wherever they
# appear, so that secrets never reach the log even when embedded in a message.
"""

from __future__ import annotations

import datetime as dt
import json
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


class _Direct:
    """What `configure` set up, for `write_direct`: the level, and the processor list that marks
    the configuration as this module's JSON one (tests and tools may configure structlog
    otherwise, and then every line goes through their chain)."""

    level = logging.INFO
    processors: list[Any] | None = None


def enabled(level: int) -> bool:
    """Whether a line at `level` would be written (under `configure`'s level; any other
    configuration of structlog decides for itself, so: yes)."""
    if _Direct.processors is None or structlog.get_config()["processors"] is not _Direct.processors:
        return True
    return level >= _Direct.level


def write_direct(level: int, event: str, fields: dict[str, Any]) -> bool:
    """Write one JSON line as the configured chain would, without running it; False when the
    chain must render it (a terminal's console renderer, or a configuration not ours).

    For the access log, a line per request on the hot paths: the chain (context variables, a
    timestamp, redaction over every key, rendering, a fresh bound logger per call) costs about
    as much as a userinfo request itself. `fields` must hold no secret under its keys (they are
    fixed by the caller); string values are still scrubbed of registered secrets.
    """
    if _Direct.processors is None or structlog.get_config()["processors"] is not _Direct.processors:
        return False
    if level < _Direct.level:
        return True
    line = {key: _scrub(value) for key, value in fields.items()}
    line |= structlog.contextvars.get_contextvars()
    line["event"] = event
    line["level"] = logging.getLevelName(level).lower()
    line["timestamp"] = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    sys.stderr.write(json.dumps(line) + "\n")
    return True


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
    _Direct.level = numeric
    _Direct.processors = processors if not sys.stderr.isatty() else None
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
