"""`GET /ws/outpost/<outpost uuid>/?instance_uuid=<uuid>&attempt=<n>`: the control channel.

The handshake is checked before the upgrade, each failure a JSON answer as the API gives:
the outpost uuid (404), `instance_uuid` and `attempt` (400), `Authorization: Bearer <key>`
(401 when missing or not a live API token), the token being the outpost's own
(`identity.outposts.outpost_for_token`; 403 for any other, another outpost's included), and a
websocket upgrade (400). Then frames (`wire.outpost_channel`): HELLO is answered by ACK and
recorded (`instances.record`); the token is checked again at each HELLO, so a deleted outpost
or a revoked token loses its channel within 10 s; PROVIDER_SPECIFIC is acknowledged; ACK is
taken as is. Whatever else arrives closes the connection with a close code, logged: a binary
frame (1003), a frame that is not the schema's JSON (1007), one larger than 64 KiB (1009), an
unknown instruction, one only the core sends, or a HELLO naming another instance (1008), and
silence for three HELLO intervals (1001). Before the upgrade the hub reads what the outpost
fetches (`Hub.baseline`), unless it knows already, so that it can tell later what changed.

# SECURITY: the bearer key is compared through its keyed digest (`identity.tokens`); nothing a
# client sends reaches the store but that key; frames are parsed with bounded size and depth.
"""

from __future__ import annotations

import uuid

import aiohttp
import structlog
from aiohttp import web

from tessera.core import cache, crypto, errors, identity, store
from tessera.core.api import state
from tessera.core.outpost_hub import hub as hub_
from tessera.core.outpost_hub import instances
from tessera.core.wire import outpost_channel as oc

HUB = web.AppKey("outpost_hub", hub_.Hub)
SILENCE = oc.HELLO_INTERVAL * 3
MAX_KEY = 512
log = structlog.get_logger(__name__)


class Refused(Exception):
    """Ends a connection: `code` is the close code, `str()` the reason logged and sent."""

    def __init__(self, reason: str, code: int) -> None:
        super().__init__(reason)
        self.code = code


def _uuid(raw: str) -> str | None:
    try:
        return str(uuid.UUID(raw)) if len(raw) <= 64 else None
    except ValueError:
        return None


def _bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise errors.NotAuthenticated("Authentication credentials were not provided.")
    if len(key) > MAX_KEY:
        raise errors.NotAuthenticated("Invalid token.")
    return key


def _handshake_params(request: web.Request) -> tuple[str, str, int]:
    outpost_pk = _uuid(request.match_info["uuid"])
    if outpost_pk is None:
        raise errors.ObjectNotFound("Not found.")
    instance = _uuid(request.query.get("instance_uuid", ""))
    if instance is None:
        raise errors.ValidationFailed.one("instance_uuid", "Must be a valid UUID.")
    raw_attempt = request.query.get("attempt", "0")
    if not (raw_attempt.isascii() and raw_attempt.isdigit()) or len(raw_attempt) > 9:
        raise errors.ValidationFailed.one("attempt", "A valid integer is required.")
    return outpost_pk, instance, int(raw_attempt)


async def _outpost(
    db: store.Store, keyring: crypto.Keyring, outpost_pk: str, key: str
) -> dict[str, object] | None:
    """The outpost if `key` is its token; NotAuthenticated when `key` is no live API token."""
    async with db.read() as tx:
        if await identity.tokens.authenticate(tx, keyring, key, intent="api") is None:
            raise errors.NotAuthenticated("Invalid token.")
        return await identity.outposts.outpost_for_token(tx, keyring, outpost_pk, key)


async def handle(request: web.Request) -> web.StreamResponse:
    outpost_pk, instance_uuid, attempt = _handshake_params(request)
    key = _bearer(request)
    db, keyring = request.app[state.STORE], request.app[state.KEYRING]
    # SECURITY: the token is checked before the upgrade: nothing is upgraded for a caller that
    # is not this outpost (401 no live API token, 403 another's token, an admin's included).
    outpost = await _outpost(db, keyring, outpost_pk, key)
    if outpost is None:
        raise errors.PermissionDenied("You do not have permission to perform this action.")
    ws = web.WebSocketResponse(max_msg_size=oc.MAX_FRAME_BYTES, autoping=True)
    if not ws.can_prepare(request).ok:
        raise errors.BadRequest("Expected a websocket upgrade.")
    hub = request.app[HUB]
    if not hub.has_room(outpost_pk):
        raise errors.ServiceUnavailable("Too many connections of this outpost.")
    await hub.baseline(outpost_pk)  # before the handshake, after which the instance fetches
    await ws.prepare(request)
    conn = hub_.Connection(ws, outpost_pk, str(outpost["name"]), instance_uuid)
    hub.add(conn)
    log.info("outpost_connected", outpost=outpost_pk, instance=instance_uuid, attempt=attempt)
    try:
        await _serve(request, conn, key)
    except Refused as exc:
        log.warning(
            "outpost_channel_refused", outpost=outpost_pk, instance=instance_uuid, reason=str(exc)
        )
        await ws.close(code=exc.code, message=str(exc)[:120].encode())
    except Exception:  # the edge of a websocket: log, close 1011, never crash the server
        log.exception("outpost_channel_failed", outpost=outpost_pk, instance=instance_uuid)
        await ws.close(code=oc.CLOSE_INTERNAL)
    finally:
        await hub.remove(conn)
        await _forget(request, conn)
        log.info(
            "outpost_disconnected", outpost=outpost_pk, instance=instance_uuid, code=ws.close_code
        )
    return ws


async def _forget(request: web.Request, conn: hub_.Connection) -> None:
    bus = request.app[state.CACHE]
    try:
        stored = await bus.get(instances.state_key(conn.outpost_pk, conn.instance_uuid))
        if isinstance(stored, dict) and stored.get("connection") == conn.id:
            await instances.forget(bus, conn.outpost_pk, conn.instance_uuid)
    except cache.CacheUnavailable:
        pass  # the state expires by itself


async def _serve(request: web.Request, conn: hub_.Connection, key: str) -> None:
    ws = conn.ws
    while True:
        msg = await _receive(ws)
        if msg is None:
            raise Refused("no frame for three HELLO intervals", oc.CLOSE_GOING_AWAY)
        if msg.type == web.WSMsgType.TEXT:
            await _frame(request, conn, key, msg.data)
        elif msg.type == web.WSMsgType.BINARY:
            raise Refused("binary frames are not part of the protocol", oc.CLOSE_UNSUPPORTED)
        elif msg.type == web.WSMsgType.ERROR:
            # aiohttp has closed it already, with its code (1009 for an oversized frame).
            log.warning("outpost_channel_error", outpost=conn.outpost_pk, error=str(msg.data))
            return
        else:  # CLOSE, CLOSING, CLOSED
            return


async def _receive(ws: web.WebSocketResponse) -> aiohttp.WSMessage | None:
    try:
        return await ws.receive(timeout=SILENCE)
    except TimeoutError:
        return None


async def _frame(request: web.Request, conn: hub_.Connection, key: str, data: str) -> None:
    # SECURITY: parsed with bounded size and depth; whatever does not parse closes the channel.
    try:
        frame = oc.parse(data)
        which = oc.instruction(frame)
    except oc.FrameError as exc:
        raise Refused(str(exc), exc.close_code) from None
    if which == oc.Instruction.ACK:
        return
    if which == oc.Instruction.HELLO:
        await _hello(request, conn, key, frame)
    elif which != oc.Instruction.PROVIDER_SPECIFIC:
        raise Refused(f"instruction {which.name} is the core's to send", oc.CLOSE_POLICY)
    conn.send(oc.ack())


async def _hello(request: web.Request, conn: hub_.Connection, key: str, frame: oc.Frame) -> None:
    try:
        hello = oc.HelloArgs.model_validate(frame.args)
    except ValueError:
        raise Refused("HELLO arguments do not match the schema", oc.CLOSE_INVALID) from None
    if hello.uuid and _uuid(hello.uuid) != conn.instance_uuid:
        raise Refused("HELLO names another instance than instance_uuid", oc.CLOSE_POLICY)
    db, keyring = request.app[state.STORE], request.app[state.KEYRING]
    # SECURITY: checked again at every HELLO, so a deleted outpost or revoked token loses its
    # channel within one HELLO interval.
    try:
        async with db.read() as tx:
            still = await identity.outposts.outpost_for_token(tx, keyring, conn.outpost_pk, key)
    except store.StoreUnavailable:
        still = {}  # cannot tell now: keep the channel, check at the next HELLO
    if still is None:
        raise Refused("the outpost or its token is gone", oc.CLOSE_OUTPOST_GONE)
    try:
        await instances.record(
            request.app[state.CACHE], conn.outpost_pk, conn.instance_uuid, hello, conn.id
        )
    except cache.CacheUnavailable:
        log.warning("outpost_state_not_recorded", outpost=conn.outpost_pk)
