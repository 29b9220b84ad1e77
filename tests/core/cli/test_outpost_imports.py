"""`tessera outpost <type>` reaches the outpost without importing the core: an outpost process
holds the outpost's code and the wire models only (the core's modules are tens of MiB)."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
sys.argv = ["tessera", "outpost", "proxy", "--help"]
from tessera.core.cli import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.startswith("tessera.core"))))
"""


def test_the_outpost_command_imports_only_the_wire_models_of_the_core() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "tessera.outposts.proxy.main" not in loaded  # (a sanity check of the filter)
    foreign = [
        m
        for m in loaded
        if m not in ("tessera.core", "tessera.core.cli", "tessera.core.cli.outposts")
        and not m.startswith("tessera.core.wire")
    ]
    assert foreign == []


# Loaded by none of the proxy outpost's start (issue 17, idle RSS): the integrations structlog
# picks up when installed (Twisted for the LDAP outpost, rich in development environments,
# greenlet for SQLAlchemy), pydantic-settings (the outposts read their ten keys themselves),
# joserfc (the first callback or bearer token loads it) and `regex` (the first provider with
# skip_path_regex loads it).
NOT_AT_START = ("twisted", "rich", "greenlet", "pydantic_settings", "joserfc", "regex")

PROXY_PROBE = """
import json, sys
sys.argv = ["tessera", "outpost", "proxy", "--help"]
from tessera.core.cli import main
try:
    main()
except SystemExit:
    pass
print(json.dumps(sorted({m.split(".")[0] for m, v in sys.modules.items() if v is not None})))
"""


def test_the_proxy_outpost_starts_without_what_it_does_not_use() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROXY_PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert {"aiohttp", "structlog", "tessera"} <= loaded  # (the outpost itself was imported)
    assert loaded.isdisjoint(NOT_AT_START), sorted(loaded & set(NOT_AT_START))


def test_other_commands_still_reach_the_core() -> None:
    from tessera.core import cli

    assert callable(cli.parser)
    assert cli.main(["outpost", "no-such-type!"]) == 2


# Of the wire models, the proxy outpost needs its own contract only (issue 17, idle RSS): the
# admin API's models of outposts, OAuth2 and proxy providers (`wire.outposts`, `wire.oauth2`)
# are the core's to parse, not the outpost's.
PROXY_WIRE = {
    "tessera.core.wire",
    "tessera.core.wire.common",
    "tessera.core.wire.outpost_channel",
    "tessera.core.wire.outpost_proxy",
}


def test_the_proxy_outpost_imports_only_its_own_wire_models() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    )
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert {m for m in loaded if m.startswith("tessera.core.wire")} == PROXY_WIRE
