"""The last good configuration of an outpost, in memory (`Snapshot`) and on disk (`ConfigCache`).

A `Snapshot` is what one refresh fetched: the outpost object, its providers' configurations (as
`/api/v3/outposts/<type>/` returns them), and whatever else the outpost type fetched with them
(`extras`, e.g. signing keys). `runtime` keeps the latest in memory and writes each new one to
`<state dir>/config-<digest>.json`; at a start with the core away, the outpost serves from that
file. The file name is a digest of the core's URL and the token, so a changed token never reads
another outpost's file.

# SECURITY: provider configurations hold OAuth2 client secrets. The file is sealed with AES-GCM
# under a key derived from the outpost's token (what could fetch the same data from the core),
# written mode 0600 in a 0700 directory through a temporary file and an atomic rename, and one
# that does not open (other token, tampered, truncated) is ignored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Any

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tessera.outposts.common import client

FORMAT = b"tessera-outpost-config-v1"
log = structlog.get_logger("tessera.outposts.configcache")


class Snapshot(BaseModel):
    """One fetched configuration; `from_disk` marks one read back from the cache file."""

    model_config = ConfigDict(frozen=True)

    outpost: client.OutpostInfo
    providers: tuple[dict[str, Any], ...] = ()
    extras: dict[str, Any] = Field(default_factory=dict)
    fetched_at: dt.datetime
    from_disk: bool = False

    def same_config(self, other: Snapshot | None) -> bool:
        """True when `other` holds the same outpost, providers and extras."""
        if other is None:
            return False
        return _content(self) == _content(other)


def _content(snapshot: Snapshot) -> str:
    data = snapshot.model_dump(mode="json", include={"outpost", "providers", "extras"})
    return json.dumps(data, sort_keys=True)


class ConfigCache:
    """The sealed file of one (core, token) pair under `state_dir`."""

    def __init__(self, state_dir: Path, host: str, token: str) -> None:
        material = f"{host}\x00{token}".encode()
        name = hashlib.sha256(b"file\x00" + material).hexdigest()[:32]
        self.path = state_dir / f"config-{name}.json"
        self._aead = AESGCM(hashlib.sha256(FORMAT + b"\x00" + material).digest())
        self._warned = False

    def load(self) -> Snapshot | None:
        """The cached snapshot, or None when there is none that opens."""
        try:
            blob = self.path.read_bytes()
        except OSError:
            return None
        try:
            plain = self._aead.decrypt(blob[:12], blob[12:], FORMAT)
            snapshot = Snapshot.model_validate_json(plain)
        except (InvalidTag, ValueError, ValidationError):
            log.warning("outpost_config_cache_unreadable", path=str(self.path))
            return None
        return snapshot.model_copy(update={"from_disk": True})

    def save(self, snapshot: Snapshot) -> bool:
        """Write `snapshot`; False (logged once) when the state directory is not writable."""
        data = snapshot.model_copy(update={"from_disk": False}).model_dump_json().encode()
        nonce = secrets.token_bytes(12)
        blob = nonce + self._aead.encrypt(nonce, data, FORMAT)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(blob)
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            if not self._warned:
                self._warned = True
                log.warning(
                    "outpost_config_cache_not_written",
                    path=str(self.path),
                    error=exc.strerror or str(exc),
                    hint="set AUTHENTIK_STATE_DIR to a writable directory",
                )
            return False
        self._warned = False
        return True
