"""The control channel's frames (`/ws/outpost/<outpost uuid>/`), shared by the core and outposts.

Each websocket text message is one JSON object `{"instruction": n, "args": {...}}` (authentik's
`WebsocketMessage`). The outpost sends HELLO on connect and every `HELLO_INTERVAL` seconds; the
core answers every frame but ACK with ACK, and sends TRIGGER_UPDATE (refetch the configuration),
PROVIDER_SPECIFIC and SESSION_END (a core session ended: `session_id` is the sha256 hex digest of
its key). `core.outpost_hub` parses what the outposts send with these models, and
`tessera.outposts.common.channel` what the core sends. A frame that does not parse, is larger
than `MAX_FRAME_BYTES` or names an unknown instruction closes the connection with one of the
close codes below.

Also here: `OutpostHealth`, the items of `/api/v3/outposts/instances/<uuid>/health/`.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from tessera.core.wire import common

PROTOCOL_VERSION = "2026.8.5"
"""The authentik release whose control channel this is; the version Tessera's outposts report in
HELLO and the core expects (`version_should`); equal to `core.api.admin.AUTHENTIK_VERSION`."""
HELLO_INTERVAL = 10.0
"""Seconds between two HELLOs of an outpost instance (authentik's `OUTPOST_HELLO_INTERVAL`)."""
STATE_TTL = HELLO_INTERVAL * 1.5
"""Seconds an instance's state lives in the core's cache after its last HELLO."""
MAX_FRAME_BYTES = 64 * 1024
"""The largest frame either side accepts; a larger one closes the connection."""

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003  # not a text frame
CLOSE_INVALID = 1007  # a text frame that is not a valid control-channel frame
CLOSE_POLICY = 1008  # a frame the peer may not send (e.g. SESSION_END from an outpost)
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
CLOSE_OUTPOST_GONE = 4404  # the outpost was deleted, or its token no longer valid

SESSION_END_TYPE = "event.session.end"
_HEX_DIGEST = re.compile(r"^[0-9a-f]{64}$")
_Text = Annotated[str, Field(max_length=256)]


class Instruction(enum.IntEnum):
    ACK = 0
    HELLO = 1
    TRIGGER_UPDATE = 2
    PROVIDER_SPECIFIC = 3
    SESSION_END = 4


class FrameError(ValueError):
    """A frame that cannot be accepted; `close_code` says how the connection is closed."""

    def __init__(self, message: str, close_code: int = CLOSE_INVALID) -> None:
        super().__init__(message)
        self.close_code = close_code


class Frame(BaseModel):
    """One message of the control channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instruction: Annotated[StrictInt, Field(ge=0, le=2**31)]
    args: dict[str, Any] = Field(default_factory=dict)

    def to_text(self) -> str:
        return json.dumps({"instruction": self.instruction, "args": self.args})


class HelloArgs(BaseModel):
    """What an instance says about itself in HELLO (authentik's keys, camelCase included)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, str_max_length=256)

    version: _Text = ""
    hostname: _Text = ""
    uuid: _Text = ""
    build_hash: _Text = Field(default="", alias="buildHash")
    golang_version: _Text = Field(default="", alias="golangVersion")
    openssl_enabled: bool = Field(default=False, alias="opensslEnabled")
    openssl_version: _Text = Field(default="", alias="opensslVersion")
    fips_enabled: bool | None = Field(default=None, alias="fipsEnabled")


class SessionEndArgs(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["event.session.end"] = "event.session.end"
    session_id: Annotated[str, Field(pattern=_HEX_DIGEST.pattern)]


class OutpostHealth(common.Response):
    """One connected instance of an outpost, as authentik's `OutpostHealth` describes it."""

    uid: str
    last_seen: dt.datetime
    version: str
    golang_version: str
    openssl_enabled: bool
    openssl_version: str
    fips_enabled: bool | None
    version_should: str
    version_outdated: bool
    build_hash: str
    build_hash_should: str
    hostname: str


def parse(data: str | bytes) -> Frame:
    """The frame in `data`, or `FrameError` with the close code the receiver should use."""
    if len(data) > MAX_FRAME_BYTES:
        raise FrameError(f"frame larger than {MAX_FRAME_BYTES} bytes", CLOSE_TOO_BIG)
    try:
        raw = json.loads(data)
    except (ValueError, RecursionError):
        raise FrameError("frame is not JSON") from None
    if not isinstance(raw, dict):
        raise FrameError("frame is not a JSON object")
    try:
        common.check_json_object(raw, MAX_FRAME_BYTES)
        return Frame.model_validate(raw)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise FrameError(f"frame does not match the schema: {_first_error(exc)}") from None


def instruction(frame: Frame) -> Instruction:
    """The frame's instruction, or `FrameError` (CLOSE_POLICY) for an unknown number."""
    try:
        return Instruction(frame.instruction)
    except ValueError:
        raise FrameError(f"unknown instruction {frame.instruction}", CLOSE_POLICY) from None


def make(which: Instruction, **args: Any) -> Frame:
    return Frame(instruction=int(which), args=args)


def ack() -> Frame:
    return make(Instruction.ACK)


def session_end(session_digest: str) -> Frame:
    """SESSION_END for the session whose key hashes (sha256, hex) to `session_digest`."""
    if not _HEX_DIGEST.match(session_digest):
        raise ValueError("session_digest must be a lowercase sha256 hex digest")
    return make(Instruction.SESSION_END, type=SESSION_END_TYPE, session_id=session_digest)


def _first_error(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "frame"
        return f"{where}: {first['msg']}"
    return str(exc)
