"""The reference server of the benchmarks: the Python + aiohttp floor that Tessera is measured on.

`startup_memory.py` starts it as a process of its own, with the same interpreter as Tessera. It
serves `/-/health/ready/` (`{"status": "ok"}`) and, given `--body FILE`, answers
`/api/v3/core/users/` with the JSON document in that file, decoded once at start and encoded
again on every request, as a handler that builds its answer would. Nothing else is imported, so
its start time and memory are those of Python and aiohttp alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aiohttp import web


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def make_app(document: Any) -> web.Application:
    async def ready(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, dumps=_dumps)

    async def listing(_request: web.Request) -> web.Response:
        return web.json_response(document, dumps=_dumps)

    app = web.Application()
    app.router.add_get("/-/health/ready/", ready)
    if document is not None:
        app.router.add_get("/api/v3/core/users/", listing)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1")
    parser.add_argument("--body", type=Path, help="JSON document served as the users list")
    args = parser.parse_args()
    document = json.loads(args.body.read_text()) if args.body else None
    web.run_app(make_app(document), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
