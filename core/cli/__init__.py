"""The `tessera` command: server, worker, migrate, operator, outposts, admin tasks, healthcheck.

`main` hands `tessera outpost <type> ...` straight to the outpost (`cli.outposts`) before anything
of the core is imported: an outpost process then holds the outpost's code only (the core's
modules are tens of MiB it would never use). Every other subcommand is parsed and run by
`cli.commands`, whose names this package also offers (`tessera.core.cli.parser`, ...).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) >= 2 and args[0] == "outpost" and not args[1].startswith("-"):
        from tessera.core.cli import outposts

        try:
            return outposts.run(args[1], list(args[2:]))
        except KeyboardInterrupt:
            return 130
    from tessera.core.cli import commands

    return commands.main(argv)


def __getattr__(name: str) -> Any:
    # Not for this package's own modules (`from tessera.core.cli import outposts` asks here
    # first) nor for dunder names: those must not load the core.
    if name in ("commands", "outposts", "__main__") or name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("tessera.core.cli.commands"), name)


if __name__ == "__main__":
    sys.exit(main())
