"""`handlers.objects.upsert` against a real core when a create races: an earlier attempt whose
answer was lost lands between the lookup and the retry's POST (the core then refuses the POST as
a duplicate slug) — the object with our marker is taken as ours, not reported as an error; a slug
taken meanwhile by an object made by hand is still refused and never adopted."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import operatorkit
import pytest
from aiohttp import web
from helpers import BOOTSTRAP_TOKEN, Server
from operatorkit import admin

from tessera.operator import client
from tessera.operator.handlers import objects

PATH = "core/applications/"
Before = Callable[[bytes], Awaitable[None]]


@contextlib.asynccontextmanager
async def _relay(core: Server, before_post: Before) -> AsyncIterator[str]:
    """A proxy to the core that runs `before_post(body)` before forwarding the first POST."""
    posted: list[bytes] = []

    async def forward(request: web.Request) -> web.Response:
        body = await request.read()
        if request.method == "POST" and not posted:
            posted.append(body)
            await before_post(body)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "host"}
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                request.method, core.url + request.path_qs, data=body, headers=headers
            ) as answer,
        ):
            payload = await answer.read()
            kind = answer.headers.get("Content-Type", "application/json").split(";")[0]
            return web.Response(status=answer.status, body=payload, content_type=kind)

    async with operatorkit.serve(forward) as url:
        yield url


async def _upsert(url: str, marker: str, slug: str) -> tuple[dict[str, Any], str]:
    want = {"name": slug, "slug": slug}
    async with client.CoreClient(url, BOOTSTRAP_TOKEN) as api:
        return await objects.upsert(api, PATH, marker, want, ("slug", slug, "spec.slug"))


async def test_an_earlier_create_landing_late_is_taken_as_ours(core: Server) -> None:
    slug = f"late-{uuid.uuid4().hex[:8]}"
    marker = f"tessera.dev/Application/ns/{slug}/{uuid.uuid4()}"

    async def earlier_attempt_lands(body: bytes) -> None:
        admin(core, "POST", PATH, json.loads(body))  # the same request, earlier

    async with _relay(core, earlier_attempt_lands) as url:
        made, what = await _upsert(url, marker, slug)
    assert what == "in sync" and made["managed"] == marker
    found = admin(core, "GET", f"{PATH}?slug={slug}")["results"]
    assert [a["pk"] for a in found] == [made["pk"]]


async def test_a_slug_taken_meanwhile_by_hand_is_refused_not_adopted(core: Server) -> None:
    slug = f"squat-{uuid.uuid4().hex[:8]}"
    marker = f"tessera.dev/Application/ns/{slug}/{uuid.uuid4()}"

    async def someone_takes_the_slug(_: bytes) -> None:
        admin(core, "POST", PATH, {"name": "by hand", "slug": slug})

    with pytest.raises(client.Invalid):
        async with _relay(core, someone_takes_the_slug) as url:
            await _upsert(url, marker, slug)
    found = admin(core, "GET", f"{PATH}?slug={slug}")["results"]
    assert len(found) == 1 and not found[0]["managed"] and found[0]["name"] == "by hand"
