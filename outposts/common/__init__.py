"""What every outpost type shares: settings, the core API client, the control-channel runtime.

- `entry`: the contract of `tessera outpost <type>` (`tessera.outposts.<type>.main.run(argv)`)
  and `entry.main`, which runs a type's `serve(ctx)` inside a started runtime;
- `settings`: `AUTHENTIK_HOST`, `AUTHENTIK_TOKEN`, ... (or `TESSERA_*`), checked at start;
- `client`: `CoreClient`, REST calls with the outpost's token, errors sorted for the caller;
- `runtime`: `Runtime`, the first fetch, the control channel, refreshes, callbacks;
- `channel`: the websocket end of the control channel, with `backoff`;
- `configcache`: `Snapshot`, the last good configuration, and its sealed file on disk;
- `metrics`, `logs`: Prometheus collectors and the metrics site; JSON logs, token masked.

Of the core, outposts import only `tessera.core.wire` (an import-linter contract).
"""

from tessera.outposts.common import (
    backoff,
    channel,
    client,
    configcache,
    entry,
    logs,
    metrics,
    runtime,
    settings,
)

__all__ = [
    "backoff",
    "channel",
    "client",
    "configcache",
    "entry",
    "logs",
    "metrics",
    "runtime",
    "settings",
]
