"""A user's `avatar` as authentik computes it: a picture URL or a `data:` URI.

authentik walks its `avatars` setting, a comma-separated list of modes, and takes the first that
gives something: `none` (the default picture), `initials` (an SVG of the user's initials on a
colour drawn from their name), `attributes.<path>` (a URL kept in the user's attributes), or
`gravatar` (the user's Gravatar picture, when Gravatar has one for the address). Its default is
`gravatar,initials`. Tessera makes no request to Gravatar, so its default is the mode authentik
falls back to whenever Gravatar has no picture for the address: `initials`.

Called by `identity.users` when it serializes users; pure functions, no I/O.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from typing import Any
from xml.sax.saxutils import escape

DEFAULT_MODES = "initials"
DEFAULT_PICTURE = "/static/dist/assets/images/user_default.png"  # authentik's `none`
SIZE = 64


def avatar(row: dict[str, Any], modes: str = DEFAULT_MODES) -> str:
    """The avatar of a user row under `modes` (authentik's `avatars` setting)."""
    for mode in modes.split(","):
        mode = mode.strip()
        found: str | None = None
        if mode == "none":
            found = DEFAULT_PICTURE
        elif mode == "initials":
            found = initials_uri(_display_name(row))
        elif mode.startswith("attributes."):
            found = _attribute(row.get("attributes") or {}, mode.removeprefix("attributes."))
        if found:
            return found
    return DEFAULT_PICTURE


def _display_name(row: dict[str, Any]) -> str:
    """The name the initials come from: the display name, else the username, else `a k`."""
    return str(row.get("name") or "").strip() or str(row.get("username") or "").strip() or "a k"


def _attribute(attributes: dict[str, Any], path: str) -> str | None:
    """A string at a dotted path of the attributes (`attributes.avatar.url`), or None."""
    value: Any = attributes
    for key in path.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value if isinstance(value, str) and value else None


def initials(name: str) -> str:
    """Up to two letters: the first two of a single word, else the first letters of the first
    and last words; upper case."""
    words = name.split()
    if len(words) == 1:
        return words[0][:2].upper()
    return (words[0][0] + words[-1][0]).upper()


def colours(name: str) -> tuple[str, str]:
    """Background and text colour (hex, no `#`) drawn from the name: each channel kept between
    55 and 200 so that no background is too dark or too light, the text black or white by the
    background's luminance."""
    value = int(hashlib.md5(name.lower().encode(), usedforsecurity=False).hexdigest(), 16)
    value %= 0xFFFFFF
    red, green, blue = (min(max((value >> shift) & 0xFF, 55), 200) for shift in (16, 8, 0))
    text = "000" if red * 0.299 + green * 0.587 + blue * 0.114 > 186 else "fff"
    return f"{red:02x}{green:02x}{blue:02x}", text


@functools.lru_cache(maxsize=4096)
def initials_uri(name: str) -> str:
    """The initials of `name` as an SVG `data:` URI (the same name always gives the same URI)."""
    background, text = colours(name)
    half = SIZE // 2
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{SIZE}px" height="{SIZE}px" '
        f'viewBox="0 0 {SIZE} {SIZE}" version="1.1">'
        f'<rect fill="#{background}" width="{SIZE}" height="{SIZE}" cx="{half}" cy="{half}" '
        f'r="{half}"/>'
        f'<text x="50%" y="50%" fill="#{text}" style="color: #{text}; line-height: 1; '
        "font-family: 'RedHatText','Overpass',overpass,helvetica,arial,sans-serif; \" "
        'alignment-baseline="middle" dominant-baseline="middle" text-anchor="middle" '
        f'font-size="{round(SIZE * 0.4375)}" font-weight="400" dy=".1em">'
        f"{escape(initials(name))}</text></svg>"
    )
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
