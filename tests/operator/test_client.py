"""The operator's core API client against a real core, and against a local HTTP server for the
failures a healthy core never produces (5xx, a hang, a closed port): each answer becomes the
typed error the handlers act on, and the token never shows in an error."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import operatorkit
import pytest
from aiohttp import web
from helpers import BOOTSTRAP_TOKEN, Server, free_port

from tessera.operator import client


@pytest.fixture
async def core_client(core: Server) -> AsyncIterator[client.CoreClient]:
    async with client.CoreClient(core.url, BOOTSTRAP_TOKEN) as api:
        yield api


async def test_reads_creates_and_finds_by_filter(core_client: client.CoreClient) -> None:
    flow = await core_client.request("GET", "flows/instances/default-invalidation-flow/")
    assert flow["slug"] == "default-invalidation-flow"
    slug = f"c-{uuid.uuid4().hex[:8]}"
    made = await core_client.request(
        "POST", "core/applications/", body={"name": slug, "slug": slug}
    )
    found = await core_client.first("core/applications/", slug=slug)
    assert found is not None and found["pk"] == made["pk"]
    assert await core_client.first("core/applications/", slug="no-such-app") is None
    await core_client.request("DELETE", f"core/applications/{made['pk']}/")


async def test_finds_an_application_whose_policies_deny_the_operator(
    core_client: client.CoreClient,
) -> None:
    """The application list keeps to what the caller may open; the operator asks for them all,
    or a policy on an application would hide it and reconcile would create a duplicate."""
    slug = f"d-{uuid.uuid4().hex[:8]}"
    made = await core_client.request(
        "POST", "core/applications/", body={"name": slug, "slug": slug}
    )
    policy = await core_client.request(
        "POST", "policies/dummy/", body={"name": slug, "result": False}
    )
    await core_client.request(
        "POST",
        "policies/bindings/",
        body={"target": made["pk"], "policy": policy["pk"], "order": 0},
    )
    found = await core_client.first("core/applications/", slug=slug)
    assert found is not None and found["pk"] == made["pk"]
    await core_client.request("DELETE", f"core/applications/{made['pk']}/")
    await core_client.request("DELETE", f"policies/all/{policy['pk']}/")


async def test_listing_follows_every_page(core_client: client.CoreClient) -> None:
    prefix = f"page-{uuid.uuid4().hex[:6]}"
    for i in range(client.PAGE_SIZE + 3):
        await core_client.request("POST", "core/groups/", body={"name": f"{prefix}-{i:03}"})
    found = await core_client.list("core/groups/", search=prefix)
    assert len(found) == client.PAGE_SIZE + 3
    assert len({g["pk"] for g in found}) == client.PAGE_SIZE + 3


async def test_a_rejected_field_is_invalid_and_names_the_field(
    core_client: client.CoreClient,
) -> None:
    with pytest.raises(client.Invalid) as caught:
        await core_client.request(
            "POST", "core/applications/", body={"name": "x", "slug": "not a slug!"}
        )
    assert "slug" in caught.value.fields
    assert str(caught.value).startswith("slug:")


async def test_a_missing_object_is_not_found(core_client: client.CoreClient) -> None:
    with pytest.raises(client.NotFound):
        await core_client.request("GET", "flows/instances/no-such-flow/")


async def test_a_refused_token_is_unavailable_and_never_echoed(core: Server) -> None:
    wrong = "wrong-token-" + uuid.uuid4().hex
    async with client.CoreClient(core.url, wrong) as api:
        with pytest.raises(client.CoreUnavailable) as caught:
            await api.request("GET", "core/applications/")
        assert wrong not in str(caught.value) and wrong not in repr(api)
    assert "401" in str(caught.value) or "403" in str(caught.value)


async def test_5xx_timeouts_and_closed_ports_are_core_unavailable() -> None:
    async def answer(request: web.Request) -> web.StreamResponse:
        if "slow" in request.path:
            await asyncio.sleep(5)
        if "gone" in request.path:
            return web.json_response({"detail": "overloaded"}, status=503)
        return web.json_response({"detail": "managed by tessera.dev/x"}, status=409)

    async with operatorkit.serve(answer) as url, client.CoreClient(url, "t", timeout=0.5) as api:
        with pytest.raises(client.CoreUnavailable, match="503"):
            await api.request("GET", "gone/")
        with pytest.raises(client.CoreUnavailable, match="Timeout"):
            await api.request("GET", "slow/")
        with pytest.raises(client.Conflict, match="managed by"):
            await api.request("PATCH", "other/", body={})
    async with client.CoreClient(f"http://127.0.0.1:{free_port()}", "t") as api:
        with pytest.raises(client.CoreUnavailable):
            await api.request("GET", "core/applications/")


async def test_the_managed_header_travels_only_when_asked() -> None:
    seen: list[str | None] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get(client.MANAGED_HEADER))
        return web.json_response({})

    async with operatorkit.serve(answer) as url, client.CoreClient(url, "t") as api:
        await api.request("PATCH", "a/", body={}, managed="tessera.dev/Application/ns/a/1")
        await api.request("PATCH", "a/", body={})
    assert seen == ["tessera.dev/Application/ns/a/1", None]
