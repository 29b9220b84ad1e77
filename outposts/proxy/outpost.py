"""One proxy outpost's state: its providers, sessions, core client and upstream connections.

`Outpost` is what the standalone process (`main`) and the core's embedded outpost both hold:
they feed it provider configs (`update`), ended core sessions (`session_ended`) and control
channel reconnections (`reconnected`), and serve `app.create_app(outpost)` or mount
`app.endpoints(outpost)`. Everything a request reads is here, in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pydantic
import structlog

from tessera.core.wire import outpost_proxy as wire
from tessera.outposts.proxy import forwarded, machine, oidc, sessions
from tessera.outposts.proxy.providers import ConfigRefused, Provider, Registry

log = structlog.get_logger(__name__)
DEFAULT_TRUSTED = ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")
DEFAULT_TRUSTED_V6 = ("fe80::/10", "::1/128")
USED_STATES_MAX = 100_000


@dataclass(frozen=True)
class Options:
    """How the outpost is run: who it is, where the core is, which peers are proxies."""

    outpost_name: str
    version: str
    core_host: str  # AUTHENTIK_HOST: where the outpost reaches the core
    core_browser_host: str = ""  # AUTHENTIK_HOST_BROWSER
    insecure: bool = False
    trusted_proxies: tuple[str, ...] = DEFAULT_TRUSTED + DEFAULT_TRUSTED_V6
    upstream_timeout: float = 30.0  # connecting to and first answer of an upstream (proxy mode)


@dataclass
class Outpost:
    options: Options
    core: oidc.Core = field(init=False)
    sessions: sessions.Sessions = field(init=False)
    machine: machine.HeaderAuth = field(init=False)
    registry: Registry = field(init=False, default_factory=lambda: Registry(()))
    networks: tuple[forwarded.Network, ...] = field(init=False)
    # Whether the core can be reached now (the standalone outpost: its control channel is
    # open); a login is not started into a core that cannot finish it.
    core_online: Callable[[], bool] = field(default=lambda: True)
    # Told the outcome of every forward-auth check (authenticated, skipped, own_page,
    # redirected, unauthorized, unavailable, refused): the standalone outpost counts them.
    observe: Callable[[str], None] = field(default=lambda _outcome: None)
    # Login states used (nonce -> expiry), and proxy mode's clients by TLS-verification choice;
    # the core's embedded outpost shares both among its `Outpost`s.
    used_states: dict[str, float] = field(init=False, default_factory=dict)
    upstreams: dict[bool, aiohttp.ClientSession] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        o = self.options
        self.networks = forwarded.networks(o.trusted_proxies)
        self.core = oidc.Core(o.core_host, o.core_browser_host, o.insecure)
        self.sessions = sessions.Sessions(self.core.introspect)
        self.machine = machine.HeaderAuth(self.core, self.sessions)

    # Fed by the runtime ----------------------------------------------------------------------

    def update(self, configs: Iterable[wire.ProxyOutpostConfig | Mapping[str, Any]]) -> list[str]:
        """Serve these provider configs from now on; returns why any were refused (the others
        are served: one bad provider does not take the rest down)."""
        providers, refused = build(configs)
        self.registry = Registry(providers)
        return refused

    def session_ended(self, sid: str) -> None:
        self.sessions.end(sid)

    def reconnected(self) -> None:
        self.sessions.reconnected()

    # Used by the handlers -------------------------------------------------------------------

    def use_state(self, nonce: str, expires: float) -> bool:
        """Mark a login state used; False when it was used before (in this process)."""
        now = time.time()
        used = self.used_states
        if nonce in used:
            return False
        if len(used) >= USED_STATES_MAX:
            for gone in [n for n, e in used.items() if e <= now]:
                del used[gone]
        used[nonce] = expires
        return True

    def upstream(self, verify_tls: bool) -> aiohttp.ClientSession:
        """The client for proxy-mode upstreams (one per TLS-verification choice)."""
        session = self.upstreams.get(verify_tls)
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=verify_tls, limit=0),
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    connect=self.options.upstream_timeout,
                    sock_read=None,
                ),
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
            self.upstreams[verify_tls] = session
        return session

    async def close(self) -> None:
        await self.core.close()
        for session in self.upstreams.values():
            await session.close()
        self.upstreams.clear()


def build(
    configs: Iterable[wire.ProxyOutpostConfig | Mapping[str, Any]],
) -> tuple[list[Provider], list[str]]:
    """The providers of these configs, and why any were refused (named in the log)."""
    providers: list[Provider] = []
    refused: list[str] = []
    for raw in configs:
        try:
            config = (
                raw
                if isinstance(raw, wire.ProxyOutpostConfig)
                else wire.ProxyOutpostConfig.model_validate(raw)
            )
            providers.append(Provider.build(config))
        except (pydantic.ValidationError, ConfigRefused) as exc:
            name = raw.name if isinstance(raw, wire.ProxyOutpostConfig) else raw.get("name")
            refused.append(f"{name}: {exc}")
            log.warning("proxy_provider_refused", provider=name, reason=str(exc))
    return providers, refused
