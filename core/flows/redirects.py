"""Where a finished flow may send the browser: `next` is never an open redirect.

# SECURITY: only a path on this server ("/..." but not "//..." or "/\\...") or a URL that starts
# with an application's registered launch URL is accepted; anything else falls back to the portal.
"""

from __future__ import annotations

import urllib.parse

DEFAULT = "/if/user/"


def safe_next(value: str, allowed_prefixes: list[str]) -> str:
    if not value or len(value) > 2000 or any(c in value for c in "\r\n\t\x00\\"):
        return DEFAULT
    parsed = urllib.parse.urlsplit(value)
    if (
        not parsed.scheme
        and not parsed.netloc
        and value.startswith("/")
        and not value.startswith("//")
    ):
        return value
    if parsed.scheme in {"http", "https"} and parsed.netloc and "@" not in parsed.netloc:
        for prefix in allowed_prefixes:
            base = urllib.parse.urlsplit(prefix)
            if (base.scheme, base.netloc.lower()) == (
                parsed.scheme,
                parsed.netloc.lower(),
            ) and _within(parsed.path, base.path):
                return value
    return DEFAULT


def _within(path: str, base: str) -> bool:
    """`path` is `base` or below it: "/app" admits "/app" and "/app/x", not "/apps"."""
    base = base or "/"
    return path == base or path.startswith(base if base.endswith("/") else base + "/")
