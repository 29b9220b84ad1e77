"""The connected instances of each outpost, in the shared cache (every process and replica).

Each HELLO writes the instance's state (`InstanceState`: what it said, and when) under
`outpost:<pk>:instance:<instance uuid>` for `STATE_TTL` (15 s): an instance that stops saying
HELLO disappears by itself, whichever process it was connected to. The cache cannot list keys,
so each outpost also has an index `outpost:<pk>:instances` of instance uuids with their expiry;
writers merge into it and read it back once to repair a concurrent writer's overwrite, and a
HELLO 10 s later repairs whatever is still lost. `health` reads the index, then each live
instance. Used by `channel` (HELLO) and the health endpoint.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pydantic

from tessera.core import cache
from tessera.core.wire import outpost_channel as oc

MAX_INSTANCES = 256  # per outpost in the index; older entries give way
INDEX_TTL = oc.STATE_TTL * 8


class InstanceState(pydantic.BaseModel):
    """What the core knows of one connected instance."""

    uid: str
    outpost: str
    last_seen: dt.datetime
    version: str = ""
    hostname: str = ""
    build_hash: str = ""
    golang_version: str = ""
    openssl_enabled: bool = False
    openssl_version: str = ""
    fips_enabled: bool | None = None
    connection: str = ""  # the connection that recorded it (a late close leaves a newer one)


def state_key(outpost_pk: str, instance_uuid: str) -> str:
    return f"outpost:{outpost_pk}:instance:{instance_uuid}"


def index_key(outpost_pk: str) -> str:
    return f"outpost:{outpost_pk}:instances"


async def record(
    bus: cache.Cache, outpost_pk: str, instance_uuid: str, hello: oc.HelloArgs, connection: str
) -> InstanceState:
    """Keep the state of an instance that said HELLO for `STATE_TTL` seconds."""
    state = InstanceState(
        uid=instance_uuid,
        outpost=outpost_pk,
        last_seen=dt.datetime.now(dt.UTC),
        connection=connection,
        **hello.model_dump(exclude={"uuid"}),
    )
    await bus.set(state_key(outpost_pk, instance_uuid), state.model_dump(mode="json"), oc.STATE_TTL)
    await _index(bus, outpost_pk, instance_uuid, time.time() + oc.STATE_TTL)
    return state


async def forget(bus: cache.Cache, outpost_pk: str, instance_uuid: str) -> None:
    """Drop an instance whose connection closed (its state would expire anyway)."""
    await bus.delete(state_key(outpost_pk, instance_uuid))


async def _index(bus: cache.Cache, outpost_pk: str, instance_uuid: str, expires: float) -> None:
    key = index_key(outpost_pk)
    for _ in range(3):
        entries = _live(await bus.get(key))
        entries[instance_uuid] = expires
        if len(entries) > MAX_INSTANCES:
            keep = sorted(entries.items(), key=lambda item: item[1])[-MAX_INSTANCES:]
            entries = dict(keep)
        await bus.set(key, entries, INDEX_TTL)
        # Another process may have written its own version in between: check, and merge again.
        if instance_uuid in _live(await bus.get(key)):
            return


def _live(raw: Any) -> dict[str, float]:
    if not isinstance(raw, dict):
        return {}
    now = time.time()
    return {
        str(k): float(v)
        for k, v in raw.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and v > now
    }


async def live(bus: cache.Cache, outpost_pk: str) -> list[InstanceState]:
    """The instances of the outpost that said HELLO within `STATE_TTL`, oldest uid first."""
    out: list[InstanceState] = []
    for instance_uuid in sorted(_live(await bus.get(index_key(outpost_pk)))):
        raw = await bus.get(state_key(outpost_pk, instance_uuid))
        if raw is None:
            continue
        try:
            out.append(InstanceState.model_validate(raw))
        except pydantic.ValidationError:
            continue
    return out


def health(state: InstanceState) -> oc.OutpostHealth:
    """authentik's `OutpostHealth` of one instance."""
    return oc.OutpostHealth(
        uid=state.uid,
        last_seen=state.last_seen,
        version=state.version,
        golang_version=state.golang_version,
        openssl_enabled=state.openssl_enabled,
        openssl_version=state.openssl_version,
        fips_enabled=state.fips_enabled,
        version_should=oc.PROTOCOL_VERSION,
        version_outdated=_outdated(state.version),
        build_hash=state.build_hash,
        build_hash_should="",
        hostname=state.hostname,
    )


def _outdated(version: str) -> bool:
    """True when `version` is an older release than the core's (unknown: outdated)."""
    return _release(version) < _release(oc.PROTOCOL_VERSION)


def _release(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:3]:
        digits = "".join(ch for ch in part if ch in "0123456789")
        if not digits:
            break
        parts.append(int(digits[:9]))
    return tuple(parts)
