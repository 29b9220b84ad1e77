"""`tessera outpost ldap`: the LDAP outpost on `outposts.common`'s runtime.

`run` hands `serve` to `entry.main`, which loads the settings, starts the runtime (the outpost
found by its token, its LDAP provider configs fetched with `fetch_extras`: the providers'
certificates and, for cached search mode, their directories; the control channel open) and
serves metrics. `serve` installs Twisted's asyncio reactor on the running loop, builds the
`Outpost` from the snapshot, keeps it current (configuration refreshes, DirectoryChanged pushes,
SESSION_END, reconnections) and listens on `AUTHENTIK_LISTEN__LDAP` (3389, StartTLS) and
`AUTHENTIK_LISTEN__LDAPS` (6636) until told to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import prometheus_client
import structlog
from twisted.internet import defer, error

from tessera.core.wire import ldap as wire
from tessera.outposts.common import client as client_
from tessera.outposts.common import entry, runtime, settings
from tessera.outposts.ldap import coreapi, tls
from tessera.outposts.ldap.outpost import Outpost
from tessera.outposts.ldap.server import Server

log = structlog.get_logger(__name__)
SHUTDOWN_UNBINDS = 3.0  # seconds for the direct-mode sessions to end at the core on SIGTERM


def run(argv: list[str]) -> int:
    return entry.main("ldap", argv, serve, fetch_extras=fetch_extras)


async def fetch_extras(
    client: client_.CoreClient, outpost: client_.OutpostInfo, providers: tuple[dict[str, Any], ...]
) -> dict[str, Any]:
    """Certificates, and the directory of every provider in cached search mode (kept with the
    last good configuration on disk, so a restart with the core away still answers)."""
    extras = await tls.fetch_certificates(client, outpost, providers)
    api = coreapi.CoreApi(client, timeout=60.0)
    directories: dict[str, Any] = {}
    for raw in providers:
        if raw.get("search_mode") != "cached" or not isinstance(raw.get("pk"), int):
            continue
        try:
            records = await api.directory(int(raw["pk"]))
        except client_.CoreResponseError as exc:
            log.warning("ldap_directory_unavailable", provider=raw.get("name"), error=str(exc))
            continue
        directories[str(raw["pk"])] = records.model_dump(mode="json")
    extras["directories"] = directories
    return extras


def instrument(ctx: entry.Context, outpost: Outpost, server: Server) -> None:
    registry = ctx.metrics.registry

    class Collector(prometheus_client.registry.Collector):
        def collect(self) -> Any:
            from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

            ops = CounterMetricFamily(
                "tessera_outpost_ldap_operations", "LDAP operations by kind", labels=["op"]
            )
            for op, n in sorted(server.counts.items()):
                ops.add_metric([op], n)
            yield ops
            binds = CounterMetricFamily(
                "tessera_outpost_ldap_binds",
                "Binds sent to the core, by outcome",
                labels=["outcome"],
            )
            for outcome, n in sorted(outpost.counters.binds.items()):
                binds.add_metric([outcome], n)
            yield binds
            yield GaugeMetricFamily(
                "tessera_outpost_ldap_connections",
                "Open LDAP connections",
                value=server.open_connections,
            )
            yield GaugeMetricFamily(
                "tessera_outpost_ldap_cached_binds",
                "Binds held by cached bind mode",
                value=len(outpost.cache),
            )
            entries = GaugeMetricFamily(
                "tessera_outpost_ldap_directory_entries",
                "Entries held for cached search mode, by provider",
                labels=["provider"],
            )
            for provider in outpost.providers.values():
                if provider.cached_search:
                    entries.add_metric([provider.config.name], len(provider.directory))
            yield entries

    registry.register(Collector())


def _update(outpost: Outpost, certificates: tls.Certificates, snapshot: runtime.Snapshot) -> None:
    refused = outpost.update(snapshot.providers, snapshot.extras.get("directories", {}))
    certificates.update(
        (p.config for p in outpost.providers.values()), snapshot.extras.get("certificates", {})
    )
    log.info("ldap_providers", served=len(outpost.providers), refused=refused)


async def serve(ctx: entry.Context) -> None:
    rt = ctx.runtime
    outpost = Outpost(coreapi.CoreApi(rt.client))
    certificates = tls.Certificates()
    server = Server(outpost, certificates)

    async def on_config(snapshot: runtime.Snapshot) -> None:
        _update(outpost, certificates, snapshot)

    async def on_session_end(session_id: str) -> None:
        outpost.session_ended(session_id)

    async def on_provider_specific(args: dict[str, Any]) -> None:
        if args.get("type") == wire.DirectoryChanged.model_fields["type"].default:
            await outpost.directory_changed(args)

    async def on_connected() -> None:
        await outpost.reconnected()

    rt.on_config(on_config)
    rt.on_session_end(on_session_end)
    rt.on_provider_specific(on_provider_specific)
    rt.on_connected(on_connected)
    _update(outpost, certificates, rt.snapshot)
    instrument(ctx, outpost, server)
    ports = []
    try:
        host, port = settings.split_address(ctx.settings.listen.ldap)
        ports.append(server.listen(host, port))
        host, port = settings.split_address(ctx.settings.listen.ldaps)
        try:
            ports.append(server.listen(host, port, tls_port=True))
        except error.CannotListenError as exc:  # LDAP (with StartTLS) still serves
            log.warning("ldaps_unavailable", address=ctx.settings.listen.ldaps, reason=str(exc))
        log.info(
            "ldap_outpost_listening",
            ldap=ctx.settings.listen.ldap,
            ldaps=ctx.settings.listen.ldaps,
            providers=len(outpost.providers),
        )
        await ctx.stopping.wait()
    finally:
        for listening in ports:
            await _deferred(listening.stopListening())
        await _close(outpost)


async def _close(outpost: Outpost) -> None:
    """Close every connection; the core sessions of direct-mode binds end first (a few
    seconds at most: the core may be away)."""
    connections = list(outpost.connections)
    sessions = [c.session for c in connections if c.session is not None]
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SHUTDOWN_UNBINDS):
            await asyncio.gather(*(outpost.unbind(s) for s in sessions))
    for conn in connections:
        conn.end_session()
    await outpost.stop()


async def _deferred(value: Any) -> None:
    if isinstance(value, defer.Deferred):
        await value.asFuture(asyncio.get_running_loop())
