"""The session cookie and the login state, sealed with keys derived from `cookie_secret`.

The session lives in the browser, not in the outpost: its cookie holds the access token the core
issued at login (which carries every claim the identity headers need, and the core session's id
hash `sid`), sealed with AES-256-GCM under a key derived from the provider's `cookie_secret`.
Every replica holds the same secret, so any replica opens any cookie and a restart loses
nothing: no sticky sessions, no shared store (authentik's standalone outposts keep sessions in
`/dev/shm`). A sealed value too long for one cookie is split over `<name>`, `<name>_1`, ...

The login state (`state` in the authorization request) is an HMAC-SHA256-signed value naming the
redirect target, an expiry and a hash of the browser's binding cookie; `handlers` makes it
single-use. `handlers` and `sessions` call this module.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

VERSION = b"\x01"
CHUNK = 3800  # characters of one cookie value; browsers keep 4096 bytes with the name
MAX_CHUNKS = 4
MAX_SEALED = CHUNK * MAX_CHUNKS
STATE_TTL = 600
MAX_STATE = 4096


class Unreadable(ValueError):
    """A cookie or state that was not sealed by this provider's secret, or is damaged."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise Unreadable("not base64url") from exc


def seal(key: bytes, name: str, payload: Mapping[str, Any]) -> str:
    """Compress, then encrypt and authenticate `payload`; the cookie name is bound as AAD, so a
    value moved to another provider's cookie does not open."""
    raw = zlib.compress(json.dumps(payload, separators=(",", ":")).encode(), 6)
    nonce = os.urandom(12)
    return _b64(VERSION + nonce + AESGCM(key).encrypt(nonce, raw, name.encode()))


def unseal(key: bytes, name: str, value: str) -> dict[str, Any]:
    if not value or len(value) > MAX_SEALED:
        raise Unreadable("empty or oversized")
    blob = _unb64(value)
    if len(blob) < 1 + 12 + 16 or blob[:1] != VERSION:
        raise Unreadable("unknown format")
    try:
        raw = AESGCM(key).decrypt(blob[1:13], blob[13:], name.encode())
        decompressor = zlib.decompressobj()
        text = decompressor.decompress(raw, 64 * 1024)
        if decompressor.unconsumed_tail:
            raise Unreadable("payload too large")
        payload = json.loads(text)
    except (InvalidTag, zlib.error, ValueError) as exc:
        raise Unreadable("does not open") from exc
    if not isinstance(payload, dict):
        raise Unreadable("not an object")
    return payload


def chunk_names(name: str) -> list[str]:
    return [name] + [f"{name}_{n}" for n in range(1, MAX_CHUNKS)]


def split(name: str, sealed: str) -> dict[str, str]:
    """The cookies that carry `sealed`: one when it fits, else `<count>.<part>` then parts."""
    if len(sealed) <= CHUNK:
        return {name: sealed}
    parts = [sealed[i : i + CHUNK] for i in range(0, len(sealed), CHUNK)]
    if len(parts) > MAX_CHUNKS:
        raise ValueError("session too large for cookies")
    names = chunk_names(name)
    out = {names[0]: f"{len(parts)}.{parts[0]}"}
    out.update({names[i]: part for i, part in enumerate(parts) if i})
    return out


def parse_cookies(header: str | None, name: str) -> dict[str, str]:
    """The cookies of a request's `Cookie` header, as `name=value` pairs (the last of a repeated
    name wins, as in aiohttp's parser); empty at once when the header does not mention `name`.

    The forward-auth check reads its session cookie on every request, and aiohttp's general
    parser (quoted values, escapes, a regular expression over the whole header) cost a fifth of
    a check. Session values are sealed base64url text: a value this split reads differently
    from aiohttp (a quoted one, say) does not unseal, so the request is simply not
    authenticated by it."""
    if not header or name not in header:
        return {}
    out: dict[str, str] = {}
    for part in header.split(";"):
        key, eq, value = part.strip().partition("=")
        if eq:
            out[key] = value
    return out


def join(name: str, cookies: Mapping[str, str]) -> str | None:
    """The sealed value spread over the request's cookies, or None when absent or damaged."""
    first = cookies.get(name)
    if not first:
        return None
    count, dot, rest = first.partition(".")
    if not dot:
        return first
    if not count.isdigit() or not 2 <= int(count) <= MAX_CHUNKS:
        return None
    parts = [rest]
    for extra in chunk_names(name)[1 : int(count)]:
        part = cookies.get(extra)
        if not part:
            return None
        parts.append(part)
    return "".join(parts)


# Login state ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class State:
    nonce: str
    redirect: str
    binding: str  # sha256 of the browser's binding cookie
    expires: int


def binding_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def new_state(redirect: str, binding_cookie: str, now: float | None = None) -> State:
    expires = int(now if now is not None else time.time()) + STATE_TTL
    return State(_b64(os.urandom(18)), redirect, binding_hash(binding_cookie), expires)


def encode_state(key: bytes, state: State) -> str:
    body = _b64(
        json.dumps(
            {"n": state.nonce, "r": state.redirect, "b": state.binding, "e": state.expires},
            separators=(",", ":"),
        ).encode()
    )
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def decode_state(key: bytes, value: str, now: float | None = None) -> State:
    """A state this provider signed and that has not expired (single use is the caller's)."""
    if not value or len(value) > MAX_STATE or value.count(".") != 1:
        raise Unreadable("malformed state")
    body, mac = value.split(".")
    expected = hmac.new(key, body.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _unb64(mac)):
        raise Unreadable("state not signed by this provider")
    try:
        data = json.loads(_unb64(body))
        state = State(str(data["n"]), str(data["r"]), str(data["b"]), int(data["e"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise Unreadable("malformed state") from exc
    if state.expires < (now if now is not None else time.time()):
        raise Unreadable("state expired")
    return state
