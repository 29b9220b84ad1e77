"""`GET /api/v3/outposts/instances/<uuid>/health/`: the instances of an outpost seen lately.

authentik's `outposts_instances_health_list`: a plain list of `OutpostHealth`, one per instance
that said HELLO within the last 15 s, on whichever process or replica it is connected to (the
shared cache, `instances.live`). Superusers only; an unknown outpost is 404.
"""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web

from tessera.core import errors, identity
from tessera.core.api import auth, http, state
from tessera.core.outpost_hub import instances
from tessera.core.store import crud
from tessera.core.wire import outpost_channel as oc

PATH = "/api/v3/outposts/instances/{uuid}/health/"


async def handle(request: web.Request) -> web.Response:
    async with request.app[state.STORE].read() as tx:
        await auth.require_superuser(request, tx)
        try:
            pk = str(uuid.UUID(request.match_info["uuid"]))
        except ValueError:
            raise errors.ObjectNotFound("Not found.") from None
        if await crud.find(tx, identity.outposts.TABLE, pk=pk) is None:
            raise errors.ObjectNotFound("Not found.")
    states = await instances.live(request.app[state.CACHE], pk)
    return http.respond([instances.health(s) for s in states])


def openapi_paths() -> dict[str, Any]:
    """The operation as authentik's schema names it, for the OpenAPI document."""
    schema = {"type": "array", "items": {"$ref": "#/components/schemas/OutpostHealth"}}
    return {
        "/outposts/instances/{uuid}/health/": {
            "get": {
                "operationId": "outposts_instances_health_list",
                "tags": ["outposts"],
                "summary": "The instances of the outpost connected within the last 15 seconds",
                "parameters": [
                    {
                        "name": "uuid",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "format": "uuid"},
                        "description": "A UUID string identifying this Outpost.",
                    }
                ],
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"application/json": {"schema": schema}},
                    }
                },
            }
        }
    }


MODELS = [oc.OutpostHealth]
