"""`tessera outpost <type>`: the contract every outpost type fulfils, and the main they share.

The contract. `tessera outpost <type> [ARGS...]` (`core/cli`) imports the module
`tessera.outposts.<type>.main`, where `<type>` matches `TYPE_NAME` (`proxy`, `ldap`), and calls
its `run(argv: list[str]) -> int` with the arguments after the type; the value returned is the
process's exit status. A type's `run` is normally one line:

    def run(argv: list[str]) -> int:
        return entry.main("proxy", argv, serve, fetch_extras=fetch_jwks)

`main` then: parses `argv` (`--help` only; settings come from the environment, see
`settings`), loads the settings (a bad one: one line naming the key on stderr, exit 2),
configures logging with the token masked, and in one event loop starts a `runtime.Runtime`
(the core refused the token, or is unreachable with no earlier configuration on disk: one line
on stderr, exit 1), serves `/metrics` on `AUTHENTIK_LISTEN__METRICS`, and awaits
`serve(ctx)`. `serve` registers its callbacks (`ctx.runtime.on_config(...)`,
`on_session_end(...)`) before its first `await`, builds its listeners from
`ctx.runtime.snapshot`, waits for `ctx.stopping` (set by SIGTERM or SIGINT), closes its
listeners and returns; `main` then stops the runtime and the metrics site and returns 0.
SIGUSR1 makes the runtime refetch at once, as it does authentik's outposts.
An exception escaping `serve` is logged and gives exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from tessera.outposts.common import logs, metrics, runtime, settings

TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
EXIT_OK, EXIT_REFUSED, EXIT_CONFIG = 0, 1, 2
log = structlog.get_logger("tessera.outposts.entry")


@dataclass
class Context:
    """What `serve` gets: the settings, the started runtime, and the stop signal."""

    kind: str
    settings: settings.OutpostSettings
    runtime: runtime.Runtime
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def metrics(self) -> metrics.Metrics:
        """The process's metrics; add a type's collectors to `metrics.registry`."""
        return self.runtime.metrics


Serve = Callable[[Context], Awaitable[None]]


def main(
    kind: str,
    argv: list[str],
    serve: Serve,
    *,
    fetch_extras: runtime.FetchExtras | None = None,
) -> int:
    """Run the outpost of type `kind` until SIGTERM; the exit status (see the module's doc)."""
    parser = argparse.ArgumentParser(
        prog=f"tessera outpost {kind}",
        description=f"Run the {kind} outpost. Settings come from the environment: "
        "AUTHENTIK_HOST, AUTHENTIK_TOKEN, AUTHENTIK_INSECURE, AUTHENTIK_HOST_BROWSER, "
        "AUTHENTIK_LISTEN__HTTP|HTTPS|LDAP|LDAPS|METRICS, AUTHENTIK_STATE_DIR (or TESSERA_*).",
    )
    parser.parse_args(argv)
    try:
        config = settings.load()
    except settings.SettingsError as exc:
        print(f"tessera outpost {kind}: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(config.log_level, [config.token.get_secret_value()])
    try:
        return asyncio.run(run_async(kind, config, serve, fetch_extras=fetch_extras))
    except runtime.StartupError as exc:
        print(f"tessera outpost {kind}: {exc}", file=sys.stderr)
        return EXIT_REFUSED


async def run_async(
    kind: str,
    config: settings.OutpostSettings,
    serve: Serve,
    *,
    fetch_extras: runtime.FetchExtras | None = None,
    stopping: asyncio.Event | None = None,
) -> int:
    """`main` inside a running loop (tests call it directly, with their own `stopping`)."""
    rt = runtime.Runtime(config, kind, fetch_extras=fetch_extras)
    await rt.start()
    ctx = Context(kind=kind, settings=config, runtime=rt, stopping=stopping or asyncio.Event())
    loop = asyncio.get_running_loop()
    installed = []
    handlers = {
        signal.SIGTERM: ctx.stopping.set,
        signal.SIGINT: ctx.stopping.set,
        signal.SIGUSR1: lambda: rt.request_refresh(jitter=False),  # as authentik's outposts
    }
    for sig, handler in handlers.items():
        try:
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    try:
        metrics_site = await _serve_metrics(rt.metrics, config.listen.metrics)
    except OSError as exc:
        await rt.stop()
        raise runtime.StartupError(
            f"cannot listen on {config.listen.metrics} (AUTHENTIK_LISTEN__METRICS): "
            f"{exc.strerror or exc}"
        ) from None
    try:
        await serve(ctx)
    except Exception:  # the type's serve failed: logged, the process ends with status 1
        log.exception("outpost_serve_failed", kind=kind)
        return EXIT_REFUSED
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await metrics_site.cleanup()
        await rt.stop()
    return EXIT_OK


async def _serve_metrics(m: metrics.Metrics, address: str) -> web.AppRunner:
    runner = web.AppRunner(m.app(), access_log=None)
    await runner.setup()
    host, port = settings.split_address(address)
    await web.TCPSite(runner, host, port, reuse_address=True).start()
    return runner
