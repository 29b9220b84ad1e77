"""`tessera outpost <type>`: runs `tessera.outposts.<type>.main.run(argv)` (the contract is in
`tessera.outposts.common.entry`).

Imported by name, so the core imports no outpost's code; and reached from `tessera.core.cli.main`
without importing the core either, so that an outpost process holds only what it uses.
"""

from __future__ import annotations

import importlib
import re
import sys

_OUTPOST_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# Optional integrations that a library loads whenever it finds them installed and that an outpost
# type never uses; they are marked absent before the outpost's code is imported. structlog loads
# its Twisted support when Twisted is installed (for the LDAP outpost; about 4 MiB of Twisted,
# zope.interface and attrs in the proxy outpost) and its console renderer's `rich` (and its
# exception formatters) when they are installed (development environments), and its greenlet
# support when greenlet is (SQLAlchemy's dependency): the outposts log JSON lines from one
# event loop.
UNUSED_INTEGRATIONS = {
    "proxy": (
        "structlog.twisted",
        "structlog._greenlets",
        "rich",
        "better_exceptions",
        "colorama",
    ),
}


def run(kind: str, argv: list[str]) -> int:
    if not _OUTPOST_TYPE.match(kind):
        print(f"tessera outpost: {kind!r} is not an outpost type", file=sys.stderr)
        return 2
    name = f"tessera.outposts.{kind}.main"
    for unused in UNUSED_INTEGRATIONS.get(kind, ()):
        sys.modules.setdefault(unused, None)  # type: ignore[arg-type]  # `import` then fails
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name not in (f"tessera.outposts.{kind}", name):
            raise  # a module the outpost itself needs is missing: show it
        print(f"tessera outpost: no outpost of type {kind!r}", file=sys.stderr)
        return 2
    entry = getattr(module, "run", None)
    if not callable(entry):
        print(f"tessera outpost: {name} has no run(argv)", file=sys.stderr)
        return 2
    return int(entry(argv))
