"""Structured logging of an outpost process (structlog, JSON lines on stderr), token masked.

The core's logging lives below the core's layers, which the outposts do not import; this is
the outposts' own, with the same shape of line. # SECURITY: the outpost's token, and values
under secret-looking keys, are masked in every line.
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
    r"password|secret|private|authorization|cookie|(^|[_-])(token|key)$", re.IGNORECASE
)


class _Redact:
    def __init__(self, secrets: list[str]) -> None:
        self.secrets = [s for s in secrets if len(s) >= 8]

    def scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                value = value.replace(secret, MASK)
            return value
        if isinstance(value, dict):
            return {
                k: MASK if _SECRET_KEY.search(str(k)) else self.scrub(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.scrub(v) for v in value]
        return value

    def __call__(
        self, _logger: Any, _method: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event):
            if key != "event" and _SECRET_KEY.search(key):
                event[key] = MASK
            else:
                event[key] = self.scrub(event[key])
        return event


def configure(level: str = "info", secrets: list[str] | None = None) -> None:
    """JSON lines at `level` and above; every string in `secrets` masked wherever it appears."""
    numeric = logging.DEBUG if level in {"trace", "debug"} else getattr(logging, level.upper())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _Redact(secrets or []),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(numeric, logging.INFO))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
