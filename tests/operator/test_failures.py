"""What a resource's status says when a reconcile cannot succeed, and that it recovers: the core
away (then back), an invalid spec, a missing reference, a name taken in the core, a Secret the
operator must not overwrite. The operator runs against the emulated API server and a real core."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import operatorkit
from aiohttp import web
from helpers import Server, free_port
from kmockkit import Cluster, eventually
from operatorkit import admin, create, ready, start_core

from tessera.operator.resources import common


async def test_core_unavailable_then_back(
    cluster: Cluster, make_operator: Callable[..., Any], tmp_path: Path
) -> None:
    port = free_port()
    manifest = operatorkit.provider("away", "team-a")
    async with make_operator(core_url=f"http://127.0.0.1:{port}"):
        await create(cluster, manifest)
        condition = await eventually(lambda: ready(cluster, manifest))
        assert condition["status"] == "False"
        assert condition["reason"] == "CoreUnavailable"
        first_transition = condition["lastTransitionTime"]
        core = start_core(tmp_path, port=port)
        try:
            done = await eventually(lambda: ready(cluster, manifest)["status"] == "True", 60)
            assert done
        finally:
            core.stop()
    condition = ready(cluster, manifest)
    assert condition["reason"] == "Reconciled"
    assert condition["lastTransitionTime"] >= first_transition
    reasons = [e["reason"] for e in operatorkit.events(cluster, "team-a", "away")]
    assert "CoreUnavailable" in reasons and "Reconciled" in reasons


async def test_an_invalid_spec_is_reported_with_the_field(
    cluster: Cluster, make_operator: Callable[..., Any]
) -> None:
    bad = operatorkit.provider("bad", "team-a", clientType="secretive")
    async with make_operator():
        await create(cluster, bad)
        condition = await eventually(lambda: ready(cluster, bad))
    assert condition["status"] == "False"
    assert condition["reason"] == "InvalidSpec"
    assert "spec.clientType" in condition["message"]


def _ns() -> str:
    return f"f-{uuid.uuid4().hex[:8]}"


async def _not_ready(cluster: Cluster, manifest: dict[str, Any], reason: str) -> dict[str, Any]:
    condition: dict[str, Any] = await eventually(
        lambda: ready(cluster, manifest)["reason"] == reason and ready(cluster, manifest)
    )
    assert condition["status"] == "False"
    return condition


async def test_missing_references_name_the_field(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = _ns()
    no_flow = operatorkit.provider("noflow", space, authorizationFlow="no-such-flow")
    no_secret = operatorkit.provider("nosecret", space, clientSecretRef={"name": "absent"})
    no_scope = operatorkit.provider("noscope", space, scopes=["openid", "telepathy"])
    async with make_operator():
        for m in (no_flow, no_secret, no_scope):
            await create(cluster, m)
        flow = await _not_ready(cluster, no_flow, "InvalidSpec")
        ref = await _not_ready(cluster, no_secret, "InvalidSpec")
        scope = await _not_ready(cluster, no_scope, "InvalidSpec")
    assert flow["message"].startswith("spec.authorizationFlow:")
    assert ref["message"].startswith("spec.clientSecretRef.name:")
    assert scope["message"].startswith("spec.scopes[1]:")
    for name in ("noflow", "nosecret", "noscope"):  # nothing half-made in the core
        assert admin(core, "GET", f"providers/oauth2/?name={space}/{name}")["results"] == []


async def test_a_missing_provider_waits_then_an_unknown_group_is_named(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = _ns()
    app = operatorkit.application("late", space, f"late-{space}")
    async with make_operator():
        await create(cluster, app)
        waiting = await _not_ready(cluster, app, "ProviderNotReady")
        assert waiting["message"].startswith("spec.providerRef.name:")
        await create(cluster, operatorkit.provider("late", space))
        await eventually(lambda: ready(cluster, app)["status"] == "True", 30)
        await operatorkit.patch_spec(cluster, app, {"accessGroups": ["nobody-has-this"]})
        unknown = await _not_ready(cluster, app, "InvalidSpec")
    assert unknown["message"].startswith("spec.accessGroups[0]:")


async def test_a_slug_taken_by_hand_or_by_another_resource_is_a_conflict(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space, other = _ns(), _ns()
    slug = f"taken-{space}"
    by_hand = admin(core, "POST", "core/applications/", {"name": "Mine", "slug": slug})
    squatter = operatorkit.application("squat", space, slug)
    async with make_operator(resync_seconds=1):  # a permanent error is retried by the timer
        await create(cluster, operatorkit.provider("squat", space))
        await create(cluster, squatter)
        taken = await _not_ready(cluster, squatter, "Conflict")
        assert taken["message"].startswith("spec.slug:") and "by hand" in taken["message"]
        # Freed, the slug is taken by the resource at the next resync; then it conflicts for a
        # resource of another namespace.
        admin(core, "DELETE", f"core/applications/{by_hand['pk']}/")
        await eventually(lambda: ready(cluster, squatter)["status"] == "True", 30)
        second = operatorkit.application("squat", other, slug)
        await create(cluster, operatorkit.provider("squat", other))
        await create(cluster, second)
        clash = await _not_ready(cluster, second, "Conflict")
    assert "another resource" in clash["message"]


async def test_an_existing_secret_is_never_overwritten(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    space = _ns()
    precious = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "precious", "namespace": space},
        "data": {"token": base64.b64encode(b"do not touch").decode()},
    }
    prov = operatorkit.provider("thief", space, credentialsSecret={"name": "precious"})
    async with make_operator():
        await cluster.api.post(f"/api/v1/namespaces/{space}/secrets", json=precious)
        await create(cluster, prov)
        taken = await _not_ready(cluster, prov, "Conflict")
    assert taken["message"].startswith("spec.credentialsSecret.name:")
    assert cluster.api.get("v1/secrets", space, "precious")["data"] == precious["data"]


async def test_a_lost_answer_is_retried_without_a_duplicate(
    cluster: Cluster, core: Server, make_operator: Callable[..., Any]
) -> None:
    """The core creates the provider but its answer never arrives (a proxy drops it and says
    502): the retry finds the object by its marker instead of creating a second one."""
    dropped: list[str] = []

    async def relay(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host",)}
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                request.method, core.url + request.path_qs, data=body, headers=headers
            ) as answer,
        ):
            payload, status = await answer.read(), answer.status
            kind = answer.headers.get("Content-Type", "application/json")
        if request.method == "POST" and not dropped and status == 201:
            dropped.append(request.path)
            return web.Response(status=502, text="bad gateway")
        return web.Response(status=status, body=payload, content_type=kind.split(";")[0])

    space = _ns()
    prov = operatorkit.provider("lossy", space)
    async with operatorkit.serve(relay) as url, make_operator(core_url=url):
        await create(cluster, prov)
        await eventually(lambda: ready(cluster, prov)["status"] == "True", 30)
    assert dropped == ["/api/v3/providers/oauth2/"]
    uid = operatorkit.stored(cluster, prov)["metadata"]["uid"]
    marker = common.managed_value("OAuth2Provider", space, "lossy", uid)
    same_name = admin(core, "GET", f"providers/oauth2/?name={space}/lossy")["results"]
    assert [p["managed"] for p in same_name] == [marker]
