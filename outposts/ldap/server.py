"""The LDAP listeners: Twisted's asyncio reactor on the running loop, the LDAP (plain text with
StartTLS) and LDAPS ports, and per-process counters.

`install_reactor()` installs Twisted's `AsyncioSelectorReactor` over the running asyncio loop
(once per process) so the LDAP server and the control channel's aiohttp client share one loop.
`Server(outpost, certificates)` is the protocol factory; `listen(address, tls)` opens a port
and returns its listening port (stop with `stopListening`). Used by `main` and the tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from twisted.internet import protocol

from tessera.outposts.ldap import tls
from tessera.outposts.ldap.outpost import Outpost
from tessera.outposts.ldap.protocol import LDAPConnection


def install_reactor() -> Any:
    """Twisted's reactor on the running asyncio loop (installed on first use)."""
    import sys

    loop = asyncio.get_running_loop()
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor

        if getattr(reactor, "_asyncioEventloop", None) is not loop:
            raise RuntimeError("Twisted's reactor is installed on another event loop")
        return reactor
    from twisted.internet import asyncioreactor

    asyncioreactor.install(loop)  # type: ignore[no-untyped-call]
    from twisted.internet import reactor

    reactor.startRunning(installSignalHandlers=False)
    return reactor


class Server(protocol.Factory):
    def __init__(self, outpost: Outpost, certificates: tls.Certificates) -> None:
        self.outpost = outpost
        self.certificates = certificates
        self.open_connections = 0
        self.counts: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run `coroutine` on the loop without awaiting it (unbinds of closed connections)."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def buildProtocol(self, addr: Any) -> LDAPConnection:
        return LDAPConnection(self, tls=False)

    def opened(self) -> None:
        self.open_connections += 1

    def closed(self) -> None:
        self.open_connections -= 1

    def count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def listen(self, host: str, port: int, *, tls_port: bool = False) -> Any:
        reactor = install_reactor()
        if tls_port:
            return reactor.listenSSL(
                port, _TLSFactory(self), self.certificates.factory, interface=host
            )
        return reactor.listenTCP(port, self, interface=host, backlog=512)


class _TLSFactory(protocol.Factory):
    def __init__(self, server: Server) -> None:
        self.server = server

    def buildProtocol(self, addr: Any) -> LDAPConnection:
        return LDAPConnection(self.server, tls=True)
