"""A User-Agent header read as authentik shows it on a session: browser, operating system and
device, each with a family and version parts (the fields of ua-parser's result).

Called by the authenticated-sessions API; pure functions over the header string. Only the common
browsers and systems are named; anything else is "Other", as ua-parser reports what it does not
know. The header is the client's claim: this is a label for people, never a security decision.
"""

from __future__ import annotations

import re
from typing import Any

MAX_LENGTH = 512  # sessions store at most this much of the header

# (family, pattern) in order: the first match names the browser. Chromium-based browsers also
# say "Chrome" and "Safari", so they come first; Safari names its version in "Version/".
_BROWSERS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (family, re.compile(pattern))
    for family, pattern in (
        ("Edge", r"Edg(?:e|A|iOS)?/(\d+)(?:\.(\d+))?(?:\.(\d+))?"),
        ("Opera", r"OPR/(\d+)(?:\.(\d+))?(?:\.(\d+))?"),
        ("Chrome Mobile iOS", r"CriOS/(\d+)(?:\.(\d+))?(?:\.(\d+))?"),
        ("Firefox iOS", r"FxiOS/(\d+)(?:\.(\d+))?(?:\.(\d+))?"),
        ("Chrome Mobile", r"Chrome/(\d+)(?:\.(\d+))?(?:\.(\d+))?.*Mobile"),
        ("Chromium", r"Chromium/(\d+)(?:\.(\d+))?(?:\.(\d+))?"),
        ("Chrome", r"Chrome/(\d+)(?:\.(\d+))?(?:\.(\d+))?"),
        ("Firefox Mobile", r"Mobile.*Firefox/(\d+)(?:\.(\d+))?(?:\.(\d+))?"),
        ("Firefox", r"Firefox/(\d+)(?:\.(\d+))?(?:\.(\d+))?"),
        ("Mobile Safari", r"Version/(\d+)(?:\.(\d+))?(?:\.(\d+))?.*Mobile.*Safari/"),
        ("Safari", r"Version/(\d+)(?:\.(\d+))?(?:\.(\d+))?.*Safari/"),
        ("curl", r"^curl/(\d+)(?:\.(\d+))?(?:\.(\d+))?"),
        ("Python Requests", r"python-requests/(\d+)(?:\.(\d+))?(?:\.(\d+))?"),
    )
)
_SYSTEMS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (family, re.compile(pattern))
    for family, pattern in (
        ("iOS", r"(?:iPhone|CPU) OS (\d+)(?:_(\d+))?(?:_(\d+))?"),
        ("Android", r"Android (\d+)(?:\.(\d+))?(?:\.(\d+))?"),
        ("Windows", r"Windows NT (\d+)(?:\.(\d+))?()"),
        ("Mac OS X", r"Mac OS X (\d+)(?:[_.](\d+))?(?:[_.](\d+))?"),
        ("Chrome OS", r"CrOS \S+ (\d+)(?:\.(\d+))?(?:\.(\d+))?"),
        ("Ubuntu", r"Ubuntu()()()"),
        ("Linux", r"Linux()()()"),
    )
)
# Windows NT versions as Windows names them (ua-parser reports "10" for NT 10.0, and so on).
_WINDOWS = {("10", "0"): "10", ("6", "3"): "8.1", ("6", "2"): "8", ("6", "1"): "7"}
_DEVICES: tuple[tuple[str, str | None, str | None, re.Pattern[str]], ...] = (
    ("iPhone", "Apple", "iPhone", re.compile(r"iPhone")),
    ("iPad", "Apple", "iPad", re.compile(r"iPad")),
    ("Mac", "Apple", "Mac", re.compile(r"Macintosh")),
    ("Generic Smartphone", "Generic", "Smartphone", re.compile(r"Android.*Mobile")),
    ("Generic Tablet", "Generic", "Tablet", re.compile(r"Android")),
)


def _parts(match: re.Match[str]) -> list[str | None]:
    return [g or None for g in match.groups()] + [None] * (3 - len(match.groups()))


def _browser(header: str) -> dict[str, str]:
    for family, pattern in _BROWSERS:
        if match := pattern.search(header):
            major, minor, patch = _parts(match)[:3]
            return {
                "family": family,
                "major": major or "",
                "minor": minor or "",
                "patch": patch or "",
            }
    return {"family": "Other", "major": "", "minor": "", "patch": ""}


def _system(header: str) -> dict[str, str | None]:
    for family, pattern in _SYSTEMS:
        if match := pattern.search(header):
            major, minor, patch = _parts(match)[:3]
            if family == "Windows":
                major, minor = _WINDOWS.get((major or "", minor or ""), major), None
            return {
                "family": family,
                "major": major,
                "minor": minor,
                "patch": patch,
                "patch_minor": None,
            }
    return {"family": "Other", "major": None, "minor": None, "patch": None, "patch_minor": None}


def _device(header: str) -> dict[str, str | None]:
    for family, brand, model, pattern in _DEVICES:
        if pattern.search(header):
            return {"brand": brand, "family": family, "model": model}
    return {"brand": None, "family": "Other", "model": None}


def parse(header: str) -> dict[str, Any]:
    """`{"device", "os", "user_agent", "string"}` of a User-Agent header, as authentik shows it."""
    header = header[:MAX_LENGTH]
    return {
        "device": _device(header),
        "os": _system(header),
        "user_agent": _browser(header),
        "string": header,
    }
