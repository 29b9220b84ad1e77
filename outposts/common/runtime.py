"""An outpost's life with the core: first fetch, control channel, refreshes, last good config.

`Runtime.start()` finds the outpost of the token, fetches its providers' configurations
(`/api/v3/outposts/<type>/`) and any `extras` the outpost type asks for, and returns the
`Snapshot`. When the core cannot be reached it starts from the snapshot kept on disk
(`configcache`) instead; with no such snapshot, or when the core refuses the token, it raises
`StartupError` with one sentence for the operator. Then it keeps, in background tasks:

- the control channel (`channel.Channel`): HELLO every 10 s, reconnect with backoff;
- refreshes: on TRIGGER_UPDATE after a random 0 to `refresh_jitter_seconds` delay (replicas do
  not all fetch at once), after each (re)connection, and every `refresh_interval_s` of the
  outpost (authentik's rule: 0 or less means 300 s, less than 30 s means 30 s).

A refresh that fails keeps the last good snapshot; one that finds a changed configuration
replaces it, writes it to disk and calls the `on_config` callbacks. SESSION_END calls the
`on_session_end` callbacks with the session's digest (sha256 hex of the core session key),
PROVIDER_SPECIFIC the `on_provider_specific` ones with its args, and each (re)connection of the
channel the `on_connected` ones. Callbacks are coroutines; one that raises is logged and the
others still run. Used by `entry.main` and every outpost type.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import platform
import random
import socket
import ssl
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import structlog

from tessera.core.wire import outpost_channel as oc
from tessera.outposts.common import backoff as backoff_
from tessera.outposts.common import channel as channel_
from tessera.outposts.common import client as client_
from tessera.outposts.common import configcache
from tessera.outposts.common import metrics as metrics_
from tessera.outposts.common import settings as settings_

DEFAULT_REFRESH = 300
MIN_REFRESH = 30
log = structlog.get_logger("tessera.outposts.runtime")

Snapshot: TypeAlias = configcache.Snapshot
ConfigCallback = Callable[[Snapshot], Awaitable[None]]
SessionEndCallback = Callable[[str], Awaitable[None]]
ProviderSpecificCallback = Callable[[dict[str, Any]], Awaitable[None]]
ConnectedCallback = Callable[[None], Awaitable[None]]
FetchExtras = Callable[
    [client_.CoreClient, client_.OutpostInfo, tuple[dict[str, Any], ...]], Awaitable[dict[str, Any]]
]
"""Fetches what an outpost type needs beside its provider configs (JSON-able, kept on disk)."""


class StartupError(Exception):
    """The outpost cannot start; `str()` is one sentence for whoever runs it."""


def refresh_interval(outpost: client_.OutpostInfo) -> float:
    """Seconds between two periodic refreshes of `outpost` (authentik's clamping)."""
    seconds = outpost.refresh_interval_s
    if seconds is None or seconds <= 0:
        return float(DEFAULT_REFRESH)
    return float(max(seconds, MIN_REFRESH))


class Runtime:
    """The connection of one outpost process to the core."""

    def __init__(
        self,
        settings: settings_.OutpostSettings,
        kind: str,
        *,
        version: str = oc.PROTOCOL_VERSION,
        metrics: metrics_.Metrics | None = None,
        backoff: backoff_.Backoff | None = None,
        fetch_extras: FetchExtras | None = None,
        hello_interval: float = oc.HELLO_INTERVAL,
    ) -> None:
        self.settings = settings
        self.kind = kind
        self.version = version
        self.metrics = metrics or metrics_.Metrics()
        self.client = client_.CoreClient(
            settings, user_agent=f"goauthentik.io/outpost/{version} (tessera {kind})"
        )
        self.cache = configcache.ConfigCache(
            settings.state_dir, settings.host, settings.token.get_secret_value()
        )
        self.instance_uuid = str(uuid.uuid4())
        self.hostname = socket.gethostname()
        self._fetch_extras = fetch_extras
        self._backoff = backoff or backoff_.Backoff(cap=settings.backoff_max_seconds)
        self._hello_interval = hello_interval
        self._snapshot: Snapshot | None = None
        self._config_callbacks: list[ConfigCallback] = []
        self._session_end_callbacks: list[SessionEndCallback] = []
        self._provider_callbacks: list[ProviderSpecificCallback] = []
        self._connected_callbacks: list[ConnectedCallback] = []
        self._wake = asyncio.Event()
        self._jitter = False
        self._tasks: list[asyncio.Task[None]] = []
        self._channel: channel_.Channel | None = None
        self._refresh_lock = asyncio.Lock()

    # -- what outpost types use ------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        """The configuration in use (the last good one); only after `start()`."""
        if self._snapshot is None:
            raise RuntimeError("the runtime has not started")
        return self._snapshot

    @property
    def connected(self) -> bool:
        """True while the control channel is open."""
        return self._channel is not None and self._channel.connected

    def on_config(self, callback: ConfigCallback) -> None:
        """Call `callback(snapshot)` whenever a refresh brings a changed configuration."""
        self._config_callbacks.append(callback)

    def on_session_end(self, callback: SessionEndCallback) -> None:
        """Call `callback(session_digest)` for every SESSION_END (sha256 hex of the key)."""
        self._session_end_callbacks.append(callback)

    def on_provider_specific(self, callback: ProviderSpecificCallback) -> None:
        """Call `callback(args)` for every PROVIDER_SPECIFIC frame."""
        self._provider_callbacks.append(callback)

    def on_connected(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Call `callback()` each time the control channel opens (again): SESSION_END and
        TRIGGER_UPDATE sent while it was down were lost."""

        async def call(_: None) -> None:
            await callback()

        self._connected_callbacks.append(call)

    def request_refresh(self, *, jitter: bool = True) -> None:
        """Ask for a refresh soon (after the random delay when `jitter`); calls coalesce."""
        self._jitter = self._jitter or jitter
        self._wake.set()

    async def start(self) -> Snapshot:
        """The first snapshot (from the core, else from disk); starts the background tasks."""
        try:
            snapshot = await self._first_snapshot()
        except StartupError:
            await self.client.close()
            raise
        self._adopt(snapshot)
        self._channel = channel_.Channel(
            self.client,
            outpost_pk=lambda: self.snapshot.outpost.pk,
            instance_uuid=self.instance_uuid,
            hello=self.hello_args(),
            on_frame=self._on_frame,
            on_connected=self._on_connected,
            on_state=self._on_channel_state,
            backoff=self._backoff,
            hello_interval=self._hello_interval,
        )
        self._tasks = [
            asyncio.create_task(self._channel.run(), name="outpost-channel"),
            asyncio.create_task(self._refresher(), name="outpost-refresher"),
        ]
        return snapshot

    async def _first_snapshot(self) -> Snapshot:
        try:
            return await self._fetch()
        except client_.CoreRefused as exc:
            raise StartupError(str(exc)) from None  # never the cache: the token is wrong
        except client_.CoreError as exc:
            cached = self.cache.load()
            if cached is None:
                raise StartupError(
                    f"{exc}; no earlier configuration in {self.settings.state_dir} to start from"
                ) from None
            self._check_type(cached.outpost)
            log.warning(
                "outpost_starting_from_cache",
                error=str(exc),
                fetched_at=cached.fetched_at.isoformat(),
            )
            return cached

    async def stop(self) -> None:
        """Close the channel and the client; the snapshot stays readable."""
        if self._channel is not None:
            await self._channel.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.client.close()

    async def __aenter__(self) -> Runtime:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def refresh(self) -> bool:
        """Fetch now; True when a changed configuration was adopted. `CoreError` on failure."""
        async with self._refresh_lock:
            try:
                snapshot = await self._fetch()
            except (client_.CoreError, StartupError):
                self.metrics.refreshes.labels(result="error").inc()
                raise
            if snapshot.same_config(self._snapshot):
                self.metrics.refreshes.labels(result="unchanged").inc()
                self._adopt(snapshot)
                return False
            self.metrics.refreshes.labels(result="ok").inc()
            self._adopt(snapshot)
            await self._call(self._config_callbacks, snapshot)
            return True

    def hello_args(self) -> dict[str, Any]:
        """What this instance says in HELLO (authentik's keys; `pythonVersion` is ours)."""
        return {
            "version": self.version,
            "buildHash": "",
            "uuid": self.instance_uuid,
            "hostname": self.hostname[:256],
            "golangVersion": "",
            "pythonVersion": platform.python_version(),
            "opensslEnabled": True,
            "opensslVersion": ssl.OPENSSL_VERSION,
            "fipsEnabled": False,
        }

    # -- internals -------------------------------------------------------------------------

    async def _fetch(self) -> Snapshot:
        outpost = await self.client.whoami()
        self._check_type(outpost)
        providers = tuple(await self.client.paginate(f"/api/v3/outposts/{outpost.type}/"))
        extras: dict[str, Any] = {}
        if self._fetch_extras is not None:
            extras = await self._fetch_extras(self.client, outpost, providers)
        return Snapshot(
            outpost=outpost, providers=providers, extras=extras, fetched_at=dt.datetime.now(dt.UTC)
        )

    def _check_type(self, outpost: client_.OutpostInfo) -> None:
        if outpost.type != self.kind:
            raise StartupError(
                f"the token belongs to the outpost {outpost.name!r} of type {outpost.type!r}: "
                f"`tessera outpost {self.kind}` serves outposts of type {self.kind!r} only"
            )

    def _adopt(self, snapshot: Snapshot) -> None:
        previous = self._snapshot
        self._snapshot = snapshot
        if not snapshot.from_disk:
            self.metrics.last_refresh.set(snapshot.fetched_at.timestamp())
            self.metrics.serving_cached.set(0)
            if not snapshot.same_config(previous) or (previous and previous.from_disk):
                self.cache.save(snapshot)
        else:
            self.metrics.serving_cached.set(1)
        if previous is not None and previous.outpost.pk != snapshot.outpost.pk:
            log.warning("outpost_identity_changed", outpost=snapshot.outpost.pk)
            if self._channel is not None:
                asyncio.get_running_loop().create_task(self._channel.reconnect())

    async def _refresher(self) -> None:
        while True:
            interval = refresh_interval(self.snapshot.outpost)
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for loses a cancellation that
            # arrives as the event is set, and the refresher would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()
            if self._jitter and self.settings.refresh_jitter_seconds > 0:
                delay = random.uniform(0, self.settings.refresh_jitter_seconds)  # noqa: S311
                await asyncio.sleep(delay)
            self._jitter = False
            try:
                changed = await self.refresh()
            except (client_.CoreError, StartupError) as exc:
                log.warning(
                    "outpost_refresh_failed",
                    error=str(exc),
                    serving_since=self.snapshot.fetched_at.isoformat(),
                )
            else:
                log.info("outpost_refreshed", changed=changed)

    async def _on_connected(self) -> None:
        self.request_refresh(jitter=False)
        await self._call(self._connected_callbacks, None)

    def _on_channel_state(self, connected: bool) -> None:
        outpost = self.snapshot.outpost
        gauge = self.metrics.connection.labels(
            outpost_name=outpost.name, outpost_type=outpost.type, uuid=outpost.pk
        )
        gauge.set(1 if connected else 0)
        if not connected:
            self.metrics.reconnects.inc()

    async def _on_frame(self, frame: oc.Frame) -> None:
        which = oc.Instruction(frame.instruction)
        if which == oc.Instruction.TRIGGER_UPDATE:
            log.info("outpost_trigger_update")
            self.request_refresh()
        elif which == oc.Instruction.SESSION_END:
            try:
                args = oc.SessionEndArgs.model_validate(frame.args)
            except ValueError:
                log.warning("outpost_session_end_malformed")
                return
            await self._call(self._session_end_callbacks, args.session_id)
        elif which == oc.Instruction.PROVIDER_SPECIFIC:
            await self._call(self._provider_callbacks, frame.args)

    async def _call(self, callbacks: list[Callable[[Any], Awaitable[None]]], value: Any) -> None:
        for callback in list(callbacks):
            try:
                await callback(value)
            except Exception:  # an outpost type's callback must not stop the runtime
                log.exception(
                    "outpost_callback_failed", callback=getattr(callback, "__qualname__", "?")
                )
