"""The reference server of the benchmarks: the Python + aiohttp floor that Tessera is measured on.

`startup_memory.py` starts it as a process of its own, with the same interpreter as Tessera. It
serves `/-/health/ready/` (`{"status": "ok"}`) and, given `--body FILE`, answers
`/api/v3/core/users/` with the JSON document in that file, decoded once at start and encoded
again on every request, as a handler that builds its answer would. Nothing else is imported, so
its start time and memory are those of Python and aiohttp alone.

For `login.py` it also answers the flow executor's three requests of a password login (GET the
identification challenge, POST a username, POST a password) with challenges of the same shape,
reading each JSON body and setting a session cookie on the last: HTTP and JSON without a flow.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from aiohttp import web


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


FLOW = "/api/v3/flows/executor/default-authentication-flow/"
_INFO = {
    "title": "Welcome",
    "background": "",
    "cancel_url": "/flows/-/cancel/",
    "layout": "stacked",
}


async def flow(request: web.Request) -> web.Response:
    body = await request.json() if request.method == "POST" else {}
    if "password" in body:
        answer: dict[str, Any] = {"component": "xak-flow-redirect", "to": "/"}
    elif "uid_field" in body:
        answer = {"component": "ak-stage-password", "flow_info": _INFO, "pending_user": "x"}
    else:
        answer = {"component": "ak-stage-identification", "flow_info": _INFO, "user_fields": []}
    response = web.json_response(answer, dumps=_dumps)
    if "password" in body:
        response.set_cookie("authentik_session", "k" * 43, httponly=True, samesite="Lax")
    return response


def make_app(document: Any) -> web.Application:
    async def ready(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"}, dumps=_dumps)

    async def listing(_request: web.Request) -> web.Response:
        return web.json_response(document, dumps=_dumps)

    app = web.Application()
    app.router.add_get("/-/health/ready/", ready)
    app.router.add_get(FLOW, flow)
    app.router.add_post(FLOW, flow)
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
